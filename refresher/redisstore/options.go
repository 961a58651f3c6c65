package redisstore

import "time"

// Defaults of a [Store].
const (
	// DefaultLeaseTTL is how long a lease outlives its last renewal: the
	// longest time a dead holder blocks the others.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultPollInterval is the longest wait between two attempts to take
	// a lease that another holder has.
	DefaultPollInterval = 50 * time.Millisecond
)

// Option configures a [Store].
type Option func(*Store)

// WithLeaseTTL sets how long a lease lives after it was taken or last
// renewed (default [DefaultLeaseTTL]), rounded up to a whole millisecond.
// A held lease is renewed long before it ends, so the TTL only bounds how
// long a holder that died blocks the others. A value of zero or less keeps
// the default.
func WithLeaseTTL(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.ttl = d.Truncate(time.Millisecond)
			if s.ttl < d {
				s.ttl += time.Millisecond
			}
		}
	}
}

// WithRenewInterval sets how often a held lease is renewed (default: a third
// of the lease TTL). A value of zero or less, or not below the lease TTL,
// keeps the default.
func WithRenewInterval(d time.Duration) Option {
	return func(s *Store) { s.renewEvery = d }
}

// WithLockKey sets the key of the lease (default: the token's key followed
// by ":lock").
func WithLockKey(key string) Option {
	return func(s *Store) {
		if key != "" {
			s.lockKey = key
		}
	}
}

// WithPollInterval sets the longest wait between two attempts to take a
// lease that another holder has (default [DefaultPollInterval]). Waits
// start at a millisecond and double up to it. A value of zero or less
// keeps the default.
func WithPollInterval(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.maxPoll = d
		}
	}
}
