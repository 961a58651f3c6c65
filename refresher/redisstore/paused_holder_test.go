package redisstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/redisstore"
	"github.com/autorefresh/autorefresh/testserver"
)

// pausedHolderTTL is the lease TTL of the paused-holder helper: short, so
// that the test waits little for it to lapse.
const pausedHolderTTL = 300 * time.Millisecond

// pauseAtEnv names where the paused-holder helper stops: "before" its last
// lease check, or "after" it (the window no lease can close).
const pauseAtEnv = "REDISSTORE_TEST_PAUSE_AT"

func init() { helperRoles["paused-holder"] = helperPausedHolder }

// TestPausedRedisHolderNeverPresentsASupersededToken: a replica takes the
// lease and is about to present the refresh token when it is paused
// (SIGSTOP) for longer than its lease; another replica takes over and
// rotates the token; then the first wakes up.
//
//   - Paused before its last check: the lease is confirmed right before the
//     request is written, found lost, and the refresh aborted: the
//     superseded token is never presented, the server sees no reuse, and the
//     error is ErrLeaseLost, not success.
//   - Paused after its last check, against a server with a reuse grace: the
//     superseded token reaches the server, which accepts it once; the fenced
//     save then finds the other replica's token in the Store and adopts it
//     instead of overwriting it.
func TestPausedRedisHolderNeverPresentsASupersededToken(t *testing.T) {
	for _, tc := range []struct {
		pauseAt string
		grace   time.Duration
	}{
		{"before", 0},
		{"before", time.Minute},
		{"after", time.Minute},
	} {
		t.Run(fmt.Sprintf("paused %s its last check, reuse grace %v", tc.pauseAt, tc.grace), func(t *testing.T) {
			ctx := t.Context()
			addr := startRedisServer(t)
			rc := newClient(t, addr)
			srv := testserver.NewTest(t, testserver.Config{AccessTTL: 10 * time.Minute, ReuseGrace: tc.grace})
			tok, err := srv.IssueToken(testserver.DemoUser)
			require.NoError(t, err)
			store := redisstore.New(rc, testKey)
			require.NoError(t, store.Save(ctx, tok))

			a := helperBinary.Start(t, "paused holder", "paused-holder", redisAddrEnv+"="+addr, keyEnv+"="+testKey,
				serverURLEnv+"="+srv.URL(), pauseAtEnv+"="+tc.pauseAt)
			a.Expect("ready")
			a.Send("refresh")
			a.Expect("pausing")
			require.NoError(t, a.Signal(syscall.SIGSTOP))
			// Stopped, it renews nothing: wait for its lease to lapse.
			waitLeaseGone(t, rc, store.LockKey())

			// Another replica takes over and rotates the token.
			b := refresher.NewSource(oauth2Endpoint(srv.URL()), refresher.WithStore(redisstore.New(newClient(t, addr), testKey)))
			cur, err := b.Token(ctx)
			require.NoError(t, err)
			rotated, err := b.Refresh(ctx, cur)
			require.NoError(t, err)
			require.EqualValues(t, 1, srv.Stats().Rotations)

			require.NoError(t, a.Signal(syscall.SIGCONT))
			a.Send("go")
			result := a.Expect("result ")
			a.End()
			a.Finish()

			st := srv.Stats()
			stored, err := store.Load(ctx)
			require.NoError(t, err)
			t.Logf("%s: server: %d refreshes, %d rotations, %d reuse detections", result, st.Refreshes, st.Rotations, st.ReuseDetections)
			assert.Zero(t, st.ReuseDetections, "reuse detections")
			assert.Equal(t, rotated.RefreshToken, stored.RefreshToken, "the Store keeps the other replica's token")
			if tc.pauseAt == "before" {
				assert.Equal(t, "lease_lost", result, "reported as a lost lease, never as success")
				assert.EqualValues(t, 1, st.Refreshes, "the superseded token was never presented")
			} else {
				assert.Equal(t, "adopted "+refresher.Fingerprint(rotated), result, "the resumed holder adopts the stored token")
			}

			if tc.pauseAt == "before" {
				// The session lives on: the stored token refreshes without reuse.
				again, err := b.Refresh(ctx, rotated)
				require.NoError(t, err)
				assert.NotEqual(t, rotated.RefreshToken, again.RefreshToken)
				assert.Zero(t, srv.Stats().ReuseDetections, "reuse detections")
			}
			// Paused after its last check, the holder's superseded token did
			// reach the server: this server's grace answer supersedes the
			// other replica's token, so its next refresh is a reuse. That is
			// the window no lease closes (README, "What no lease can do").
		})
	}
}

// waitLeaseGone waits until the lease key has expired.
func waitLeaseGone(t *testing.T, rc *redis.Client, key string) {
	t.Helper()
	deadline := time.Now().Add(helperTimeout)
	for {
		n, err := rc.Exists(t.Context(), key).Result()
		require.NoError(t, err)
		if n == 0 {
			return
		}
		require.True(t, time.Now().Before(deadline), "the paused holder's lease did not lapse")
		time.Sleep(pausedHolderTTL / 10) // polling the lease's expiry, which only time brings
	}
}

func oauth2Endpoint(url string) *refresher.OAuth2Endpoint {
	return &refresher.OAuth2Endpoint{Config: &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: url + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}}
}

// helperPausedHolder refreshes through a Store whose lease announces
// "pausing" at its first Confirm (before or after the real check, by
// REDISSTORE_TEST_PAUSE_AT) and waits there for "go"; the parent stops and
// resumes the process meanwhile. It then answers "result lease_lost",
// "result adopted <fingerprint>" or "result <other outcome>".
func helperPausedHolder(in *bufio.Scanner, out io.Writer) error {
	rc := redis.NewClient(&redis.Options{Addr: os.Getenv(redisAddrEnv)})
	defer rc.Close()
	inner := redisstore.New(rc, os.Getenv(keyEnv), redisstore.WithLeaseTTL(pausedHolderTTL), redisstore.WithRenewInterval(pausedHolderTTL/3))
	st := &pausingStore{Store: inner, after: os.Getenv(pauseAtEnv) == "after", pause: func() {
		fmt.Fprintln(out, "pausing")
		in.Scan() // "go"
	}}
	src := refresher.NewSource(oauth2Endpoint(os.Getenv(serverURLEnv)), refresher.WithStore(st))
	cur, err := src.Token(context.Background())
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	if !in.Scan() || in.Text() != "refresh" {
		return errors.New("expected refresh")
	}
	got, err := src.Refresh(context.Background(), cur)
	switch {
	case errors.Is(err, refresher.ErrLeaseLost):
		fmt.Fprintln(out, "result lease_lost")
	case err == nil:
		fmt.Fprintln(out, "result adopted "+refresher.Fingerprint(got))
	default:
		fmt.Fprintln(out, "result error: "+err.Error())
	}
	for in.Scan() {
	}
	return nil
}

// pausingStore is a redisstore.Store whose leases pause at their first
// Confirm.
type pausingStore struct {
	*redisstore.Store
	after bool
	pause func()
	once  sync.Once
}

func (s *pausingStore) LockLease(ctx context.Context) (refresher.Lease, error) {
	l, err := s.Store.LockLease(ctx)
	if err != nil {
		return nil, err
	}
	return &pausingLease{Lease: l, s: s}, nil
}

type pausingLease struct {
	refresher.Lease
	s *pausingStore
}

func (l *pausingLease) Confirm(ctx context.Context) error {
	var err error
	paused := false
	l.s.once.Do(func() {
		paused = true
		if !l.s.after {
			l.s.pause()
		}
		err = l.Lease.Confirm(ctx)
		if l.s.after {
			l.s.pause()
		}
	})
	if paused {
		return err
	}
	return l.Lease.Confirm(ctx)
}
