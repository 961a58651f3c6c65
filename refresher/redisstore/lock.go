package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autorefresh/autorefresh/refresher"
)

// ErrLeaseLost is [refresher.ErrLeaseLost]: errors that report a lease
// that ended while it was held wrap it. Such a lease expired because it
// could not be renewed in time, and another holder may have taken it: the
// exclusion it promised may not have held for the whole time.
var ErrLeaseLost = refresher.ErrLeaseLost

// minPoll is the first wait between two attempts to take a busy lease.
const minPoll = time.Millisecond

// acquireScript takes the lease KEYS[1] for the owner ARGV[1] for ARGV[2]
// milliseconds. It returns 1 if the owner holds it now, including when the
// key held the owner already (an earlier attempt of the same acquisition
// reached Redis, but its answer did not come back), and 0 if another owner
// holds it.
var acquireScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if v == ARGV[1] then
	redis.call("PEXPIRE", KEYS[1], ARGV[2])
	return 1
end
if v then
	return 0
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1
`)

// releaseScript deletes the lease KEYS[1] if it still holds the owner
// ARGV[1]. It returns 1 if it deleted it, 0 if the key did not exist and -1
// if another owner holds it.
var releaseScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if v == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
if v == false then
	return 0
end
return -1
`)

// renewScript sets the lease KEYS[1] to expire in ARGV[2] milliseconds if it
// still holds the owner ARGV[1]. It returns 1 if it did, else 0.
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
`)

// Lock waits until it holds the store's lease, or ctx is done, and returns
// the function that releases it: it is [Store.LockLease] without the
// confirmation. The returned function returns an error wrapping
// [ErrLeaseLost] if the lease had expired (or been taken by another holder)
// before, and an error from Redis if the lease could not be deleted, in
// which case it expires after the lease TTL. Calling it more than once has
// no further effect and returns the first call's result.
func (s *Store) Lock(ctx context.Context) (unlock func() error, err error) {
	l, err := s.LockLease(ctx)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// LockLease waits until it holds the store's lease, or ctx is done. The
// lease excludes every other holder on a Store with the same lock key, in
// this process or in any other that uses the same Redis. Waiting for
// another holder polls Redis, with waits that grow from a millisecond to
// the poll interval.
//
// Taking the lease is one Lua script that also accepts a lease already
// holding this acquisition's owner value, so that an attempt that reached
// Redis but whose answer was lost (Redis paused or slow past the client's
// read timeout, and go-redis's own retries) never leaves the holder waiting
// for its own lease. While Redis cannot be reached, LockLease keeps trying,
// with the same owner value, until ctx is done; when it gives up, it
// deletes what an unanswered attempt may have taken, if Redis answers
// within a second. An error answered by Redis ends it at once.
//
// While the lease is held, a goroutine renews it every renew interval, and
// [refresher.Lease.Confirm] checks and renews it in one script. Unlock
// stops the goroutine, then deletes the lease if this holder still owns
// it. A holder that never unlocks leaks the renewal goroutine and blocks
// every other holder of this Store.
func (s *Store) LockLease(ctx context.Context) (refresher.Lease, error) {
	// Callers in this process queue here, without polling Redis.
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	owner := rand.Text()
	if err := s.acquire(ctx, owner); err != nil {
		<-s.sem
		return nil, err
	}

	// The renewals and the release outlive ctx: the lease is ours until
	// unlock, whatever happens to the context that asked for it.
	bg := context.WithoutCancel(ctx)
	renewCtx, stopRenewing := context.WithCancel(bg)
	l := &lease{s: s, owner: owner, bg: bg, stop: stopRenewing, done: make(chan struct{})}
	go l.keepAlive(renewCtx)
	return l, nil
}

// lease is a lease held through a Store.
type lease struct {
	s     *Store
	owner string          // random value that names this holder in Redis
	bg    context.Context // for the release, which outlives LockLease's ctx
	stop  func()          // stops keepAlive
	done  chan struct{}   // closed when keepAlive returns

	lost     atomic.Bool // a renewal or a confirmation found the lease gone
	released atomic.Bool // Unlock was called

	once sync.Once // guards the release
	uerr error     // the release's outcome
}

// Confirm checks, in one script, that the lease still holds this holder's
// owner value, and extends it by the lease TTL. It returns an error wrapping
// [ErrLeaseLost] if the lease expired or another holder took it (or Unlock
// was called), and an error from Redis if it could not tell.
func (l *lease) Confirm(ctx context.Context) error {
	s := l.s
	if l.released.Load() {
		return fmt.Errorf("redisstore: lease %q was released: %w", s.lockKey, ErrLeaseLost)
	}
	if l.lost.Load() {
		return l.lostError()
	}
	n, err := renewScript.Run(ctx, s.client, []string{s.lockKey}, l.owner, s.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redisstore: confirm lease %q: %w", s.lockKey, err)
	}
	if n == 0 {
		l.lost.Store(true)
		return l.lostError()
	}
	return nil
}

func (l *lease) lostError() error {
	return fmt.Errorf("redisstore: lease %q is no longer held: it expired or another holder took it: %w", l.s.lockKey, ErrLeaseLost)
}

// Unlock stops the renewals and deletes the lease if this holder still owns
// it; see [Store.Lock] for what it returns.
func (l *lease) Unlock() error {
	l.once.Do(func() {
		l.released.Store(true)
		l.stop()
		<-l.done
		l.uerr = l.s.release(l.bg, l.owner, l.s.ttl)
		<-l.s.sem
	})
	return l.uerr
}

// acquire takes the lease for owner, polling with a growing, jittered wait
// until it is free or ctx is done. Attempts that fail because Redis cannot
// be reached are repeated with the same owner.
func (s *Store) acquire(ctx context.Context, owner string) (err error) {
	delay := minPoll
	var timer *time.Timer
	// unanswered is set once an attempt may have reached Redis without its
	// answer reaching us: it may have taken the lease.
	var unanswered bool
	var lastErr error
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if err != nil && unanswered {
			s.release(context.WithoutCancel(ctx), owner, min(s.ttl, time.Second))
		}
	}()
	for {
		n, err := acquireScript.Run(ctx, s.client, []string{s.lockKey}, owner, s.ttl.Milliseconds()).Int()
		switch {
		case err == nil && n == 1:
			return nil
		case err == nil:
			// Busy: another holder has it.
		case ctx.Err() != nil:
			unanswered = true
			if !errors.Is(err, ctx.Err()) {
				lastErr = err
			}
			return s.gaveUp(ctx, lastErr)
		case answered(err):
			return fmt.Errorf("redisstore: take lease %q: %w", s.lockKey, err)
		default:
			unanswered, lastErr = true, err
		}
		// Jitter keeps the replicas that wait for one lease from asking
		// in lockstep.
		wait := delay/2 + mathrand.N(delay/2+1)
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return s.gaveUp(ctx, lastErr)
		}
		delay = min(2*delay, s.maxPoll)
	}
}

// gaveUp returns the error of an acquisition whose ctx is done: ctx's
// error, with the last error from Redis if Redis could not be reached.
func (s *Store) gaveUp(ctx context.Context, lastErr error) error {
	if lastErr != nil {
		return fmt.Errorf("redisstore: take lease %q: %w (last error from Redis: %v)", s.lockKey, ctx.Err(), lastErr)
	}
	return ctx.Err()
}

// answered reports whether err ends the wait for a lease at once: Redis
// answered with an error (so the script did not take the lease), or the
// client is closed. Other errors (timeouts, refused or reset connections)
// mean Redis could not be reached, and the attempt is repeated.
func answered(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) || errors.Is(err, redis.ErrClosed)
}

// keepAlive renews the lease on every tick until ctx is done or a renewal
// finds the lease gone. It closes l.done when it returns.
func (l *lease) keepAlive(ctx context.Context) {
	defer close(l.done)
	s := l.s
	ticks, stop := s.ticks(s.renewEvery)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		rctx, cancel := context.WithTimeout(ctx, s.renewEvery)
		n, err := renewScript.Run(rctx, s.client, []string{s.lockKey}, l.owner, s.ttl.Milliseconds()).Int()
		cancel()
		gone := err == nil && n == 0
		if gone {
			l.lost.Store(true)
			err = ErrLeaseLost
		}
		if s.renewed != nil {
			s.renewed(err)
		}
		if gone {
			// Confirm and Unlock will say so.
			return
		}
		// On any other error, try again at the next tick: the lease
		// lives on until its TTL runs out.
	}
}

// release deletes owner's lease, giving up after timeout.
func (s *Store) release(ctx context.Context, owner string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n, err := releaseScript.Run(ctx, s.client, []string{s.lockKey}, owner).Int()
	switch {
	case err != nil:
		return fmt.Errorf("redisstore: release lease %q (it expires within %v): %w", s.lockKey, s.ttl, err)
	case n == 0:
		return fmt.Errorf("redisstore: lease %q had expired: %w", s.lockKey, ErrLeaseLost)
	case n < 0:
		return fmt.Errorf("redisstore: lease %q is held by another owner: %w", s.lockKey, ErrLeaseLost)
	}
	return nil
}
