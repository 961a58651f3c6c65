package refresher_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

// benchToken returns a token valid for an hour whose access and refresh
// tokens are opaque strings of 43 bytes (32 random bytes in base64url), as
// many servers issue them.
func benchToken() *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  rand.Text() + rand.Text()[:17],
		TokenType:    "Bearer",
		RefreshToken: rand.Text() + rand.Text()[:17],
		Expiry:       time.Now().Add(time.Hour),
		ExpiresIn:    3600,
	}
}

// benchTokenBytes is what the strings of a benchToken take: the two tokens
// (TokenType is a constant).
const benchTokenBytes = 2 * 43

// noEndpoint is an Endpoint for benchmarks that must not refresh.
var noEndpoint = refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	return nil, errors.New("the benchmark refreshed")
})

// BenchmarkSessionHeap measures the heap that an idle resident session
// takes in a Sessions: its Source holding its token (loaded from a
// MemoryStore of its own, which holds a copy), the Store, and the
// Sessions' bookkeeping (map entry, list element, key). Each iteration
// opens sessionHeapN sessions and reports the growth of the live heap,
// after a GC, per session. B/session-overhead leaves out the bytes of the
// token strings themselves.
func BenchmarkSessionHeap(b *testing.B) {
	const sessionHeapN = 10000
	ctx := b.Context()
	tokens := make([]*oauth2.Token, sessionHeapN)
	keys := make([]string, sessionHeapN)
	for i := range tokens {
		tokens[i], keys[i] = benchToken(), storetest.AccountKey(i)
	}
	var total float64
	n := 0
	for b.Loop() {
		b.StopTimer()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		stores := make(map[string]*refresher.MemoryStore, sessionHeapN)
		for i, k := range keys {
			stores[k] = refresher.NewMemoryStore(tokens[i])
		}
		sessions := refresher.NewSessions(func(_ context.Context, key string) (*refresher.Source, error) {
			return refresher.NewSource(noEndpoint, refresher.WithStore(stores[key])), nil
		})
		for _, k := range keys {
			if _, err := sessions.Token(refresher.WithSession(ctx, k)); err != nil {
				b.Fatal(err)
			}
		}
		stores = nil // the Sources hold their Store; drop the index
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		if sessions.Len() != sessionHeapN {
			b.Fatalf("%d sessions resident, want %d", sessions.Len(), sessionHeapN)
		}
		runtime.KeepAlive(sessions)
		total += float64(after.HeapAlloc) - float64(before.HeapAlloc)
		n++
		b.StartTimer()
	}
	per := total / float64(n*sessionHeapN)
	b.ReportMetric(per, "B/session")
	b.ReportMetric(per-benchTokenBytes, "B/session-overhead")
	b.ReportMetric(0, "ns/op")
	b.Logf("a Source struct takes %s", sourceLayout())
}

// sourceLayout describes the size of refresher.Source and its largest
// fields, for when the heap per session needs trimming.
func sourceLayout() string {
	t := reflect.TypeFor[refresher.Source]()
	fields := make([]reflect.StructField, t.NumField())
	for i := range fields {
		fields[i] = t.Field(i)
	}
	// A field's share is its size plus the padding before the next one.
	share := func(i int) uintptr {
		if i+1 < len(fields) {
			return fields[i+1].Offset - fields[i].Offset
		}
		return t.Size() - fields[i].Offset
	}
	idx := make([]int, len(fields))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(share(b), share(a)) })
	var top []string
	for _, i := range idx[:8] {
		top = append(top, fmt.Sprintf("%s %d", fields[i].Name, share(i)))
	}
	return fmt.Sprintf("%d B; largest fields: %s", t.Size(), strings.Join(top, ", "))
}

// BenchmarkSessionOpen measures opening one session that is not resident:
// the open function, a new Source over the account's MemoryStore, and the
// first Token, which loads the token from the Store. Each iteration opens
// another account, so that none is resident yet.
func BenchmarkSessionOpen(b *testing.B) {
	ctx := b.Context()
	const accounts = 1 << 12
	stores := make([]*refresher.MemoryStore, accounts)
	for i := range stores {
		stores[i] = refresher.NewMemoryStore(benchToken())
	}
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = storetest.AccountKey(i)
	}
	index := make(map[string]int, accounts)
	for i, k := range keys {
		index[k] = i
	}
	sessions := refresher.NewSessions(func(_ context.Context, key string) (*refresher.Source, error) {
		return refresher.NewSource(noEndpoint, refresher.WithStore(stores[index[key]])), nil
	}, refresher.WithMaxSessions(accounts/2)) // cycling over all keys, every Get opens
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sessions.Token(refresher.WithSession(ctx, keys[i%accounts])); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSourceRefresh measures one refresh through each Store that
// keeps its token in the process or on local disk, with an Endpoint that
// answers from memory: the Source's and the Store's share of a refresh.
// (The PostgreSQL and Redis stores have their own, which count round trips.)
func BenchmarkSourceRefresh(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func(b *testing.B) refresher.Store
	}{
		{"none", func(*testing.B) refresher.Store { return nil }},
		{"memory", func(*testing.B) refresher.Store { return refresher.NewMemoryStore(nil) }},
		{"file", func(b *testing.B) refresher.Store {
			return refresher.NewFileStore(filepath.Join(b.TempDir(), "token.json"))
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := b.Context()
			n := 0
			endpoint := refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
				n++
				t := storetest.Token(n)
				t.Expiry = time.Now().Add(time.Hour)
				return t, nil
			})
			opts := []refresher.Option{refresher.WithToken(benchToken())}
			if st := tc.store(b); st != nil {
				opts = append(opts, refresher.WithStore(st))
			}
			src := refresher.NewSource(endpoint, opts...)
			cur, err := src.Token(ctx)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if cur, err = src.Refresh(ctx, cur); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkSessionsStorm is a refresh storm across accounts: 10,000
// sessions on one client, against the bundled test server in-process; the
// server expires every access token at once, then one request per account
// is sent, all at the same moment. Every request gets a 401, and each
// account must be refreshed exactly once before its request is replayed.
// ns/op is the storm's wall time, from the start signal to the last
// answer; peak-goroutines is the most goroutines the process had meanwhile
// (the 10,000 callers included), sampled every 100 µs.
func BenchmarkSessionsStorm(b *testing.B) {
	const accounts = 10000
	ctx := b.Context()
	srv := testserver.NewTest(b, testserver.Config{AccessTTL: time.Hour})
	// The requests and the refreshes go through pools of their own, each
	// of at most 256 connections (10,000 at once would exhaust the file
	// descriptors). One capped pool for both would deadlock: each request
	// that got a 401 keeps its connection while it waits for the refresh,
	// which then waits for a connection.
	base := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	refreshBase := &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}
	b.Cleanup(base.CloseIdleConnections)
	b.Cleanup(refreshBase.CloseIdleConnections)
	endpoint := &refresher.OAuth2Endpoint{
		Config: &oauth2.Config{
			ClientID: testserver.PublicClientID,
			Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
		},
		HTTPClient: refresher.NewHTTPClient(refresher.ClientConfig{Base: refreshBase}),
	}
	stores := make(map[string]*refresher.MemoryStore, accounts)
	keys := make([]string, accounts)
	for i := range keys {
		tok, err := srv.IssueToken(testserver.DemoUser)
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = storetest.AccountKey(i)
		stores[keys[i]] = refresher.NewMemoryStore(tok)
	}
	sessions := refresher.NewSessions(func(_ context.Context, key string) (*refresher.Source, error) {
		return refresher.NewSource(endpoint, refresher.WithStore(stores[key])), nil
	}, refresher.WithMaxSessions(accounts))
	client := transport.NewClient(sessions, transport.WithBase(base))

	// storm sends one request per account at once and returns how many
	// failed and the peak goroutine count.
	storm := func() (failed int64, peak int) {
		start := make(chan struct{})
		var wg sync.WaitGroup
		var fails atomic.Int64
		for _, k := range keys {
			wg.Go(func() {
				<-start
				if err := storetest.GetMe(refresher.WithSession(ctx, k), client, srv.URL()); err != nil {
					if fails.Add(1) <= 3 {
						b.Logf("%s: %v", k, err)
					}
				}
			})
		}
		done := make(chan struct{})
		peaked := make(chan int)
		go func() {
			p := runtime.NumGoroutine()
			tick := time.NewTicker(100 * time.Microsecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					peaked <- p
					return
				case <-tick.C:
					p = max(p, runtime.NumGoroutine())
				}
			}
		}()
		close(start)
		wg.Wait()
		close(done)
		return fails.Load(), <-peaked
	}
	if failed, _ := storm(); failed > 0 { // opens the sessions, warms the pool
		b.Fatalf("%d requests failed before the storm", failed)
	}

	var refreshes, fails int64
	peak := 0
	for b.Loop() {
		b.StopTimer()
		srv.ExpireAccessTokens()
		before := srv.Stats().Refreshes
		b.StartTimer()
		failed, p := storm()
		b.StopTimer()
		if got := srv.Stats().Refreshes - before; got != accounts || failed > 0 {
			b.Fatalf("storm: %d refreshes, want %d; %d requests failed", got, accounts, failed)
		}
		refreshes += accounts
		fails += failed
		peak = max(peak, p)
		b.StartTimer()
	}
	b.ReportMetric(float64(refreshes)/float64(b.N), "refreshes/storm")
	b.ReportMetric(float64(fails)/float64(b.N), "failed/storm")
	b.ReportMetric(float64(peak), "peak-goroutines")
	if st := srv.Stats(); st.ReuseDetections != 0 {
		b.Fatalf("%d reuse detections", st.ReuseDetections)
	}
}
