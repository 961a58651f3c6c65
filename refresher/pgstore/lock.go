package pgstore

import (
	"context"
	"fmt"
	mathrand "math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/autorefresh/autorefresh/refresher"
)

// minPoll is the first wait between two attempts to take a busy lock.
const minPoll = time.Millisecond

// unlockTimeout bounds the statement that releases a lock. If it does not
// complete in time, the lock's connection is closed, which releases the
// lock too.
const unlockTimeout = 5 * time.Second

// Lock waits until it holds the account's lock, or ctx is done, and returns
// the function that releases it; it is [Store.LockLease] for callers that
// need no [refresher.Lease].
func (s *Store) Lock(ctx context.Context) (unlock func() error, err error) {
	l, err := s.LockLease(ctx)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// LockLease waits until it holds the account's lock, or ctx is done. The
// lock excludes every other holder of the same table and key, in this
// process or in any other that uses the same database.
//
// Callers in this process queue without touching the database; the one at
// the head of the queue acquires a connection from the pool and polls the
// lock on it, with waits that grow from a millisecond to the poll interval
// (see [WithPollInterval]). The connection stays out of the pool until
// [refresher.Lease.Unlock], and the Store runs its own statements on it
// meanwhile. If ctx is done first, LockLease returns ctx.Err() and gives
// the connection back.
//
// A statement that the Store runs on the lock's connection and that is
// cancelled through its ctx ends the connection, as pgx does with any
// cancelled statement, and the lock with it: Confirm then reports the loss.
//
// A caller that never unlocks keeps the lock, and the connection, until
// the connection ends.
func (s *Store) LockLease(ctx context.Context) (refresher.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		<-s.sem
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("pgstore: lock key %q: %w", s.key, err)
	}
	if err := s.acquire(ctx, conn); err != nil {
		conn.Release()
		<-s.sem
		return nil, err
	}
	l := &lease{s: s, conn: conn}
	s.mu.Lock()
	s.held = l
	s.mu.Unlock()
	return l, nil
}

// acquire takes the lock on conn, polling with a growing, jittered wait
// until it is free or ctx is done. If it fails after the server may have
// granted the lock, it closes conn, which releases the lock.
func (s *Store) acquire(ctx context.Context, conn *pgxpool.Conn) error {
	delay := minPoll
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		var ok bool
		err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, s.lockID).Scan(&ok)
		if err != nil {
			// The lock may have been granted even though the answer did
			// not reach us: end the session, and the lock with it.
			conn.Conn().Close(context.WithoutCancel(ctx))
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("pgstore: lock key %q: %w", s.key, err)
		}
		if ok {
			return nil
		}
		// Jitter keeps the replicas that wait for one lock from asking
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

// lease is a lock held by a Store, on the connection that took it.
type lease struct {
	s *Store

	mu        sync.Mutex    // guards conn and unlockErr; held while a statement runs on conn
	conn      *pgxpool.Conn // nil once unlocked
	unlockErr error         // the outcome of the first Unlock
}

// Confirm checks that the lock's connection is still open by running a
// trivial statement on it: the lock lives as long as the connection's
// session. It returns an error wrapping [refresher.ErrLeaseLost] if the
// connection ended (the server was restarted, the backend was terminated,
// the network failed) or the lease was unlocked, and ctx.Err() if ctx is
// done before the statement is sent.
func (l *lease) Confirm(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return fmt.Errorf("%w: key %q was unlocked", refresher.ErrLeaseLost, l.s.key)
	}
	var one int
	err := l.conn.QueryRow(ctx, `SELECT 1`).Scan(&one)
	switch {
	case err == nil:
		return nil
	case l.conn.Conn().IsClosed():
		return fmt.Errorf("%w: the connection that holds the lock of key %q ended: %w", refresher.ErrLeaseLost, l.s.key, err)
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return fmt.Errorf("%w: confirm the lock of key %q: %w", refresher.ErrLeaseLost, l.s.key, err)
}

// Unlock releases the lock and gives its connection back to the pool. If
// the lock cannot be released cleanly, the connection is closed instead,
// which releases it too. It returns an error wrapping
// [refresher.ErrLeaseLost] if the connection had ended before, in which
// case another holder may have had the lock meanwhile. Calling it more than
// once has no further effect and returns the first call's result.
func (l *lease) Unlock() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil {
		return l.unlockErr
	}
	conn := l.conn
	l.conn = nil
	l.s.mu.Lock()
	l.s.held = nil
	l.s.mu.Unlock()
	defer func() { <-l.s.sem }()

	ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
	defer cancel()
	var released bool
	err := conn.QueryRow(ctx, `SELECT pg_advisory_unlock($1)`, l.s.lockID).Scan(&released)
	switch {
	case err != nil && conn.Conn().IsClosed():
		l.unlockErr = fmt.Errorf("%w: the connection that held the lock of key %q ended before unlock: %w",
			refresher.ErrLeaseLost, l.s.key, err)
	case err != nil:
		l.unlockErr = fmt.Errorf("pgstore: unlock key %q (its connection is closed instead): %w", l.s.key, err)
	case !released:
		l.unlockErr = fmt.Errorf("%w: the session no longer held the lock of key %q", refresher.ErrLeaseLost, l.s.key)
	}
	if l.unlockErr != nil {
		// Never give the pool a connection whose lock state is unknown.
		conn.Conn().Close(ctx)
	}
	conn.Release() // a closed connection is destroyed, not reused
	return l.unlockErr
}

// run runs fn on the lock's connection and reports true, unless the lease
// was unlocked or its connection has ended, or ends under fn while ctx is
// not done: then it reports false, and the caller runs fn elsewhere.
func (l *lease) run(ctx context.Context, fn func(q querier) error) (done bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == nil || l.conn.Conn().IsClosed() {
		return false, nil
	}
	err = fn(l.conn)
	if err != nil && l.conn.Conn().IsClosed() && ctx.Err() == nil {
		return false, nil
	}
	return true, err
}
