package redisstore

import "time"

// SetRenewTicks makes every lease of s renew on each value sent on ticks,
// instead of on a timer, and report each renewal's outcome (nil, or an
// error such as ErrLeaseLost) on renewed, which may be nil. Call it before
// the first Lock.
func SetRenewTicks(s *Store, ticks <-chan time.Time, renewed chan<- error) {
	s.ticks = func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
	s.renewed = nil
	if renewed != nil {
		s.renewed = func(err error) { renewed <- err }
	}
}

// LeaseTTL returns the lease TTL of s.
func LeaseTTL(s *Store) time.Duration { return s.ttl }

// RenewInterval returns how often s renews a held lease.
func RenewInterval(s *Store) time.Duration { return s.renewEvery }

// SetRenewHook makes every lease of s report each renewal's outcome on
// renewed, keeping the real renewal timer; outcomes that do not fit in
// renewed's buffer are dropped. Call it before the first Lock.
func SetRenewHook(s *Store, renewed chan<- error) {
	s.renewed = func(err error) {
		select {
		case renewed <- err:
		default:
		}
	}
}
