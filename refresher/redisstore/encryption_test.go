package redisstore_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/sealed"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/redisstore"
)

// The tests in this file run against a real redis-server, started by
// startRedisServer, and read what it holds with raw commands.

var (
	keyring = storetest.Keyring
	encKey  = storetest.EncryptionKey
)

// rawValues returns every value the Redis holds, under every key, as raw
// commands read them: hash fields and strings.
func rawValues(t *testing.T, rc *redis.Client) map[string][]byte {
	t.Helper()
	ctx := t.Context()
	out := map[string][]byte{}
	keys, err := rc.Keys(ctx, "*").Result()
	require.NoError(t, err)
	for _, k := range keys {
		switch typ := rc.Type(ctx, k).Val(); typ {
		case "hash":
			fields, err := rc.HGetAll(ctx, k).Result()
			require.NoError(t, err)
			for f, v := range fields {
				out[k+" "+f] = []byte(v)
			}
		case "string":
			v, err := rc.Get(ctx, k).Bytes()
			require.NoError(t, err)
			out[k] = v
		default:
			t.Fatalf("key %q holds a %s", k, typ)
		}
	}
	return out
}

// assertNoTokenAtRest fails if any raw value holds the access or the
// refresh token of any of toks.
func assertNoTokenAtRest(t *testing.T, rc *redis.Client, toks ...*oauth2.Token) {
	t.Helper()
	values := rawValues(t, rc)
	require.NotEmpty(t, values)
	for where, v := range values {
		assert.Empty(t, storetest.SecretsIn(where, v, toks...))
	}
}

// recordKeyID returns the key id of the sealed record under key.
func recordKeyID(t *testing.T, rc *redis.Client, key string) string {
	t.Helper()
	rec, err := rc.HGet(t.Context(), key, "rec").Bytes()
	require.NoError(t, err)
	id, err := sealed.KeyID(rec)
	require.NoError(t, err)
	return id
}

func TestRealRedisEncryptedStoreKeepsNoTokenAtRest(t *testing.T) {
	ctx := t.Context()
	rc := newClient(t, startRedisServer(t))
	s := redisstore.New(rc, testKey, redisstore.WithEncryption(keyring(t, encKey("k1", 1))))

	tok1, tok2 := storetest.Token(1), storetest.Token(2)
	require.NoError(t, s.Save(ctx, tok1))
	assertNoTokenAtRest(t, rc, tok1)
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, tok1, got)

	// The fenced save seals too, and still compares the clear fingerprint.
	unlock, err := s.Lock(ctx) // the lease key is in the keyspace as well
	require.NoError(t, err)
	swapped, err := s.CompareAndSwap(ctx, tok1, tok2)
	require.NoError(t, err)
	assert.True(t, swapped)
	assertNoTokenAtRest(t, rc, tok1, tok2)
	require.NoError(t, unlock())
	assert.Equal(t, refresher.Fingerprint(tok2), rc.HGet(ctx, testKey, "fp").Val())

	swapped, err = s.CompareAndSwap(ctx, tok1, storetest.Token(3))
	require.NoError(t, err)
	assert.False(t, swapped, "the stored token is no longer tok1")
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, tok2, got)
	assert.Equal(t, "k1", recordKeyID(t, rc, testKey))
}

func TestRealRedisEncryptionKeyRotationThroughTheStore(t *testing.T) {
	ctx := t.Context()
	rc := newClient(t, startRedisServer(t))
	k1, k2 := encKey("2026-01", 1), encKey("2026-07", 2)

	require.NoError(t, redisstore.New(rc, testKey, redisstore.WithEncryption(keyring(t, k1))).Save(ctx, storetest.Token(1)))
	assert.Equal(t, "2026-01", recordKeyID(t, rc, testKey))

	// A new primary key: the old record opens, the next save uses the new key.
	rotated := redisstore.New(rc, testKey, redisstore.WithEncryption(keyring(t, k2, k1)))
	got, err := rotated.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
	swapped, err := rotated.CompareAndSwap(ctx, got, storetest.Token(2))
	require.NoError(t, err)
	require.True(t, swapped)
	assert.Equal(t, "2026-07", recordKeyID(t, rc, testKey))

	// The old key can now go; a store that has only the old key fails clearly.
	got, err = redisstore.New(rc, testKey, redisstore.WithEncryption(keyring(t, k2))).Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)

	got, err = redisstore.New(rc, testKey, redisstore.WithEncryption(keyring(t, k1))).Load(ctx)
	storetest.AssertDecryptError(t, got, err, refresher.ErrUnknownKey, "2026-07")
}

func TestRealRedisRecordCopiedToAnotherAccountDoesNotOpen(t *testing.T) {
	ctx := t.Context()
	rc := newClient(t, startRedisServer(t))
	keys := keyring(t, encKey("k1", 1))
	alice := redisstore.ForAccount(rc, "tokens:", "alice", redisstore.WithEncryption(keys))
	bob := redisstore.ForAccount(rc, "tokens:", "bob", redisstore.WithEncryption(keys))
	require.NoError(t, alice.Save(ctx, storetest.Token(1)))
	require.NoError(t, bob.Save(ctx, storetest.Token(2)))

	// Someone with write access to Redis copies alice's hash over bob's.
	fields, err := rc.HGetAll(ctx, alice.Key()).Result()
	require.NoError(t, err)
	require.NoError(t, rc.HSet(ctx, bob.Key(), fields).Err())

	got, err := bob.Load(ctx)
	assert.Nil(t, got, "bob's store must not hand out alice's token")
	require.ErrorIs(t, err, refresher.ErrNotAuthentic)
	assert.Contains(t, err.Error(), `redisstore: key "tokens:{bob}"`)

	// Alice's own record still opens.
	got, err = alice.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
}

func TestRealRedisWrongOrMissingEncryptionKeyIsAClearError(t *testing.T) {
	ctx := t.Context()
	rc := newClient(t, startRedisServer(t))
	right, wrong := encKey("k1", 1), encKey("k1", 9) // same id, other bytes
	require.NoError(t, redisstore.New(rc, testKey, redisstore.WithEncryption(keyring(t, right))).Save(ctx, storetest.Token(1)))

	for _, tc := range []struct {
		name  string
		store *redisstore.Store
		want  error
	}{
		{"wrong key", redisstore.New(rc, testKey, redisstore.WithEncryption(keyring(t, wrong))), refresher.ErrNotAuthentic},
		{"no key", redisstore.New(rc, testKey), refresher.ErrNoKeyring},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.store.Load(ctx)
			storetest.AssertDecryptError(t, got, err, tc.want, "k1")
			for _, secret := range []string{string(right.Key), string(wrong.Key), "access-1", "refresh-1"} {
				assert.NotContains(t, err.Error(), secret)
			}

			// A fenced save against that record does not overwrite it
			// blindly either: it compares fingerprints only, and fails
			// for a token other than the stored one.
			swapped, err := tc.store.CompareAndSwap(ctx, storetest.Token(7), storetest.Token(8))
			require.NoError(t, err)
			assert.False(t, swapped)
		})
	}
}

func TestRealRedisPlainRecordIsReadAndSealedOnNextSave(t *testing.T) {
	ctx := t.Context()
	rc := newClient(t, startRedisServer(t))
	keys := keyring(t, encKey("k1", 1))

	for _, tc := range []struct {
		name  string
		write func(ctx context.Context) error
	}{
		{"hash layout", func(ctx context.Context) error {
			return redisstore.New(rc, testKey).Save(ctx, storetest.Token(1))
		}},
		{"older string layout", func(ctx context.Context) error {
			return rc.Set(ctx, testKey, legacyValue, 0).Err()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, rc.Del(ctx, testKey).Err())
			require.NoError(t, tc.write(ctx))
			s := redisstore.New(rc, testKey, redisstore.WithEncryption(keys))

			got, err := s.Load(ctx)
			require.NoError(t, err, "a record from before encryption is read")
			storetest.AssertSameToken(t, storetest.Token(1), got)

			swapped, err := s.CompareAndSwap(ctx, got, storetest.Token(2))
			require.NoError(t, err)
			require.True(t, swapped)
			assertNoTokenAtRest(t, rc, storetest.Token(1), storetest.Token(2))
			assert.Equal(t, "k1", recordKeyID(t, rc, testKey))
			got, err = s.Load(ctx)
			require.NoError(t, err)
			storetest.AssertSameToken(t, storetest.Token(2), got)
		})
	}
}
