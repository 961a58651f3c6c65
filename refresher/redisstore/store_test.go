package redisstore_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/redisstore"
)

const testKey = "tokens:test"

// newMiniredis starts a miniredis server and returns it with a client, both
// closed at the end of the test.
func newMiniredis(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	m := miniredis.RunT(t)
	return m, newClient(t, m.Addr())
}

// newClient returns a client of the Redis at addr, closed at the end of the
// test. Each replica of a fleet has its own.
func newClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := redisstore.New(rc, testKey)
	assert.Equal(t, testKey, s.Key())
	assert.Equal(t, testKey+":lock", s.LockKey())

	want := storetest.Token(1).WithExtra(map[string]any{"id_token": "not kept"})
	require.NoError(t, s.Save(ctx, want))
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, want, got)
	assert.Nil(t, got.Extra("id_token"), "extra fields are not stored")

	// Another Store on the same key (another replica) reads it too.
	got, err = redisstore.New(newClient(t, m.Addr()), testKey).Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, want, got)

	// The value is a hash: the token's fingerprint, and its record in the
	// versioned JSON a FileStore writes; the key has no expiry.
	keys, err := m.HKeys(testKey)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"fp", "rec"}, keys)
	assert.Equal(t, refresher.Fingerprint(want), m.HGet(testKey, "fp"))
	assert.JSONEq(t, `{"version":1,"access_token":"access-1","token_type":"Bearer",
		"refresh_token":"refresh-1","expiry":"2030-01-02T03:05:05.123456789Z"}`, m.HGet(testKey, "rec"))
	assert.Zero(t, m.TTL(testKey), "the token's key has no TTL")

	// A token without expiry, saved over the first one.
	noExpiry := &oauth2.Token{AccessToken: "access-2", RefreshToken: "refresh-2"}
	require.NoError(t, s.Save(ctx, noExpiry))
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, noExpiry, got)
}

func TestStoreMissingKeyIsNoToken(t *testing.T) {
	_, rc := newMiniredis(t)
	got, err := redisstore.New(rc, testKey).Load(t.Context())
	assert.NoError(t, err)
	assert.Nil(t, got)
}

func TestStoreSaveRefusesEmptyToken(t *testing.T) {
	m, rc := newMiniredis(t)
	s := redisstore.New(rc, testKey)
	assert.Error(t, s.Save(t.Context(), nil))
	assert.Error(t, s.Save(t.Context(), &oauth2.Token{RefreshToken: "refresh-only"}))
	assert.False(t, m.Exists(testKey), "nothing was written")
}

func TestStoreReportsCorruptValueWithoutItsContents(t *testing.T) {
	const secret = "s3cr3t-refresh-value"
	tests := []struct {
		name, value, want string
	}{
		{"empty", "", "it is empty"},
		{"not JSON", "refresh_token=" + secret, "invalid JSON at byte 1"},
		{"truncated", `{"version":1,"access_token":"` + secret, "invalid JSON"},
		{"array", `["` + secret + `"]`, "not an object"},
		{"wrong field type", `{"version":1,"access_token":["` + secret + `"]}`, `field "access_token" holds a JSON array`},
		{"unknown version", `{"version":7,"access_token":"` + secret + `"}`, "format version 7 is not supported"},
		{"no access token", `{"version":1,"refresh_token":"` + secret + `"}`, "no access_token"},
		{"bad expiry", `{"version":1,"access_token":"a","expiry":"` + secret + `"}`, "expiry is not an RFC 3339 time"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, rc := newMiniredis(t)
			s := redisstore.New(rc, testKey)
			// In the older layout (a string) and in the current one.
			require.NoError(t, m.Set(testKey, tc.value))
			got, err := s.Load(t.Context())
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), testKey, "the error names the key")
			assert.NotContains(t, err.Error(), secret, "the error quotes the value")
			// A fenced save does not overwrite what it cannot compare.
			_, err = s.CompareAndSwap(t.Context(), storetest.Token(1), storetest.Token(2))
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret, "the error quotes the value")

			m.Del(testKey)
			m.HSet(testKey, "fp", "f", "rec", tc.value)
			got, err = s.Load(t.Context())
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), secret, "the error quotes the value")
		})
	}

	t.Run("not a string", func(t *testing.T) {
		m, rc := newMiniredis(t)
		_, err := m.Lpush(testKey, secret)
		require.NoError(t, err)
		got, err := redisstore.New(rc, testKey).Load(t.Context())
		require.Error(t, err)
		assert.Nil(t, got)
		assert.Contains(t, err.Error(), "WRONGTYPE")
		assert.NotContains(t, err.Error(), secret)
	})
}

func TestStoreReportsRedisFailures(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := redisstore.New(rc, testKey)
	m.SetError("ERR injected failure")

	_, err := s.Load(ctx)
	assert.ErrorContains(t, err, "injected failure")
	assert.ErrorContains(t, s.Save(ctx, storetest.Token(1)), "injected failure")
	// Lock fails at once instead of waiting for a lease it cannot ask for.
	unlock, err := s.Lock(ctx)
	assert.Nil(t, unlock)
	assert.ErrorContains(t, err, "injected failure")

	// Once Redis answers again, the Store works: the failed Lock left
	// nothing held.
	m.SetError("")
	unlock, err = s.Lock(ctx)
	require.NoError(t, err)
	assert.NoError(t, unlock())
}

func TestNewRejectsMissingClientOrKey(t *testing.T) {
	_, rc := newMiniredis(t)
	assert.Panics(t, func() { redisstore.New(nil, testKey) })
	assert.Panics(t, func() { redisstore.New(rc, "") })
	assert.PanicsWithValue(t, "redisstore: ForAccount called with an empty account",
		func() { redisstore.ForAccount(rc, "tokens:", "") })
	assert.Panics(t, func() { redisstore.ForAccount(nil, "tokens:", "acme") })
}

// legacyValue is a token as Stores wrote it before the hash layout: the
// record alone, as a string.
const legacyValue = `{"version":1,"access_token":"access-1","token_type":"Bearer",` +
	`"refresh_token":"refresh-1","expiry":"2030-01-02T03:05:05.123456789Z"}`

func TestStoreReadsOlderStringLayoutAndWritesHash(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := redisstore.New(rc, testKey)
	require.NoError(t, m.Set(testKey, legacyValue))

	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)

	// The next save writes the hash layout over it.
	require.NoError(t, s.Save(ctx, storetest.Token(2)))
	assert.Equal(t, "hash", m.Type(testKey))
	assert.Equal(t, refresher.Fingerprint(storetest.Token(2)), m.HGet(testKey, "fp"))
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)
}

func TestCompareAndSwapOnMiniredis(t *testing.T) {
	testCompareAndSwap(t, func(t *testing.T) (redis.UniversalClient, func(key string) string) {
		m, rc := newMiniredis(t)
		return rc, func(key string) string { return m.Type(key) }
	})
}

// testCompareAndSwap checks the fenced save on a Redis that open returns,
// with a function that tells the type of a key.
func testCompareAndSwap(t *testing.T, open func(t *testing.T) (redis.UniversalClient, func(key string) string)) {
	tok := storetest.Token
	tests := []struct {
		name       string
		legacy     string        // stored in the older layout, if not ""
		stored     *oauth2.Token // stored in the hash layout, if not nil
		prev, next *oauth2.Token
		swapped    bool
		want       *oauth2.Token // stored afterwards; nil: no key
	}{
		{name: "absent, prev nil", prev: nil, next: tok(1), swapped: true, want: tok(1)},
		{name: "absent, prev set", prev: tok(1), next: tok(2), swapped: false, want: nil},
		{name: "match", stored: tok(1), prev: tok(1), next: tok(2), swapped: true, want: tok(2)},
		{name: "match on the refresh token alone", stored: tok(1),
			prev: &oauth2.Token{AccessToken: "other", RefreshToken: "refresh-1"}, next: tok(2), swapped: true, want: tok(2)},
		{name: "mismatch", stored: tok(3), prev: tok(1), next: tok(2), swapped: false, want: tok(3)},
		{name: "present, prev nil", stored: tok(3), prev: nil, next: tok(2), swapped: false, want: tok(3)},
		{name: "match, next nil deletes", stored: tok(1), prev: tok(1), next: nil, swapped: true, want: nil},
		{name: "older layout, match", legacy: legacyValue, prev: tok(1), next: tok(2), swapped: true, want: tok(2)},
		{name: "older layout, mismatch", legacy: legacyValue, prev: tok(5), next: tok(2), swapped: false, want: tok(1)},
		{name: "older layout, prev nil", legacy: legacyValue, prev: nil, next: tok(2), swapped: false, want: tok(1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			rc, typeOf := open(t)
			s := redisstore.New(rc, testKey+":"+tc.name)
			if tc.legacy != "" {
				require.NoError(t, rc.Set(ctx, s.Key(), tc.legacy, 0).Err())
			}
			if tc.stored != nil {
				require.NoError(t, s.Save(ctx, tc.stored))
			}
			swapped, err := s.CompareAndSwap(ctx, tc.prev, tc.next)
			require.NoError(t, err)
			assert.Equal(t, tc.swapped, swapped, "swapped")
			got, err := s.Load(ctx)
			require.NoError(t, err)
			if tc.want == nil {
				assert.Nil(t, got, "no token is stored")
				return
			}
			storetest.AssertSameToken(t, tc.want, got)
			if tc.swapped {
				assert.Equal(t, "hash", typeOf(s.Key()), "a swap writes the hash layout")
			}
		})
	}

	// The script compares fingerprints and never reads the record, which
	// may be encrypted one day.
	t.Run("record not read", func(t *testing.T) {
		ctx := t.Context()
		rc, _ := open(t)
		s := redisstore.New(rc, testKey+":opaque")
		require.NoError(t, rc.HSet(ctx, s.Key(), "fp", refresher.Fingerprint(tok(1)), "rec", "opaque bytes").Err())
		swapped, err := s.CompareAndSwap(ctx, tok(1), tok(2))
		require.NoError(t, err)
		assert.True(t, swapped)
		got, err := s.Load(ctx)
		require.NoError(t, err)
		storetest.AssertSameToken(t, tok(2), got)
	})

	t.Run("refuses a token without access token", func(t *testing.T) {
		rc, _ := open(t)
		s := redisstore.New(rc, testKey+":empty")
		_, err := s.CompareAndSwap(t.Context(), nil, &oauth2.Token{RefreshToken: "r"})
		assert.ErrorContains(t, err, "no access token")
	})
}

// Many replicas race to replace the same token: exactly one wins, and the
// others see that they lost.
func TestCompareAndSwapHasOneWinner(t *testing.T) {
	ctx := t.Context()
	m, _ := newMiniredis(t)
	require.NoError(t, redisstore.New(newClient(t, m.Addr()), testKey).Save(ctx, storetest.Token(0)))
	const racers = 8
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := range racers {
		s := redisstore.New(newClient(t, m.Addr()), testKey)
		wg.Go(func() {
			swapped, err := s.CompareAndSwap(ctx, storetest.Token(0), storetest.Token(i+1))
			assert.NoError(t, err)
			if swapped {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	assert.EqualValues(t, 1, wins.Load(), "winners")
}

func TestForAccountKeyLayout(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	a := redisstore.ForAccount(rc, "tokens:", "acme")
	assert.Equal(t, "tokens:{acme}", a.Key())
	assert.Equal(t, "tokens:{acme}:lock", a.LockKey())
	assert.Equal(t, a.Key(), redisstore.AccountKey("tokens:", "acme"))

	// An account named like another's lease key gets keys of its own.
	odd := redisstore.ForAccount(rc, "tokens:", "acme}:lock")
	for _, k := range []string{odd.Key(), odd.LockKey()} {
		assert.NotEqual(t, a.Key(), k)
		assert.NotEqual(t, a.LockKey(), k)
	}

	// Accounts keep their tokens and leases apart.
	b := redisstore.ForAccount(rc, "tokens:", "globex", redisstore.WithLeaseTTL(time.Minute))
	require.NoError(t, a.Save(ctx, storetest.Token(1)))
	require.NoError(t, b.Save(ctx, storetest.Token(2)))
	unlockA, err := a.Lock(ctx)
	require.NoError(t, err)
	unlockB, err := b.Lock(ctx)
	require.NoError(t, err, "another account's lease is free")
	assert.Equal(t, time.Minute, m.TTL(b.LockKey()), "options apply")
	got, err := redisstore.ForAccount(newClient(t, m.Addr()), "tokens:", "acme").Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
	require.NoError(t, unlockA())
	require.NoError(t, unlockB())
}

func TestOptionsSetLeaseAndKeys(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)

	s := redisstore.New(rc, testKey)
	assert.Equal(t, redisstore.DefaultLeaseTTL, redisstore.LeaseTTL(s))
	assert.Equal(t, redisstore.DefaultLeaseTTL/3, redisstore.RenewInterval(s))

	s = redisstore.New(rc, testKey,
		redisstore.WithLeaseTTL(2500*time.Microsecond),
		redisstore.WithRenewInterval(time.Hour), // not below the TTL: ignored
		redisstore.WithLockKey("locks:test"),
		redisstore.WithPollInterval(time.Millisecond))
	assert.Equal(t, 3*time.Millisecond, redisstore.LeaseTTL(s), "rounded up to a millisecond")
	assert.Equal(t, time.Millisecond, redisstore.RenewInterval(s))
	assert.Equal(t, "locks:test", s.LockKey())

	s = redisstore.New(rc, testKey, redisstore.WithLeaseTTL(90*time.Second), redisstore.WithRenewInterval(5*time.Second))
	assert.Equal(t, 5*time.Second, redisstore.RenewInterval(s))
	redisstore.SetRenewTicks(s, nil, nil)
	unlock, err := s.Lock(ctx)
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, m.TTL(s.LockKey()), "the lease's TTL in Redis")
	assert.NoError(t, unlock())
}

// Storing a token and coordinating through the lease work the same through
// the other kinds of client.
func TestStoreWorksWithUniversalClients(t *testing.T) {
	ctx := t.Context()
	m := miniredis.RunT(t)
	clients := map[string]redis.UniversalClient{
		"universal": redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}}),
		"ring":      redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": m.Addr()}}),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			t.Cleanup(func() { c.Close() })
			s := redisstore.New(c, testKey+":"+name)
			require.NoError(t, s.Save(ctx, storetest.Token(3)))
			got, err := s.Load(ctx)
			require.NoError(t, err)
			storetest.AssertSameToken(t, storetest.Token(3), got)
			unlock, err := s.Lock(ctx)
			require.NoError(t, err)
			assert.True(t, m.Exists(s.LockKey()))
			assert.NoError(t, unlock())
			assert.False(t, m.Exists(s.LockKey()))
		})
	}
}
