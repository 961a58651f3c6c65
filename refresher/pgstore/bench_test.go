package pgstore_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
)

// counter counts the statements a pool runs and the writes its
// connections make to the server: a statement is one write, and one round
// trip, once pgx has prepared it on the connection.
type counter struct {
	statements, writes atomic.Int64
}

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.statements.Add(1)
	return ctx
}

func (c *counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// countingConn counts its writes.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// countedPool returns a pool whose statements and writes c counts.
func countedPool(b *testing.B, c *counter) *pgxpool.Pool {
	return newPool(b, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.Tracer = c
		var d net.Dialer
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{conn, &c.writes}, nil
		}
	})
}

// report adds the statements and writes per operation counted since
// before.
func report(b *testing.B, c *counter, statements, writes int64) {
	b.ReportMetric(float64(c.statements.Load()-statements)/float64(b.N), "statements/op")
	b.ReportMetric(float64(c.writes.Load()-writes)/float64(b.N), "writes/op")
}

// BenchmarkLoad is the cost of opening a session from the store: one
// Load of a stored token.
func BenchmarkLoad(b *testing.B) {
	ctx := b.Context()
	var c counter
	pool := countedPool(b, &c)
	s := pgstore.New(pool, testKey, pgstore.WithTable(newTable(b, pool)))
	if err := s.Save(ctx, storetest.Token(1)); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Load(ctx); err != nil { // prepares the statement
		b.Fatal(err)
	}
	statements, writes := c.statements.Load(), c.writes.Load()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Load(ctx); err != nil {
			b.Fatal(err)
		}
	}
	report(b, &c, statements, writes)
}

// BenchmarkRefresh is the store's share of one refresh, as a Source makes
// it: lock, reload, (confirm the lease,) compare-and-swap, unlock. The
// refresh call itself is not included.
func BenchmarkRefresh(b *testing.B) {
	for _, confirm := range []bool{false, true} {
		name := "Lock+Load+CAS+Unlock"
		if confirm {
			name = "LockLease+Load+Confirm+CAS+Unlock"
		}
		b.Run(name, func(b *testing.B) {
			ctx := b.Context()
			var c counter
			pool := countedPool(b, &c)
			s := pgstore.New(pool, testKey, pgstore.WithTable(newTable(b, pool)))
			if err := s.Save(ctx, storetest.Token(0)); err != nil {
				b.Fatal(err)
			}
			n := 0
			refresh := func() {
				lease, err := s.LockLease(ctx)
				if err != nil {
					b.Fatal(err)
				}
				cur, err := s.Load(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if confirm {
					if err := lease.Confirm(ctx); err != nil {
						b.Fatal(err)
					}
				}
				n++
				if ok, err := s.CompareAndSwap(ctx, cur, storetest.Token(n)); err != nil || !ok {
					b.Fatalf("swapped %v, %v", ok, err)
				}
				if err := lease.Unlock(); err != nil {
					b.Fatal(err)
				}
			}
			refresh() // prepares the statements
			statements, writes := c.statements.Load(), c.writes.Load()
			b.ReportAllocs()
			for b.Loop() {
				refresh()
			}
			report(b, &c, statements, writes)
		})
	}
}
