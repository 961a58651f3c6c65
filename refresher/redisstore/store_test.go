package redisstore_test

import (
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/storetest"
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

	// The value is the versioned JSON a FileStore writes, without expiry.
	raw, err := m.Get(testKey)
	require.NoError(t, err)
	assert.JSONEq(t, `{"version":1,"access_token":"access-1","token_type":"Bearer",
		"refresh_token":"refresh-1","expiry":"2030-01-02T03:05:05.123456789Z"}`, raw)
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
			require.NoError(t, m.Set(testKey, tc.value))
			got, err := redisstore.New(rc, testKey).Load(t.Context())
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), testKey, "the error names the key")
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
