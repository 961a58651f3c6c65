package refresher

import (
	"context"
	"log/slog"
	"time"

	"golang.org/x/oauth2"
)

// Defaults of a [Source].
const (
	// DefaultLeeway is how long before its expiry a token is refreshed.
	DefaultLeeway = 30 * time.Second
	// DefaultRefreshTimeout bounds one shared refresh, whoever waits for it.
	DefaultRefreshTimeout = 30 * time.Second
)

// Option configures a [Source].
type Option func(*Source)

// WithToken sets the first token. Without it the Source loads its first
// token from the Store, or asks the login callback.
//
// With a Store, the token is saved before its first use if the Store holds
// no token yet, so that a process that exits before its first refresh
// leaves its session behind. A Store that already holds a token is taken to
// hold the newest one (another process may have rotated it), so the stored
// token is adopted instead; to replace a stored session after a new login,
// use [Source.SetToken], which saves unconditionally.
func WithToken(t *oauth2.Token) Option {
	return func(s *Source) { s.initial = cloneToken(t) }
}

// WithBlockingRefresh makes callers whose token is due (inside the leeway)
// wait for its refresh, instead of getting the still-valid token at once
// while the refresh runs in the background (the default). If that refresh
// fails transiently, they get the current token until it expires.
func WithBlockingRefresh() Option {
	return func(s *Source) { s.blocking = true }
}

// WithJitterSeed fixes the seed that spreads refresh points over the first
// half of the refresh window (random by default), for deterministic tests.
func WithJitterSeed(seed uint64) Option {
	return func(s *Source) { s.jitterSeed = seed }
}

// WithStore sets where tokens are persisted. Every new token is saved before
// any request uses it. If the Store also implements [Locker], refreshes are
// coordinated through its lock with every other holder of the same Store.
func WithStore(st Store) Option {
	return func(s *Source) { s.store = st }
}

// WithLeeway sets how long before its expiry a token becomes due for a
// proactive refresh (default [DefaultLeeway]). The lead is capped at half of
// the token's remaining lifetime when the Source received it, so that a
// token shorter-lived than the leeway is not refreshed on every use. Each
// token's refresh point is spread over the first half of that window (a
// token with a 30 s lead becomes due between 30 s and 15 s before its
// expiry), so that replicas and sessions holding tokens issued together do
// not refresh together.
func WithLeeway(d time.Duration) Option {
	return func(s *Source) { s.leeway = max(d, 0) }
}

// WithClock sets the clock used to judge expiry (default [time.Now]).
func WithClock(now func() time.Time) Option {
	return func(s *Source) {
		if now != nil {
			s.now = now
		}
	}
}

// WithRefreshTimeout bounds one shared refresh (default
// [DefaultRefreshTimeout]). The refresh runs on its own context, detached from
// the callers waiting for it.
func WithRefreshTimeout(d time.Duration) Option {
	return func(s *Source) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// WithLogger sets a logger for refresh events. Nothing it logs contains a
// token. Default: no logging.
func WithLogger(l *slog.Logger) Option {
	return func(s *Source) { s.log = l }
}

// WithRefreshHook sets a function called after each successful refresh by
// the Endpoint, with the old and the new token, after the new token was
// saved to the Store and before any caller receives it: a place to persist
// the token elsewhere or to count refreshes. It is not called for a login
// (the login callback) nor for a token adopted from the Store; an
// [Observer] sees those, with their [Kind]. It runs on the refresh's
// goroutine; it must not modify the tokens nor call back into the Source. A
// panic in it is recovered and logged.
func WithRefreshHook(fn func(old, new *oauth2.Token)) Option {
	return func(s *Source) { s.onRefresh = fn }
}

// WithFailureHook sets a function called after each failed refresh, with the
// token that could not be refreshed (nil if there was none) and the error.
// It must not modify the token nor call back into the Source. A panic in it
// is recovered and logged.
func WithFailureHook(fn func(old *oauth2.Token, err error)) Option {
	return func(s *Source) { s.onFailure = fn }
}

// WithLogin sets a function that obtains a new token when there is none or
// the session is over (the refresh token was rejected): the equivalent of an
// application sending its user to the login page. It is single-flighted like
// a refresh. Without it, such a Source fails with [ErrReauthRequired] until
// [Source.SetToken] gives it a token.
func WithLogin(fn func(ctx context.Context) (*oauth2.Token, error)) Option {
	return func(s *Source) { s.login = fn }
}
