package pgstore_test

import (
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
)

const testKey = "account-42"

// row is what the table holds for a key.
type row struct {
	record      []byte
	fingerprint string
	version     int64
	updatedAt   time.Time
}

// readRow reads the row of key in table directly.
func readRow(t *testing.T, pool *pgxpool.Pool, table, key string) row {
	t.Helper()
	var r row
	err := pool.QueryRow(t.Context(),
		`SELECT record, fingerprint, version, updated_at FROM `+pgx.Identifier{table}.Sanitize()+` WHERE key = $1`, key).
		Scan(&r.record, &r.fingerprint, &r.version, &r.updatedAt)
	require.NoError(t, err)
	return r
}

func TestLoadOfAbsentKeyReturnsNoToken(t *testing.T) {
	pool := newPool(t, nil)
	s := pgstore.New(pool, testKey, pgstore.WithTable(newTable(t, pool)))
	got, err := s.Load(t.Context())
	assert.NoError(t, err)
	assert.Nil(t, got)
}

func TestSaveLoadRoundTrip(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	s := pgstore.New(pool, testKey, pgstore.WithTable(table))
	assert.Equal(t, testKey, s.Key())

	want := storetest.Token(1).WithExtra(map[string]any{"id_token": "not kept"})
	require.NoError(t, s.Save(ctx, want))
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, want, got)
	assert.Nil(t, got.Extra("id_token"), "extra fields are not stored")

	// Another Store on the same key, through another pool (another
	// replica), reads it too.
	got, err = pgstore.New(newPool(t, nil), testKey, pgstore.WithTable(table)).Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, want, got)

	// The row holds the token's record in the stores' common format, its
	// fingerprint, and a version that each save increments.
	r := readRow(t, pool, table, testKey)
	assert.JSONEq(t, `{"version":1,"access_token":"access-1","token_type":"Bearer",
		"refresh_token":"refresh-1","expiry":"2030-01-02T03:05:05.123456789Z"}`, string(r.record))
	assert.Equal(t, refresher.Fingerprint(want), r.fingerprint)
	assert.Equal(t, int64(1), r.version)

	require.NoError(t, s.Save(ctx, storetest.Token(2)))
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)
	assert.Equal(t, int64(2), readRow(t, pool, table, testKey).version, "a save overwrites the row")
}

func TestSaveRefusesTokenWithoutAccessToken(t *testing.T) {
	pool := newPool(t, nil)
	s := pgstore.New(pool, testKey, pgstore.WithTable(newTable(t, pool)))
	assert.Error(t, s.Save(t.Context(), nil))
	tok := storetest.Token(1)
	tok.AccessToken = ""
	assert.Error(t, s.Save(t.Context(), tok))
}

func TestCompareAndSwapReplacesMatchingToken(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	s := pgstore.New(pool, testKey, pgstore.WithTable(table))
	require.NoError(t, s.Save(ctx, storetest.Token(1)))

	// prev matches by fingerprint, that is by refresh token: a token with
	// the same refresh token and another access token still matches.
	prev := storetest.Token(1)
	prev.AccessToken = "access-seen-by-this-process"
	swapped, err := s.CompareAndSwap(ctx, prev, storetest.Token(2))
	require.NoError(t, err)
	assert.True(t, swapped)
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)
	r := readRow(t, pool, table, testKey)
	assert.Equal(t, refresher.Fingerprint(storetest.Token(2)), r.fingerprint)
	assert.Equal(t, int64(2), r.version)
}

func TestCompareAndSwapMismatchWritesNothing(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	s := pgstore.New(pool, testKey, pgstore.WithTable(table))
	require.NoError(t, s.Save(ctx, storetest.Token(2)))
	before := readRow(t, pool, table, testKey)

	for name, prev := range map[string]*oauth2.Token{
		"older token": storetest.Token(1),
		"nil":         nil,
	} {
		swapped, err := s.CompareAndSwap(ctx, prev, storetest.Token(3))
		require.NoError(t, err, name)
		assert.False(t, swapped, "%s: swapped", name)
	}
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)
	after := readRow(t, pool, table, testKey)
	assert.Equal(t, before, after, "the row was written")
}

func TestCompareAndSwapFromNilInsertsOnlyWhenAbsent(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	s := pgstore.New(pool, testKey, pgstore.WithTable(table))

	// A token for an absent key is not a match.
	swapped, err := s.CompareAndSwap(ctx, storetest.Token(1), storetest.Token(2))
	require.NoError(t, err)
	assert.False(t, swapped, "swapped from a token the store does not hold")
	got, err := s.Load(ctx)
	require.NoError(t, err)
	assert.Nil(t, got)

	swapped, err = s.CompareAndSwap(ctx, nil, storetest.Token(1))
	require.NoError(t, err)
	assert.True(t, swapped, "first token")
	swapped, err = s.CompareAndSwap(ctx, nil, storetest.Token(2))
	require.NoError(t, err)
	assert.False(t, swapped, "second first token")
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
	assert.Equal(t, int64(1), readRow(t, pool, table, testKey).version)
}

func TestConcurrentCompareAndSwapFromOneTokenSwapsOnce(t *testing.T) {
	const writers = 8
	ctx := t.Context()
	pool := newPool(t, func(c *pgxpool.Config) { c.MaxConns = writers })
	table := newTable(t, pool)
	require.NoError(t, pgstore.New(pool, testKey, pgstore.WithTable(table)).Save(ctx, storetest.Token(0)))

	// Each writer has a Store of its own, as each replica would, and all
	// start from token 0.
	start := make(chan struct{})
	results := make([]bool, writers)
	errs := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		s := pgstore.New(pool, testKey, pgstore.WithTable(table))
		wg.Go(func() {
			<-start
			results[i], errs[i] = s.CompareAndSwap(ctx, storetest.Token(0), storetest.Token(i+1))
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i := range writers {
		require.NoError(t, errs[i])
		if results[i] {
			assert.Equal(t, -1, winner, "writers %d and %d both swapped", winner, i)
			winner = i
		}
	}
	require.NotEqual(t, -1, winner, "no writer swapped")
	got, err := pgstore.New(pool, testKey, pgstore.WithTable(table)).Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(winner+1), got)
	assert.Equal(t, int64(2), readRow(t, pool, table, testKey).version)
}

func TestStoresWithDifferentKeysAreIsolated(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	a := pgstore.New(pool, "account-a", pgstore.WithTable(table))
	b := pgstore.New(pool, "account-b", pgstore.WithTable(table))

	require.NoError(t, a.Save(ctx, storetest.Token(1)))
	got, err := b.Load(ctx)
	require.NoError(t, err)
	assert.Nil(t, got, "b sees a's token")

	swapped, err := b.CompareAndSwap(ctx, storetest.Token(1), storetest.Token(2))
	require.NoError(t, err)
	assert.False(t, swapped, "b swapped a's token")
	swapped, err = b.CompareAndSwap(ctx, nil, storetest.Token(3))
	require.NoError(t, err)
	assert.True(t, swapped, "b's first token")

	got, err = a.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
	got, err = b.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(3), got)

	// The same key in another table is another account too.
	got, err = pgstore.New(pool, "account-a", pgstore.WithTable(newTable(t, pool))).Load(ctx)
	require.NoError(t, err)
	assert.Nil(t, got, "a Store of another table sees a's token")
}

func TestLoadOfCorruptRowQuotesNothing(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	_, err := pool.Exec(ctx, `INSERT INTO `+pgx.Identifier{table}.Sanitize()+
		` (key, record, fingerprint) VALUES ($1, $2, '')`, testKey, []byte(`{"refresh_token":"secret-refresh"`))
	require.NoError(t, err)

	got, err := pgstore.New(pool, testKey, pgstore.WithTable(table)).Load(ctx)
	assert.Nil(t, got)
	require.Error(t, err)
	assert.Contains(t, err.Error(), testKey)
	assert.NotContains(t, err.Error(), "secret")
}

func TestMigrateIsIdempotent(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool) // migrated once
	s := pgstore.New(pool, testKey, pgstore.WithTable(table))
	require.NoError(t, s.Save(ctx, storetest.Token(1)))

	// Again, several times at once: nothing fails, nothing is lost.
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() { errs <- pgstore.Migrate(ctx, pool, pgstore.WithTable(table)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
}

func TestMigrateCreatesTableInSchema(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	schema := "pgstore test " + rand.Text()[:8]
	_, err := pool.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		pool.Exec(t.Context(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})

	for range 2 {
		require.NoError(t, pgstore.Migrate(ctx, pool, pgstore.WithTable(schema, "tokens")))
	}
	s := pgstore.New(pool, testKey, pgstore.WithTable(schema, "tokens"))
	require.NoError(t, s.Save(ctx, storetest.Token(1)))
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "tokens"}.Sanitize()).Scan(&n))
	assert.Equal(t, 1, n)
}

func TestMigrateDefaultTable(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	var existed bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgstore.DefaultTable).Scan(&existed))
	require.NoError(t, pgstore.Migrate(ctx, pool))
	require.NoError(t, pgstore.Migrate(ctx, pool))
	if !existed {
		t.Cleanup(func() { pool.Exec(t.Context(), `DROP TABLE `+pgstore.DefaultTable) })
	}
	var exists bool
	require.NoError(t, pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, pgstore.DefaultTable).Scan(&exists))
	assert.True(t, exists)
}

func TestFormatPrintsNoToken(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	s := pgstore.New(pool, testKey, pgstore.WithTable(newTable(t, pool)))
	require.NoError(t, s.Save(ctx, storetest.Token(1)))
	lease, err := s.LockLease(ctx)
	require.NoError(t, err)
	defer lease.Unlock()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		out := fmt.Sprintf(verb, s)
		assert.Contains(t, out, testKey, verb)
		assert.NotContains(t, out, "refresh-1", verb)
		assert.NotContains(t, out, "access-1", verb)
	}
	assert.Equal(t, "<nil>", fmt.Sprint((*pgstore.Store)(nil)))
}
