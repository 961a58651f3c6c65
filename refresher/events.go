package refresher

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/fence"
)

// What a refresh reports: logs, hooks and Observer events, each call into
// user-supplied code guarded so that its panic cannot kill the process.

// emit reports a committed refresh to the Observers.
func (s *Source) emit(ctx context.Context, c *call, out outcome, err error, ended bool, waiters int, d time.Duration) {
	if len(s.observers) == 0 || !c.observed() || out.kind == kindSuperseded {
		return // a save, a look at the Store of a session that is over, or a refresh superseded by SetToken or Logout
	}
	ev := RefreshEvent{
		Kind:       eventKind(out.kind),
		Outcome:    outcomeOf(err),
		Duration:   d,
		Waiters:    waiters,
		Background: c.background,
		Err:        err,
	}
	if out.kind == kindAdopted {
		ev.Outcome = OutcomeAdopted
	}
	var re *RefreshError
	if errors.As(err, &re) {
		ev.StatusCode = re.StatusCode
	}
	for _, o := range s.observers {
		if errors.Is(err, ErrLeaseLost) {
			s.guard(ctx, "an Observer", func() { o.LeaseLost(ctx) })
		}
		s.guard(ctx, "an Observer", func() { o.RefreshEnded(ctx, ev) })
	}
}

// reportOver tells the Observers, and Sessions' callback, that the session
// ended with err.
func (s *Source) reportOver(ctx context.Context, err error) {
	for _, o := range s.observers {
		s.guard(ctx, "an Observer", func() { o.SessionOver(ctx, err) })
	}
	if fn := s.sessionOver.Load(); fn != nil {
		s.guard(ctx, "the session-over callback", func() { (*fn)(err) })
	}
}

// observeStart calls o.RefreshStarted, keeping ctx if it panics or
// returns nil.
func (s *Source) observeStart(ctx context.Context, o Observer, c *call) context.Context {
	next := ctx
	s.guard(ctx, "an Observer", func() { next = o.RefreshStarted(ctx, RefreshStart{Background: c.background}) })
	if next == nil {
		return ctx
	}
	return next
}

func eventKind(k outcomeKind) Kind {
	switch k {
	case kindRefreshed:
		return KindRefresh
	case kindLoggedIn:
		return KindLogin
	case kindAdopted:
		return KindAdoption
	}
	return ""
}

// logSuccess logs a refresh that produced a token.
func (s *Source) logSuccess(ctx context.Context, out outcome) {
	msg := map[outcomeKind]string{
		kindRefreshed: "refresher: token refreshed",
		kindLoggedIn:  "refresher: logged in",
		kindAdopted:   "refresher: adopted the stored token",
		kindSaved:     "refresher: token saved",
	}[out.kind]
	if msg == "" {
		return
	}
	attrs := []slog.Attr{slog.Bool("rotated", out.old == nil || out.old.RefreshToken != out.tok.RefreshToken)}
	if !out.tok.Expiry.IsZero() {
		attrs = append(attrs, slog.Duration("expires_in", out.tok.Expiry.Sub(s.now()).Round(time.Second)))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
}

// logFailure logs a failed refresh; failures that repeat (a session that
// stays over, a background refresh that keeps failing) are rate-limited.
func (s *Source) logFailure(ctx context.Context, c *call, err error) {
	key := "refresh-failed"
	if c.over != nil {
		key = "session-over"
	} else if c.background {
		key = "background-refresh-failed"
	}
	s.warn(ctx, key, "refresher: refresh failed", err)
}

// warn logs msg with err, at most once per warnEvery for each key.
func (s *Source) warn(ctx context.Context, key, msg string, err error) {
	if s.warnings.allow(key, time.Now()) {
		s.log.LogAttrs(ctx, slog.LevelWarn, msg, errorAttrs(err)...)
	}
}

// limiter rate-limits log lines by key. Its zero value is ready to use.
type limiter struct {
	mu   sync.Mutex // guards next
	next map[string]time.Time
}

// allow reports whether the line keyed key may be logged at now.
func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next[key]) {
		return false
	}
	if l.next == nil {
		l.next = make(map[string]time.Time)
	}
	l.next[key] = now.Add(warnEvery)
	return true
}

// errorAttrs describes err for the log without any token value.
func errorAttrs(err error) []slog.Attr {
	attrs := []slog.Attr{slog.String("error", err.Error()),
		slog.Bool("reauth_required", errors.Is(err, ErrReauthRequired))}
	var re *RefreshError
	if errors.As(err, &re) {
		attrs = append(attrs, slog.Bool("temporary", re.Temporary()))
		if re.StatusCode != 0 {
			attrs = append(attrs, slog.Int("status", re.StatusCode))
		}
	}
	return attrs
}

// guard runs fn, a call into user-supplied code outside a refresh's
// decision (a hook, an Observer), and logs a panic instead of letting it
// end the process.
func (s *Source) guard(ctx context.Context, what string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			s.log.LogAttrs(ctx, slog.LevelError, "refresher: recovered a panic",
				slog.String("in", what), slog.String("panic", fmt.Sprint(v)), slog.String("stack", string(debug.Stack())))
		}
	}()
	fn()
}

// PanicError is the cause of a refresh that user-supplied code (an
// Endpoint, a Store, its lock, the login callback, a hook) ended by
// panicking or by calling runtime.Goexit. The refresh fails with it, wrapped
// in a [*RefreshError]; the process goes on.
type PanicError struct {
	In    string // what was running: "the Endpoint", "the Store", ...
	Value any    // the value passed to panic; nil for runtime.Goexit
	Stack []byte // the panicking goroutine's stack
}

// Error names where the panic happened and its value.
func (e *PanicError) Error() string {
	in := e.In
	if in == "" {
		in = "the refresh"
	}
	if e.Value == nil {
		return "runtime.Goexit called in " + in
	}
	return fmt.Sprintf("panic in %s: %v", in, e.Value)
}

// panicError describes what ended a refresh that did not return: the value
// recovered from a panic, or nil after runtime.Goexit.
func panicError(in string, v any) error {
	return &RefreshError{Err: &PanicError{In: in, Value: v, Stack: debug.Stack()}}
}

// Lease checks.

// fenceChecker is implemented by the endpoints that confirm the Store's
// lease themselves, right before each attempt writes its request.
type fenceChecker interface{ checksFence() }

// withLeaseCheck makes the endpoints confirm lease before each attempt.
func withLeaseCheck(ctx context.Context, lease Lease) context.Context {
	return fence.With(ctx, func(ctx context.Context) error { return confirmLease(ctx, lease) })
}

// confirmLease confirms lease; any failure to confirm it counts as lost,
// since this holder can no longer prove it holds the lock.
func confirmLease(ctx context.Context, lease Lease) error {
	if err := lease.Confirm(ctx); err != nil {
		if !errors.Is(err, ErrLeaseLost) {
			err = fmt.Errorf("%w: %w", ErrLeaseLost, err)
		}
		return err
	}
	return nil
}

// Jitter.

// jitter returns a point in [0, window) that spreads the refresh points
// of tokens issued together: it depends on the token and on the Source's
// seed, so two replicas holding the same token, or two sessions whose tokens
// were issued in the same second, become due at different times. It uses
// no clock, so that tests with an injected clock stay deterministic
// ([WithJitterSeed] fixes the seed).
func jitter(seed uint64, t *oauth2.Token, window time.Duration) time.Duration {
	if window <= 0 {
		return 0
	}
	h := fnv.New64a()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	h.Write(b[:])
	h.Write([]byte(t.AccessToken))
	return time.Duration(h.Sum64() % uint64(window))
}

// randomSeed returns a random jitter seed.
func randomSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
