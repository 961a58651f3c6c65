package pgstore_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/sealed"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
)

var (
	keyring = storetest.Keyring
	encKey  = storetest.EncryptionKey
)

// rawRows returns every row of table as a raw SELECT reads it: the key, the
// record's bytes and the fingerprint.
func rawRows(t *testing.T, pool *pgxpool.Pool, table string) [][]byte {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT key, record, fingerprint FROM `+pgx.Identifier{table}.Sanitize())
	require.NoError(t, err)
	var out [][]byte
	for rows.Next() {
		var key, fp string
		var rec []byte
		require.NoError(t, rows.Scan(&key, &rec, &fp))
		out = append(out, []byte(key), rec, []byte(fp))
	}
	require.NoError(t, rows.Err())
	require.NotEmpty(t, out)
	return out
}

// tokensAtRest returns the access and refresh tokens of toks that some
// column of some row of table holds.
func tokensAtRest(t *testing.T, pool *pgxpool.Pool, table string, toks ...*oauth2.Token) []string {
	t.Helper()
	var found []string
	for _, v := range rawRows(t, pool, table) {
		found = append(found, storetest.SecretsIn("", v, toks...)...)
	}
	return found
}

// rowKeyID returns the key id of the sealed record of key.
func rowKeyID(t *testing.T, pool *pgxpool.Pool, table, key string) string {
	t.Helper()
	id, err := sealed.KeyID(readRow(t, pool, table, key).record)
	require.NoError(t, err)
	return id
}

func TestEncryptedRowHoldsNoTokenValue(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	tok1, tok2 := storetest.Token(1), storetest.Token(2)

	// Without encryption, the check finds the tokens: it can fail.
	plain := pgstore.New(pool, "plain", pgstore.WithTable(table))
	require.NoError(t, plain.Save(ctx, tok1))
	assert.ElementsMatch(t, []string{"access-1", "refresh-1"}, tokensAtRest(t, pool, table, tok1))
	_, err := pool.Exec(ctx, `DELETE FROM `+pgx.Identifier{table}.Sanitize())
	require.NoError(t, err)

	s := pgstore.New(pool, testKey, pgstore.WithTable(table), pgstore.WithEncryption(keyring(t, encKey("k1", 1))))
	require.NoError(t, s.Save(ctx, tok1))
	assert.Empty(t, tokensAtRest(t, pool, table, tok1))
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, tok1, got)

	// The fenced save seals too, and still compares the clear fingerprint.
	swapped, err := s.CompareAndSwap(ctx, tok1, tok2)
	require.NoError(t, err)
	assert.True(t, swapped)
	assert.Empty(t, tokensAtRest(t, pool, table, tok1, tok2))
	assert.Equal(t, refresher.Fingerprint(tok2), readRow(t, pool, table, testKey).fingerprint)
	swapped, err = s.CompareAndSwap(ctx, tok1, storetest.Token(3))
	require.NoError(t, err)
	assert.False(t, swapped, "the row no longer holds tok1")

	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, tok2, got)
	assert.Equal(t, "k1", rowKeyID(t, pool, table, testKey))
}

func TestEncryptionKeyRotationThroughTheStore(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	k1, k2 := encKey("2026-01", 1), encKey("2026-07", 2)
	store := func(keys ...refresher.EncryptionKey) *pgstore.Store {
		return pgstore.New(pool, testKey, pgstore.WithTable(table), pgstore.WithEncryption(keyring(t, keys...)))
	}

	require.NoError(t, store(k1).Save(ctx, storetest.Token(1)))
	assert.Equal(t, "2026-01", rowKeyID(t, pool, table, testKey))

	// A new primary key: the old record opens, the next save uses the new key.
	rotated := store(k2, k1)
	got, err := rotated.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
	swapped, err := rotated.CompareAndSwap(ctx, got, storetest.Token(2))
	require.NoError(t, err)
	require.True(t, swapped)
	assert.Equal(t, "2026-07", rowKeyID(t, pool, table, testKey))

	// The old key can now go; a store with only the old key fails clearly.
	got, err = store(k2).Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)

	got, err = store(k1).Load(ctx)
	storetest.AssertDecryptError(t, got, err, refresher.ErrUnknownKey, "2026-07")
}

func TestRecordCopiedToAnotherAccountDoesNotOpen(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table, other := newTable(t, pool), newTable(t, pool)
	enc := pgstore.WithEncryption(keyring(t, encKey("k1", 1)))
	alice := pgstore.New(pool, "alice", pgstore.WithTable(table), enc)
	bob := pgstore.New(pool, "bob", pgstore.WithTable(table), enc)
	aliceElsewhere := pgstore.New(pool, "alice", pgstore.WithTable(other), enc)
	require.NoError(t, alice.Save(ctx, storetest.Token(1)))
	require.NoError(t, bob.Save(ctx, storetest.Token(2)))
	require.NoError(t, aliceElsewhere.Save(ctx, storetest.Token(3)))

	// Someone with write access to the table copies alice's row over bob's,
	// and into the other table.
	tbl, otherTbl := pgx.Identifier{table}.Sanitize(), pgx.Identifier{other}.Sanitize()
	_, err := pool.Exec(ctx, `UPDATE `+tbl+` AS b SET record = a.record, fingerprint = a.fingerprint
		FROM `+tbl+` AS a WHERE a.key = 'alice' AND b.key = 'bob'`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `UPDATE `+otherTbl+` AS b SET record = a.record, fingerprint = a.fingerprint
		FROM `+tbl+` AS a WHERE a.key = 'alice' AND b.key = 'alice'`)
	require.NoError(t, err)

	for _, s := range []*pgstore.Store{bob, aliceElsewhere} {
		got, err := s.Load(ctx)
		assert.Nil(t, got, "%v must not hand out another row's token", s)
		require.ErrorIs(t, err, refresher.ErrNotAuthentic)
		assert.Contains(t, err.Error(), `pgstore: key "`+s.Key()+`"`)
	}

	got, err := alice.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
}

func TestWrongOrMissingEncryptionKeyIsAClearError(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	right, wrong := encKey("k1", 1), encKey("k1", 9) // same id, other bytes
	require.NoError(t, pgstore.New(pool, testKey, pgstore.WithTable(table), pgstore.WithEncryption(keyring(t, right))).
		Save(ctx, storetest.Token(1)))

	for _, tc := range []struct {
		name  string
		store *pgstore.Store
		want  error
	}{
		{"wrong key", pgstore.New(pool, testKey, pgstore.WithTable(table), pgstore.WithEncryption(keyring(t, wrong))), refresher.ErrNotAuthentic},
		{"no key", pgstore.New(pool, testKey, pgstore.WithTable(table)), refresher.ErrNoKeyring},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.store.Load(ctx)
			storetest.AssertDecryptError(t, got, err, tc.want, "k1")
			for _, secret := range []string{string(right.Key), string(wrong.Key), "access-1", "refresh-1"} {
				assert.NotContains(t, err.Error(), secret)
			}
		})
	}
}

func TestPlainRowIsReadAndSealedOnNextSave(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	require.NoError(t, pgstore.New(pool, testKey, pgstore.WithTable(table)).Save(ctx, storetest.Token(1)))

	s := pgstore.New(pool, testKey, pgstore.WithTable(table), pgstore.WithEncryption(keyring(t, encKey("k1", 1))))
	got, err := s.Load(ctx)
	require.NoError(t, err, "a row from before encryption is read")
	storetest.AssertSameToken(t, storetest.Token(1), got)

	swapped, err := s.CompareAndSwap(ctx, got, storetest.Token(2))
	require.NoError(t, err)
	require.True(t, swapped)
	assert.Empty(t, tokensAtRest(t, pool, table, storetest.Token(1), storetest.Token(2)))
	assert.Equal(t, "k1", rowKeyID(t, pool, table, testKey))
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)
}
