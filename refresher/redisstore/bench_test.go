package redisstore_test

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/redisstore"
)

// roundTrips counts a client's round trips to Redis: a command, or a
// pipeline, is one.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmd)
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.n.Add(1)
		return next(ctx, cmds)
	}
}

// benchRedis starts a redis-server without persistence on a Unix socket,
// stopped at the end of the benchmark, and returns a client of it whose
// round trips rt counts. It skips the benchmark if redis-server is not
// installed.
func benchRedis(b *testing.B, rt *roundTrips) *redis.Client {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		b.Skip("redis-server is not installed")
	}
	dir := b.TempDir()
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--save", "", "--appendonly", "no", "--dir", dir)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	rc := redis.NewClient(&redis.Options{Network: "unix", Addr: sock})
	b.Cleanup(func() { rc.Close() })
	for deadline := time.Now().Add(helperTimeout); rc.Ping(b.Context()).Err() != nil; {
		if time.Now().After(deadline) {
			b.Fatal("redis-server did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc.AddHook(rt)
	return rc
}

// reportRoundTrips adds the round trips per operation counted since before.
func reportRoundTrips(b *testing.B, rt *roundTrips, before int64) {
	b.ReportMetric(float64(rt.n.Load()-before)/float64(b.N), "round-trips/op")
}

// BenchmarkSessionOpen measures opening one session that is not resident
// in a refresher.Sessions: a new Source over the account's ForAccount
// Store, and the first Token, which loads the account's key. Each
// iteration opens another account, so that none is resident yet.
func BenchmarkSessionOpen(b *testing.B) {
	const accounts = 1024
	ctx := b.Context()
	var rt roundTrips
	rc := benchRedis(b, &rt)
	keys := make([]string, accounts)
	for i := range keys {
		keys[i] = storetest.AccountKey(i)
		if err := redisstore.ForAccount(rc, accountsPrefix, keys[i]).Save(ctx, storetest.Token(i)); err != nil {
			b.Fatal(err)
		}
	}
	never := refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return nil, errors.New("the benchmark refreshed")
	})
	sessions := refresher.NewSessions(func(_ context.Context, key string) (*refresher.Source, error) {
		return refresher.NewSource(never, refresher.WithStore(redisstore.ForAccount(rc, accountsPrefix, key))), nil
	}, refresher.WithMaxSessions(accounts/2)) // cycling over all keys, every Get opens
	open := func(i int) {
		if _, err := sessions.Token(refresher.WithSession(ctx, keys[i%accounts])); err != nil {
			b.Fatal(err)
		}
	}
	open(0) // loads the scripts
	before := rt.n.Load()
	i := 1
	b.ReportAllocs()
	for b.Loop() {
		open(i)
		i++
	}
	reportRoundTrips(b, &rt, before)
}

// BenchmarkSourceRefresh measures one refresh of a Source over a Store, as
// the Source makes it (read the token, take the lease, read again, confirm
// the lease, fenced save, release), with an Endpoint that answers from
// memory: the round trips to Redis that a refresh costs, and their time.
func BenchmarkSourceRefresh(b *testing.B) {
	ctx := b.Context()
	var rt roundTrips
	rc := benchRedis(b, &rt)
	n := 0
	endpoint := refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		n++
		t := storetest.Token(n)
		t.Expiry = time.Now().Add(time.Hour)
		return t, nil
	})
	first := storetest.Token(0)
	first.Expiry = time.Now().Add(time.Hour)
	src := refresher.NewSource(endpoint, refresher.WithToken(first), refresher.WithStore(redisstore.New(rc, testKey)))
	cur, err := src.Token(ctx) // saves the first token
	if err != nil {
		b.Fatal(err)
	}
	if cur, err = src.Refresh(ctx, cur); err != nil { // loads the scripts
		b.Fatal(err)
	}
	before := rt.n.Load()
	b.ReportAllocs()
	for b.Loop() {
		if cur, err = src.Refresh(ctx, cur); err != nil {
			b.Fatal(err)
		}
	}
	reportRoundTrips(b, &rt, before)
}
