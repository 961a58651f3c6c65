package redisstore_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/redisstore"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

// The tests in this file run against a real redis-server, started by
// startRedisServer.

func TestRealRedisStoreAndLease(t *testing.T) {
	ctx := t.Context()
	addr := startRedisServer(t)
	rc := newClient(t, addr)

	// Round trip, and the missing key.
	s := redisstore.New(rc, testKey)
	got, err := s.Load(ctx)
	require.NoError(t, err)
	assert.Nil(t, got, "no token yet")
	require.NoError(t, s.Save(ctx, storetest.Token(1)))
	got, err = redisstore.New(newClient(t, addr), testKey).Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)

	// The lease is renewed by the real timer while it is held: wait for
	// renewals until more than a TTL has passed since it was taken.
	const ttl = 300 * time.Millisecond
	renewed := make(chan error, 16)
	a := redisstore.New(rc, testKey, redisstore.WithLeaseTTL(ttl))
	redisstore.SetRenewHook(a, renewed)
	b := redisstore.New(newClient(t, addr), testKey)
	taken := time.Now()
	unlock, err := a.Lock(ctx)
	require.NoError(t, err)
	for time.Since(taken) <= 3*ttl/2 {
		select {
		case err := <-renewed:
			require.NoError(t, err)
		case <-time.After(helperTimeout):
			t.Fatal("no renewal")
		}
	}
	pttl, err := rc.PTTL(ctx, a.LockKey()).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, time.Duration(0), "the lease outlived its TTL")
	storetest.AssertLockBusy(t, b)

	// Only the owner releases it.
	owner, err := rc.Get(ctx, a.LockKey()).Result()
	require.NoError(t, err)
	require.NoError(t, rc.Set(ctx, a.LockKey(), "another-owner", time.Minute).Err())
	assert.ErrorIs(t, unlock(), redisstore.ErrLeaseLost)
	got2, err := rc.Get(ctx, a.LockKey()).Result()
	require.NoError(t, err)
	assert.Equal(t, "another-owner", got2)
	assert.NotEqual(t, owner, got2)
	require.NoError(t, rc.Del(ctx, a.LockKey()).Err())

	// The lease is released on unlock, and the next holder takes it.
	unlock, err = b.Lock(ctx)
	require.NoError(t, err)
	assert.NoError(t, unlock())
	n, err := rc.Exists(ctx, b.LockKey()).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the lease is deleted")
}

// killedHolderTTL is the lease TTL of the hold-lease helper.
const killedHolderTTL = 500 * time.Millisecond

func TestRealRedisLeaseOfKilledHolderExpires(t *testing.T) {
	ctx := t.Context()
	addr := startRedisServer(t)
	rc := newClient(t, addr)
	s := redisstore.New(rc, testKey)

	h := helperBinary.Start(t, "holder", "hold-lease", redisAddrEnv+"="+addr, keyEnv+"="+testKey)
	h.Expect("locked")
	storetest.AssertLockBusy(t, s)
	pttl, err := rc.PTTL(ctx, s.LockKey()).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, time.Duration(0))
	h.Kill()

	// The holder is gone without unlocking; its lease expires.
	waitCtx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	start := time.Now()
	unlock, err := s.Lock(waitCtx)
	require.NoError(t, err, "the lease of a killed holder expires")
	t.Logf("took the lease %v after the holder was killed (lease TTL %v)", time.Since(start).Round(time.Millisecond), killedHolderTTL)
	assert.NoError(t, unlock())
}

// helperHoldLease takes the lease on the key named by the environment,
// says "locked", and keeps it, renewing it, until its stdin is closed.
func helperHoldLease(in *bufio.Scanner, out io.Writer) error {
	rc := redis.NewClient(&redis.Options{Addr: os.Getenv(redisAddrEnv)})
	defer rc.Close()
	s := redisstore.New(rc, os.Getenv(keyEnv), redisstore.WithLeaseTTL(killedHolderTTL))
	unlock, err := s.Lock(context.Background())
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "locked")
	for in.Scan() {
	}
	return unlock()
}

// replicaRequests is how many concurrent requests a replica sends in a
// round.
const replicaRequests = 4

// TestReplicasShareOneRefreshThroughRedis runs a fleet: separate processes,
// each with its own http.Client, Source and Redis client, share one
// credential through one real Redis, against a server that rotates refresh
// tokens and revokes the family on any reuse. The parent expires the access
// tokens between rounds of requests; each expiry must cost exactly one
// refresh, whichever replica makes it.
func TestReplicasShareOneRefreshThroughRedis(t *testing.T) {
	const (
		replicas = 3
		expiries = 12
	)
	ctx := t.Context()
	addr := startRedisServer(t)
	srv := testserver.NewTest(t, testserver.Config{AccessTTL: 10 * time.Minute, ReuseGrace: 0})
	tok, err := srv.IssueToken(testserver.DemoUser)
	require.NoError(t, err)
	require.NoError(t, redisstore.New(newClient(t, addr), testKey).Save(ctx, tok))

	start := time.Now()
	hs := helperBinary.StartN(t, replicas, "replica",
		redisAddrEnv+"="+addr, keyEnv+"="+testKey, serverURLEnv+"="+srv.URL())
	for _, h := range hs {
		h.Expect("ready")
	}
	started := time.Since(start)

	var ok, failed, refreshed int
	for round := 0; round <= expiries; round++ {
		if round > 0 {
			srv.ExpireAccessTokens()
		}
		for i, line := range fleet.Round(hs, round) {
			var o, f, r int
			_, err := fmt.Sscanf(line, "ok=%d failed=%d refreshed=%d", &o, &f, &r)
			require.NoError(t, err, "helper %s: line %q", hs[i].Name(), line)
			ok, failed, refreshed = ok+o, failed+f, refreshed+r
		}
	}
	rounds := time.Since(start) - started

	fleet.Stop(hs)

	st := srv.Stats()
	t.Logf("%d replicas, %d rounds of %d requests each, %d expiries: %d requests ok, %d failed; "+
		"server: %d refreshes, %d rotations, %d reuse detections; replicas refreshed %d times; replicas started in %v, rounds took %v",
		replicas, expiries+1, replicaRequests, expiries, ok, failed,
		st.Refreshes, st.Rotations, st.ReuseDetections, refreshed,
		started.Round(time.Millisecond), rounds.Round(time.Millisecond))
	assert.Zero(t, st.ReuseDetections, "reuse detections")
	assert.Zero(t, failed, "failed requests")
	assert.Equal(t, replicas*replicaRequests*(expiries+1), ok, "successful requests")
	assert.EqualValues(t, expiries, st.Refreshes, "refreshes")
	assert.EqualValues(t, expiries, st.Rotations, "rotations")
	assert.Equal(t, expiries, refreshed, "refreshes made by the replicas")

	// The stored token is the last one rotated, and works.
	last, err := redisstore.New(newClient(t, addr), testKey).Load(ctx)
	require.NoError(t, err)
	require.NotNil(t, last)
	_, err = srv.ParseAccessToken(last.AccessToken)
	assert.NoError(t, err, "the stored access token")
}

// helperReplica is one replica of a fleet: a Source over a redisstore.Store
// and an http.Client from the transport package. On each "round N" line it
// sends concurrent requests to the protected resource and answers
// "done N ok=… failed=… refreshed=…"; it ends when its stdin is closed.
func helperReplica(in *bufio.Scanner, out io.Writer) error {
	url := os.Getenv(serverURLEnv)
	rc := redis.NewClient(&redis.Options{Addr: os.Getenv(redisAddrEnv)})
	defer rc.Close()

	var refreshed atomic.Int64
	endpoint := &refresher.OAuth2Endpoint{Config: &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: url + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}}
	src := refresher.NewSource(endpoint,
		refresher.WithStore(redisstore.New(rc, os.Getenv(keyEnv))),
		refresher.WithRefreshHook(func(_, _ *oauth2.Token) { refreshed.Add(1) }))
	client := transport.NewClient(src)
	defer client.CloseIdleConnections()

	fmt.Fprintln(out, "ready")
	return fleet.Rounds(in, out, func(round int) string {
		before := refreshed.Load()
		var ok, failed atomic.Int64
		var wg sync.WaitGroup
		for range replicaRequests {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
				defer cancel()
				if err := storetest.GetMe(ctx, client, url); err != nil {
					fmt.Fprintf(os.Stderr, "round %d: %v\n", round, err)
					failed.Add(1)
					return
				}
				ok.Add(1)
			})
		}
		wg.Wait()
		return fmt.Sprintf("ok=%d failed=%d refreshed=%d", ok.Load(), failed.Load(), refreshed.Load()-before)
	})
}

func TestRealRedisCompareAndSwap(t *testing.T) {
	addr := startRedisServer(t)
	testCompareAndSwap(t, func(t *testing.T) (redis.UniversalClient, func(key string) string) {
		rc := newClient(t, addr)
		return rc, func(key string) string { return rc.Type(t.Context(), key).Val() }
	})
}

func TestRealRedisReadsOlderStringLayout(t *testing.T) {
	ctx := t.Context()
	rc := newClient(t, startRedisServer(t))
	require.NoError(t, rc.Set(ctx, testKey, legacyValue, 0).Err())
	s := redisstore.New(rc, testKey)
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
}

func TestRealRedisConfirmAfterLeaseExpiredReportsLeaseLost(t *testing.T) {
	ctx := t.Context()
	rc := newClient(t, startRedisServer(t))
	const ttl = 50 * time.Millisecond
	s := frozen(redisstore.New(rc, testKey, redisstore.WithLeaseTTL(ttl))) // paused: no renewal
	l, err := s.LockLease(ctx)
	require.NoError(t, err)
	require.NoError(t, l.Confirm(ctx), "held")

	// Wait, with a bound, until Redis has expired the lease.
	deadline := time.Now().Add(helperTimeout)
	for rc.Exists(ctx, s.LockKey()).Val() == 1 {
		require.True(t, time.Now().Before(deadline), "the lease did not expire")
		time.Sleep(ttl / 5)
	}
	err = l.Confirm(ctx)
	assert.ErrorIs(t, err, refresher.ErrLeaseLost)
	assert.ErrorIs(t, l.Unlock(), redisstore.ErrLeaseLost)
}

// TestRealRedisPausedPastReadTimeoutHolderGetsLeaseOnceBack pauses the real
// redis-server (SIGSTOP) while a holder asks for the lease, for longer than
// the client's read timeout, so that the holder's attempts time out after
// reaching Redis, where they wait in the socket buffers. Once Redis runs
// again (SIGCONT) and runs them, the lease holds the holder's owner value:
// the holder must get it promptly, not after waiting out its own lease.
func TestRealRedisPausedPastReadTimeoutHolderGetsLeaseOnceBack(t *testing.T) {
	const (
		readTimeout = 100 * time.Millisecond
		pause       = time.Second // ten read timeouts
	)
	ctx := t.Context()
	addr, server := startRedisServerProcess(t)
	rc := redis.NewClient(&redis.Options{Addr: addr, ReadTimeout: readTimeout, WriteTimeout: readTimeout})
	t.Cleanup(func() { rc.Close() })
	s := redisstore.New(rc, testKey) // the default lease TTL: 10 s
	require.NoError(t, rc.Ping(ctx).Err())

	require.NoError(t, server.Signal(syscall.SIGSTOP))
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			server.Signal(syscall.SIGCONT)
		}
	})

	// The holder asks as a Source would: again after a failed Lock.
	held := make(chan error, 1)
	lockCtx, cancel := context.WithTimeout(ctx, helperTimeout)
	defer cancel()
	var unlock func() error
	go func() {
		for {
			u, err := s.Lock(lockCtx)
			if err == nil || lockCtx.Err() != nil {
				unlock = u
				held <- err
				return
			}
		}
	}()
	time.Sleep(pause) // keeps Redis stopped; not a synchronisation
	require.NoError(t, server.Signal(syscall.SIGCONT))
	resumed = true
	back := time.Now()

	select {
	case err := <-held:
		require.NoError(t, err)
	case <-time.After(helperTimeout):
		t.Fatal("the holder never got the lease")
	}
	took := time.Since(back)
	t.Logf("Redis paused %v (read timeout %v): lease held %v after SIGCONT (lease TTL %v)",
		pause, readTimeout, took.Round(time.Millisecond), redisstore.DefaultLeaseTTL)
	assert.Less(t, took, redisstore.DefaultLeaseTTL/5, "the holder waited out its own lease")
	require.NoError(t, unlock())
}
