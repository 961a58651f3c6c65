package redisstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrLeaseLost is returned (wrapped) by the function that [Store.Lock]
// returns when the lease ended before it was released: it expired because
// it could not be renewed in time, and another holder may have taken it.
// The exclusion it promised may not have held for the whole time.
var ErrLeaseLost = errors.New("redisstore: the lease was lost before unlock")

// minPoll is the first wait between two attempts to take a busy lease.
const minPoll = time.Millisecond

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
// the function that releases it. The lease excludes every other caller of
// Lock on a Store with the same lock key, in this process or in any other
// that uses the same Redis. Waiting for another holder polls Redis, with
// waits that grow from a millisecond to the poll interval.
//
// While the lease is held, a goroutine renews it every renew interval; the
// returned function stops that goroutine, then deletes the lease if this
// caller still owns it. It returns an error wrapping [ErrLeaseLost] if the
// lease had expired (or been taken by another holder) before, and an error
// from Redis if the lease could not be deleted, in which case it expires
// after the lease TTL. Calling it more than once has no further effect and
// returns the first call's result. A caller that never calls it leaks the
// renewal goroutine and blocks every other holder.
func (s *Store) Lock(ctx context.Context) (unlock func() error, err error) {
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
	done := make(chan struct{})
	go s.keepAlive(renewCtx, owner, done)

	var (
		once sync.Once
		uerr error
	)
	return func() error {
		once.Do(func() {
			stopRenewing()
			<-done
			uerr = s.release(bg, owner, s.ttl)
			<-s.sem
		})
		return uerr
	}, nil
}

// acquire takes the lease for owner, polling with a growing, jittered wait
// until it is free or ctx is done.
func (s *Store) acquire(ctx context.Context, owner string) error {
	delay := minPoll
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ok, err := s.client.SetNX(ctx, s.lockKey, owner, s.ttl).Result()
		if err != nil {
			// The SET may have reached Redis even though its answer did
			// not reach us: take back what may be ours, briefly.
			s.release(context.WithoutCancel(ctx), owner, min(s.ttl, time.Second))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("redisstore: take lease %q: %w", s.lockKey, err)
		}
		if ok {
			return nil
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
			return ctx.Err()
		}
		delay = min(2*delay, s.maxPoll)
	}
}

// keepAlive renews owner's lease on every tick until ctx is done or a
// renewal finds the lease gone. It closes done when it returns.
func (s *Store) keepAlive(ctx context.Context, owner string, done chan<- struct{}) {
	defer close(done)
	ticks, stop := s.ticks(s.renewEvery)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		rctx, cancel := context.WithTimeout(ctx, s.renewEvery)
		n, err := renewScript.Run(rctx, s.client, []string{s.lockKey}, owner, s.ttl.Milliseconds()).Int()
		cancel()
		gone := err == nil && n == 0
		if gone {
			err = ErrLeaseLost
		}
		if s.renewed != nil {
			s.renewed(err)
		}
		if gone {
			// Unlock will say so.
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
		return fmt.Errorf("%w: lease %q had expired", ErrLeaseLost, s.lockKey)
	case n < 0:
		return fmt.Errorf("%w: lease %q is held by another owner", ErrLeaseLost, s.lockKey)
	}
	return nil
}
