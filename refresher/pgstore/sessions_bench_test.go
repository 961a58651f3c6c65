package pgstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
)

// BenchmarkSessionOpen measures opening one session that is not resident
// in a refresher.Sessions: a new Source over the account's Store, and the
// first Token, which loads the account's row. Each iteration opens another
// account, so that none is resident yet.
func BenchmarkSessionOpen(b *testing.B) {
	const accounts = 1024
	ctx := b.Context()
	var c counter
	pool := countedPool(b, &c)
	table := newTable(b, pool)
	for i := range accounts {
		tok := storetest.Token(i) // valid until 2030
		if err := pgstore.New(pool, storetest.AccountKey(i), pgstore.WithTable(table)).Save(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
	never := refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return nil, errors.New("the benchmark refreshed")
	})
	sessions := refresher.NewSessions(func(_ context.Context, key string) (*refresher.Source, error) {
		return refresher.NewSource(never, refresher.WithStore(pgstore.New(pool, key, pgstore.WithTable(table)))), nil
	}, refresher.WithMaxSessions(accounts/2)) // cycling over all keys, every Get opens
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = storetest.AccountKey(i)
	}
	open := func(i int) {
		if _, err := sessions.Token(refresher.WithSession(ctx, keys[i%accounts])); err != nil {
			b.Fatal(err)
		}
	}
	for i := range accounts { // prepares the statements on every connection
		open(i)
	}
	statements, writes := c.statements.Load(), c.writes.Load()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		open(i)
		i++
	}
	report(b, &c, statements, writes)
}

// BenchmarkSourceRefresh measures one refresh of a Source over a Store, as
// the Source makes it (read the row, lock, read again, confirm the lease,
// compare-and-swap, unlock), with an Endpoint that answers from memory: the
// round trips to PostgreSQL that a refresh costs, and their time.
func BenchmarkSourceRefresh(b *testing.B) {
	ctx := b.Context()
	var c counter
	pool := countedPool(b, &c)
	s := pgstore.New(pool, testKey, pgstore.WithTable(newTable(b, pool)))
	n := 0
	endpoint := refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		n++
		t := storetest.Token(n)
		t.Expiry = time.Now().Add(time.Hour)
		return t, nil
	})
	first := storetest.Token(0)
	first.Expiry = time.Now().Add(time.Hour)
	src := refresher.NewSource(endpoint, refresher.WithToken(first), refresher.WithStore(s))
	cur, err := src.Token(ctx) // saves the first token
	if err != nil {
		b.Fatal(err)
	}
	if cur, err = src.Refresh(ctx, cur); err != nil { // prepares the statements
		b.Fatal(err)
	}
	statements, writes := c.statements.Load(), c.writes.Load()
	b.ReportAllocs()
	for b.Loop() {
		if cur, err = src.Refresh(ctx, cur); err != nil {
			b.Fatal(err)
		}
	}
	report(b, &c, statements, writes)
}
