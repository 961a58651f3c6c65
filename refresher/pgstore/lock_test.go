package pgstore_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
)

func TestLockExcludesSecondHolder(t *testing.T) {
	ctx := t.Context()
	pool, other := newPool(t, nil), newPool(t, nil)
	table := newTable(t, pool)
	a := pgstore.New(pool, testKey, pgstore.WithTable(table))
	a2 := pgstore.New(pool, testKey, pgstore.WithTable(table)) // another Store in this process
	b := pgstore.New(other, testKey, pgstore.WithTable(table)) // another replica

	unlock, err := a.Lock(ctx)
	require.NoError(t, err)
	storetest.AssertLockBusy(t, a)  // same Store, another goroutine
	storetest.AssertLockBusy(t, a2) // another Store, another session
	storetest.AssertLockBusy(t, b)  // another pool

	// The waiters get the lock one after the other once it is released.
	waitA2, waitB := storetest.LockAsync(ctx, a2), storetest.LockAsync(ctx, b)
	require.NoError(t, unlock())
	var first storetest.LockResult
	second := waitA2
	select {
	case first = <-waitA2:
		second = waitB
	case first = <-waitB:
	case <-time.After(fleet.Timeout):
		t.Fatal("no waiter got the lock")
	}
	require.NoError(t, first.Err)
	select {
	case r := <-second:
		t.Fatalf("both waiters hold the lock (second: %v)", r.Err)
	default:
	}
	require.NoError(t, first.Unlock())
	r := storetest.Await(t, second)
	require.NoError(t, r.Err)
	require.NoError(t, r.Unlock())
	assertAllReleased(t, pool)
	assertAllReleased(t, other)
}

func TestLocksOfDifferentKeysAreIndependent(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	unlockA, err := pgstore.New(pool, "account-a", pgstore.WithTable(table)).Lock(ctx)
	require.NoError(t, err)
	defer unlockA()

	lockCtx, cancel := context.WithTimeout(ctx, fleet.Timeout)
	defer cancel()
	unlockB, err := pgstore.New(pool, "account-b", pgstore.WithTable(table)).Lock(lockCtx)
	require.NoError(t, err, "the lock of another account")
	require.NoError(t, unlockB())

	// The same key in another table is another lock too.
	unlockC, err := pgstore.New(pool, "account-a", pgstore.WithTable(newTable(t, pool))).Lock(lockCtx)
	require.NoError(t, err, "the lock of the same key in another table")
	require.NoError(t, unlockC())
}

func TestLockExcludesAnotherProcess(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	s := pgstore.New(pool, testKey, pgstore.WithTable(table))

	h := helperBinary.Start(t, "holder", "hold-lock", dsnEnv+"="+pgDSN, tableEnv+"="+table, keyEnv+"="+testKey)
	h.Expect("locked")
	storetest.AssertLockBusy(t, s)

	wait := storetest.LockAsync(ctx, s)
	h.Finish() // the helper unlocks, then exits
	r := storetest.Await(t, wait)
	require.NoError(t, r.Err)
	require.NoError(t, r.Unlock())
}

func TestLockOfKilledProcessGoesWithItsConnection(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	s := pgstore.New(pool, testKey, pgstore.WithTable(table))

	h := helperBinary.Start(t, "holder", "hold-lock", dsnEnv+"="+pgDSN, tableEnv+"="+table, keyEnv+"="+testKey)
	h.Expect("locked")
	storetest.AssertLockBusy(t, s)
	h.Kill() // no unlock: the lock goes when the server sees the connection close

	lockCtx, cancel := context.WithTimeout(ctx, fleet.Timeout)
	defer cancel()
	start := time.Now()
	unlock, err := s.Lock(lockCtx)
	require.NoError(t, err, "the lock of a killed holder is released")
	t.Logf("took the lock %v after the holder was killed", time.Since(start).Round(time.Millisecond))
	require.NoError(t, unlock())
}

// helperHoldLock takes the lock of the key named by the environment, says
// "locked", and keeps it until its stdin is closed.
func helperHoldLock(in *bufio.Scanner, out io.Writer) error {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv(dsnEnv))
	if err != nil {
		return err
	}
	defer pool.Close()
	s := pgstore.New(pool, os.Getenv(keyEnv), pgstore.WithTable(os.Getenv(tableEnv)))
	unlock, err := s.Lock(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "locked")
	for in.Scan() {
	}
	return unlock()
}

func TestTerminatedHolderLosesLeaseAndNextHolderLocks(t *testing.T) {
	ctx := t.Context()
	poolA, poolB, admin := newPool(t, nil), newPool(t, nil), newPool(t, nil)
	table := newTable(t, admin)
	a := pgstore.New(poolA, testKey, pgstore.WithTable(table))
	b := pgstore.New(poolB, testKey, pgstore.WithTable(table))

	lease, err := a.LockLease(ctx)
	require.NoError(t, err)
	require.NoError(t, lease.Confirm(ctx), "a lease just taken")
	wait := storetest.LockAsync(ctx, b)

	var terminated bool
	require.NoError(t, admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pgstore.LeaseBackendPID(lease)).Scan(&terminated))
	require.True(t, terminated)

	r := storetest.Await(t, wait)
	require.NoError(t, r.Err, "the next holder gets the lock")
	err = lease.Confirm(ctx)
	assert.ErrorIs(t, err, refresher.ErrLeaseLost)
	t.Logf("Confirm: %v", err)

	// A token saved after the loss still reaches the table, through the
	// pool: it may be the only one the server still accepts.
	require.NoError(t, a.Save(ctx, storetest.Token(1)))
	got, err := b.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)

	err = lease.Unlock()
	assert.ErrorIs(t, err, refresher.ErrLeaseLost)
	assert.Equal(t, err, lease.Unlock(), "a second Unlock returns the first one's result")
	assertAllReleased(t, poolA)
	require.NoError(t, r.Unlock())

	// a can lock again, on a new connection.
	lease, err = a.LockLease(ctx)
	require.NoError(t, err)
	assert.NoError(t, lease.Confirm(ctx))
	assert.NoError(t, lease.Unlock())
}

func TestCancelledLockWaitReturnsPromptlyAndFreesConnection(t *testing.T) {
	ctx := t.Context()
	pool, other := newPool(t, nil), newPool(t, nil)
	table := newTable(t, pool)
	unlock, err := pgstore.New(other, testKey, pgstore.WithTable(table)).Lock(ctx)
	require.NoError(t, err)
	defer unlock()

	s := pgstore.New(pool, testKey, pgstore.WithTable(table))
	waitCtx, cancelWait := context.WithCancel(ctx)
	wait := storetest.LockAsync(waitCtx, s)
	// The waiter polls the lock on a connection of its own.
	require.Eventually(t, func() bool { return pool.Stat().AcquiredConns() == 1 }, fleet.Timeout, time.Millisecond)
	start := time.Now()
	cancelWait()
	r := storetest.Await(t, wait)
	elapsed := time.Since(start)
	assert.ErrorIs(t, r.Err, context.Canceled)
	assert.Less(t, elapsed, time.Second, "Lock returned %v after the cancellation", elapsed)
	assertAllReleased(t, pool)

	// A deadline ends a wait the same way.
	deadlineCtx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = s.Lock(deadlineCtx)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assertAllReleased(t, pool)

	// An already cancelled context takes nothing.
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Lock(done)
	assert.ErrorIs(t, err, context.Canceled)

	// Once the holder unlocks, the Store locks as if nothing happened.
	require.NoError(t, unlock())
	lockCtx, cancel := context.WithTimeout(ctx, fleet.Timeout)
	defer cancel()
	unlock2, err := s.Lock(lockCtx)
	require.NoError(t, err)
	require.NoError(t, unlock2())
}

func TestLeaseUnlockIsIdempotent(t *testing.T) {
	ctx := t.Context()
	pool := newPool(t, nil)
	table := newTable(t, pool)
	s := pgstore.New(pool, testKey, pgstore.WithTable(table))
	lease, err := s.LockLease(ctx)
	require.NoError(t, err)
	require.NoError(t, lease.Unlock())
	require.NoError(t, lease.Unlock())
	assert.ErrorIs(t, lease.Confirm(ctx), refresher.ErrLeaseLost, "Confirm after Unlock")
	assertAllReleased(t, pool)

	// The unlocked lease does not release the next holder's lock.
	next, err := s.LockLease(ctx)
	require.NoError(t, err)
	require.NoError(t, lease.Unlock())
	assert.NoError(t, next.Confirm(ctx))
	storetest.AssertLockBusy(t, pgstore.New(newPool(t, nil), testKey, pgstore.WithTable(table)))
	require.NoError(t, next.Unlock())
}

func TestStatementsUnderLockNeedNoSecondConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), fleet.Timeout)
	defer cancel()
	pool := newPool(t, func(c *pgxpool.Config) { c.MaxConns = 1 })
	s := pgstore.New(pool, testKey, pgstore.WithTable(newTable(t, pool)))
	require.NoError(t, s.Save(ctx, storetest.Token(1)))

	// A refresh: lock, reload, confirm, swap, unlock, on a pool of one
	// connection, with other goroutines reading the token meanwhile.
	lease, err := s.LockLease(ctx)
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			got, err := s.Load(ctx)
			if assert.NoError(t, err) && assert.NotNil(t, got) {
				assert.Contains(t, []string{"refresh-1", "refresh-2"}, got.RefreshToken)
			}
		})
	}
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
	require.NoError(t, lease.Confirm(ctx))
	swapped, err := s.CompareAndSwap(ctx, got, storetest.Token(2))
	require.NoError(t, err)
	assert.True(t, swapped)
	wg.Wait()
	require.NoError(t, lease.Unlock())

	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)
	require.False(t, errors.Is(ctx.Err(), context.DeadlineExceeded), "the statements waited for a connection")
}

// assertAllReleased checks that every connection acquired from pool is
// back, or destroyed: the pool destroys a closed connection on another
// goroutine, so this may take a moment.
func assertAllReleased(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	assert.Eventually(t, func() bool { return pool.Stat().AcquiredConns() == 0 }, time.Second, time.Millisecond,
		"connections still out of the pool: %d", pool.Stat().AcquiredConns())
}
