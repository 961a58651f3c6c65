package testserver

import (
	"sync"
	"time"
)

// Clock is the server's notion of time. Token lifetimes (access token expiry,
// refresh token idle and absolute lifetimes, the reuse grace interval) are all
// measured with it, so a test can move time forward with [Clock.Advance]
// instead of sleeping.
//
// A Clock made by [NewClock] is frozen: it only moves when Advance is called.
// The zero Clock follows the real time, shifted by whatever Advance added.
// Clock is safe for concurrent use by multiple goroutines.
type Clock struct {
	mu     sync.Mutex    // guards the fields below
	frozen bool          // true: now is the time; false: real time + offset
	now    time.Time     // current time of a frozen clock
	offset time.Duration // added to time.Now() by a real-time clock
}

// NewClock returns a frozen Clock that reads t until [Clock.Advance] moves it.
func NewClock(t time.Time) *Clock {
	return &Clock{frozen: true, now: t}
}

// NewRealClock returns a Clock that follows the real time; [Clock.Advance]
// shifts it forward. It is equivalent to new(Clock).
func NewRealClock() *Clock {
	return new(Clock)
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		return c.now
	}
	return time.Now().Add(c.offset)
}

// Frozen reports whether the clock is frozen, as made by [NewClock]: it
// moves only when Advance is called.
func (c *Clock) Frozen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frozen
}

// Advance moves the clock forward by d. A negative d moves it back, which
// tests rarely want.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.now = c.now.Add(d)
		return
	}
	c.offset += d
}
