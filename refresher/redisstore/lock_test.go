package redisstore_test

import (
	"context"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/redisstore"
)

// frozen returns a Store whose leases are never renewed, as if their holder
// had stopped: nothing ever ticks.
func frozen(s *redisstore.Store) *redisstore.Store {
	redisstore.SetRenewTicks(s, nil, nil)
	return s
}

// renew makes the renewal goroutine of a Store set up with SetRenewTicks
// renew its lease once, and returns the outcome.
func renew(t *testing.T, ticks chan<- time.Time, renewed <-chan error) error {
	t.Helper()
	timer := time.NewTimer(helperTimeout)
	defer timer.Stop()
	select {
	case ticks <- time.Now():
	case <-timer.C:
		t.Fatal("no renewal goroutine is running")
	}
	select {
	case err := <-renewed:
		return err
	case <-timer.C:
		t.Fatal("the renewal did not end")
		return nil
	}
}

func TestLockExcludesSecondHolder(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	a := redisstore.New(rc, testKey)
	b := redisstore.New(newClient(t, m.Addr()), testKey) // another replica

	unlockA, err := a.Lock(ctx)
	require.NoError(t, err)
	ownerA, err := m.Get(a.LockKey())
	require.NoError(t, err, "the lease is a key in Redis")
	assert.NotEmpty(t, ownerA)
	assert.Equal(t, redisstore.DefaultLeaseTTL, m.TTL(a.LockKey()), "the lease's TTL")

	storetest.AssertLockBusy(t, a) // same Store, another goroutine
	storetest.AssertLockBusy(t, b) // another Store on the same key

	// Waiters of both kinds get the lease, one after the other, once it is
	// released, each with an owner value of its own.
	waitA, waitB := storetest.LockAsync(ctx, a), storetest.LockAsync(ctx, b)
	require.NoError(t, unlockA())
	var r storetest.LockResult
	second := waitA
	select {
	case r = <-waitA:
		second = waitB
	case r = <-waitB:
	case <-time.After(helperTimeout):
		t.Fatal("no waiter got the lease")
	}
	require.NoError(t, r.Err)
	owner2, err := m.Get(a.LockKey())
	require.NoError(t, err)
	assert.NotEqual(t, ownerA, owner2, "each lease has its own owner value")
	select {
	case r2 := <-second:
		t.Fatalf("both waiters hold the lease (second: %v)", r2.Err)
	default:
	}
	require.NoError(t, r.Unlock())
	r = storetest.Await(t, second)
	require.NoError(t, r.Err)
	require.NoError(t, r.Unlock())
	assert.False(t, m.Exists(a.LockKey()), "the lease is deleted on unlock")
}

// Many holders on several Stores increment a counter in Redis with a
// read-modify-write under the lease: no increment is lost.
func TestLockSerialisesReadModifyWrite(t *testing.T) {
	ctx := t.Context()
	m, _ := newMiniredis(t)
	const stores, goroutines, rounds = 3, 3, 15
	var wg sync.WaitGroup
	for range stores {
		s := redisstore.New(newClient(t, m.Addr()), testKey, redisstore.WithPollInterval(2*time.Millisecond))
		c := newClient(t, m.Addr())
		for range goroutines {
			wg.Go(func() {
				for range rounds {
					unlock, err := s.Lock(ctx)
					if !assert.NoError(t, err) {
						return
					}
					n, _ := c.Get(ctx, "counter").Int()
					assert.NoError(t, c.Set(ctx, "counter", n+1, 0).Err())
					assert.NoError(t, unlock())
				}
			})
		}
	}
	wg.Wait()
	got, err := m.Get("counter")
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(stores*goroutines*rounds), got)
}

func TestUnlockReleasesOnlyItsOwnLease(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	a := frozen(redisstore.New(rc, testKey))

	unlock, err := a.Lock(ctx)
	require.NoError(t, err)
	// The lease ended and someone else took it.
	require.NoError(t, m.Set(a.LockKey(), "another-owner"))

	err = unlock()
	assert.ErrorIs(t, err, redisstore.ErrLeaseLost)
	assert.ErrorContains(t, err, "held by another owner")
	got, _ := m.Get(a.LockKey())
	assert.Equal(t, "another-owner", got, "the other owner's lease is untouched")

	// A second call changes nothing and says the same.
	assert.Equal(t, err, unlock())
	got, _ = m.Get(a.LockKey())
	assert.Equal(t, "another-owner", got)

	// The Store itself is free again: once the other lease is gone, it
	// leases anew.
	m.Del(a.LockKey())
	unlock, err = a.Lock(ctx)
	require.NoError(t, err)
	assert.NoError(t, unlock())
}

func TestLeaseOfDeadHolderExpires(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	dead := frozen(redisstore.New(rc, testKey)) // takes the lease, then stops
	b := redisstore.New(newClient(t, m.Addr()), testKey)

	unlockDead, err := dead.Lock(ctx)
	require.NoError(t, err)
	storetest.AssertLockBusy(t, b)
	m.FastForward(redisstore.DefaultLeaseTTL - time.Millisecond)
	storetest.AssertLockBusy(t, b)
	m.FastForward(time.Millisecond)

	r := storetest.Await(t, storetest.LockAsync(ctx, b))
	require.NoError(t, r.Err, "the lease of a holder that stopped renewing expires")
	ownerB, _ := m.Get(b.LockKey())

	// Should the old holder come back, its unlock reports the loss and
	// leaves the new lease alone.
	err = unlockDead()
	assert.ErrorIs(t, err, redisstore.ErrLeaseLost)
	got, _ := m.Get(b.LockKey())
	assert.Equal(t, ownerB, got)
	assert.NoError(t, r.Unlock())
}

func TestRenewalKeepsLease(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	a := redisstore.New(rc, testKey)
	ticks, renewed := make(chan time.Time), make(chan error)
	redisstore.SetRenewTicks(a, ticks, renewed)
	b := redisstore.New(newClient(t, m.Addr()), testKey)

	// The ctx Lock was called with ends; the lease lives on.
	lockCtx, cancel := context.WithCancel(ctx)
	unlock, err := a.Lock(lockCtx)
	require.NoError(t, err)
	cancel()

	ttl := redisstore.LeaseTTL(a)
	for i := range 4 {
		m.FastForward(ttl * 2 / 3)
		require.NoError(t, renew(t, ticks, renewed), "renewal %d", i)
		assert.Equal(t, ttl, m.TTL(a.LockKey()), "TTL after renewal %d", i)
	}
	// Four times 2/3 of the TTL have passed since the lease was taken.
	storetest.AssertLockBusy(t, b)
	assert.NoError(t, unlock())
	assert.False(t, m.Exists(a.LockKey()))
}

func TestRenewalNoticesLostLease(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	a := redisstore.New(rc, testKey)
	ticks, renewed := make(chan time.Time), make(chan error)
	redisstore.SetRenewTicks(a, ticks, renewed)

	unlock, err := a.Lock(ctx)
	require.NoError(t, err)
	// Renewals did not reach Redis for a whole TTL.
	m.FastForward(redisstore.LeaseTTL(a))
	assert.ErrorIs(t, renew(t, ticks, renewed), redisstore.ErrLeaseLost)
	// The renewal goroutine stopped: no further tick is read.
	select {
	case ticks <- time.Now():
		t.Fatal("renewals go on after the lease was lost")
	default:
	}
	err = unlock()
	assert.ErrorIs(t, err, redisstore.ErrLeaseLost)
	assert.ErrorContains(t, err, "had expired")
}

func TestLockHonoursContextCancellation(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	a := redisstore.New(rc, testKey)
	b := redisstore.New(newClient(t, m.Addr()), testKey)

	unlock, err := a.Lock(ctx)
	require.NoError(t, err)
	owner, _ := m.Get(a.LockKey())

	// A waiter for another replica's lease (polling Redis) and a waiter in
	// the same Store (queued in the process) both give up with their ctx.
	for _, s := range []*redisstore.Store{b, a} {
		waitCtx, cancel := context.WithCancel(ctx)
		wait := storetest.LockAsync(waitCtx, s)
		cancel()
		r := storetest.Await(t, wait)
		assert.ErrorIs(t, r.Err, context.Canceled)
		assert.Nil(t, r.Unlock)

		deadline, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		_, err := s.Lock(deadline)
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	}
	got, _ := m.Get(a.LockKey())
	assert.Equal(t, owner, got, "the holder's lease is untouched")

	// The waiters left nothing behind: both Stores lease normally.
	require.NoError(t, unlock())
	for _, s := range []*redisstore.Store{a, b} {
		unlock, err := s.Lock(ctx)
		require.NoError(t, err)
		assert.NoError(t, unlock())
	}
}

func TestLeaseLostErrorsMatchRefresherSentinel(t *testing.T) {
	assert.ErrorIs(t, redisstore.ErrLeaseLost, refresher.ErrLeaseLost)
	assert.ErrorIs(t, refresher.ErrLeaseLost, redisstore.ErrLeaseLost)
}

func TestConfirmExtendsHeldLease(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := frozen(redisstore.New(rc, testKey))
	l, err := s.LockLease(ctx)
	require.NoError(t, err)
	defer l.Unlock()

	ttl := redisstore.LeaseTTL(s)
	for i := range 3 {
		m.FastForward(ttl * 2 / 3)
		require.NoError(t, l.Confirm(ctx), "confirmation %d", i)
		assert.Equal(t, ttl, m.TTL(s.LockKey()), "TTL after confirmation %d", i)
	}
}

func TestConfirmAfterLeaseExpiredReportsLeaseLost(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := frozen(redisstore.New(rc, testKey)) // paused: no renewal
	l, err := s.LockLease(ctx)
	require.NoError(t, err)

	m.FastForward(redisstore.LeaseTTL(s))
	err = l.Confirm(ctx)
	assert.ErrorIs(t, err, refresher.ErrLeaseLost)
	assert.ErrorIs(t, err, redisstore.ErrLeaseLost)
	assert.ErrorContains(t, err, "no longer held")
	assert.False(t, m.Exists(s.LockKey()), "a lost lease is not taken back")
	assert.ErrorIs(t, l.Unlock(), redisstore.ErrLeaseLost)
}

func TestConfirmAfterAnotherHolderTookLeaseReportsLeaseLost(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := frozen(redisstore.New(rc, testKey))
	l, err := s.LockLease(ctx)
	require.NoError(t, err)

	// The lease expired and another replica took it.
	m.FastForward(redisstore.LeaseTTL(s))
	other := redisstore.New(newClient(t, m.Addr()), testKey)
	unlockOther, err := other.Lock(ctx)
	require.NoError(t, err)
	owner, _ := m.Get(s.LockKey())

	assert.ErrorIs(t, l.Confirm(ctx), refresher.ErrLeaseLost)
	got, _ := m.Get(s.LockKey())
	assert.Equal(t, owner, got, "the other holder's lease is untouched")
	assert.ErrorIs(t, l.Unlock(), redisstore.ErrLeaseLost)
	require.NoError(t, unlockOther())
}

func TestConfirmAfterUnlockReportsLeaseLost(t *testing.T) {
	ctx := t.Context()
	_, rc := newMiniredis(t)
	s := redisstore.New(rc, testKey)
	l, err := s.LockLease(ctx)
	require.NoError(t, err)
	require.NoError(t, l.Unlock())
	err = l.Confirm(ctx)
	assert.ErrorIs(t, err, refresher.ErrLeaseLost)
	assert.ErrorContains(t, err, "released")
}

func TestConfirmReportsRedisFailureAsError(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := frozen(redisstore.New(rc, testKey))
	l, err := s.LockLease(ctx)
	require.NoError(t, err)
	m.SetError("ERR injected failure")
	err = l.Confirm(ctx)
	assert.ErrorContains(t, err, "injected failure", "no confirmation without an answer")
	m.SetError("")
	assert.NoError(t, l.Confirm(ctx))
	assert.NoError(t, l.Unlock())
}

// loseFirstAnswer is a go-redis hook that lets the first command on key
// reach Redis, then drops its answer as a read timeout would: what a
// client-side retry of a command that Redis did run looks like to the
// caller.
type loseFirstAnswer struct {
	key  string
	lost atomic.Bool
}

func (h *loseFirstAnswer) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *loseFirstAnswer) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *loseFirstAnswer) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil && slices.Contains(cmd.Args(), any(h.key)) && h.lost.CompareAndSwap(false, true) {
			err = &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
			cmd.SetErr(err)
		}
		return err
	}
}

func TestLockTakesLeaseWhoseAnswerWasLost(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := redisstore.New(rc, testKey)
	hook := &loseFirstAnswer{key: s.LockKey()}
	rc.AddHook(hook)

	start := time.Now()
	l, err := s.LockLease(ctx)
	require.NoError(t, err, "the lease an unanswered attempt took is this holder's")
	took := time.Since(start)
	require.True(t, hook.lost.Load(), "the first answer was dropped")
	t.Logf("lease held %v after the first attempt, whose answer was lost", took.Round(time.Microsecond))
	assert.Less(t, took, redisstore.DefaultLeaseTTL/10, "the holder does not wait out its own lease")
	require.NoError(t, l.Confirm(ctx))
	require.NoError(t, l.Unlock())
	assert.False(t, m.Exists(s.LockKey()))
}

func TestLockKeepsTryingWhileRedisIsUnreachable(t *testing.T) {
	ctx := t.Context()
	m, rc := newMiniredis(t)
	s := redisstore.New(rc, testKey)
	m.Close()

	// Redis is down: Lock waits, as for a busy lease, and gives up with
	// its ctx.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := s.Lock(short)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	wait := storetest.LockAsync(ctx, s)
	require.NoError(t, m.Restart())
	r := storetest.Await(t, wait)
	require.NoError(t, r.Err, "the lease is taken once Redis is back")
	assert.True(t, m.Exists(s.LockKey()))
	require.NoError(t, r.Unlock())
}
