package refresher

import (
	"context"
	"errors"
	"time"
)

// Observer receives a [Source]'s events, for metrics and traces (package
// otelrefresher adapts them to OpenTelemetry). Events carry no token values.
//
// Its methods are called on the refresh's goroutine, never with a lock held;
// they must be safe for concurrent use and should return quickly. A panic
// in an Observer is recovered and logged. Embed [NopObserver] to implement
// only some of them.
type Observer interface {
	// RefreshStarted is called when a refresh starts, with the context of
	// the caller that started it (its values, not its cancellation). The
	// context it returns becomes the refresh's context: a tracer can start
	// a span there, linked to the caller's.
	RefreshStarted(ctx context.Context, ev RefreshStart) context.Context
	// RefreshEnded is called once per refresh whose start was reported,
	// after its outcome was committed and before the callers waiting for it
	// are released. A refresh superseded by [Source.SetToken] or
	// [Source.Logout] ends without an event.
	RefreshEnded(ctx context.Context, ev RefreshEvent)
	// LockAcquired is called when a refresh took the Store's lock, after
	// waiting for it for wait.
	LockAcquired(ctx context.Context, wait time.Duration)
	// LeaseLost is called when a refresh was aborted, before presenting the
	// refresh token, because the Store's lease had lapsed.
	LeaseLost(ctx context.Context)
	// SessionOver is called when the session ends: the refresh token was
	// rejected, there is none, or [Source.Logout] was called. It is called
	// once per session, not for every caller that is then refused.
	SessionOver(ctx context.Context, err error)
}

// NopObserver is an [Observer] that does nothing, to embed in an Observer
// that implements only some methods.
type NopObserver struct{}

// RefreshStarted returns ctx.
func (NopObserver) RefreshStarted(ctx context.Context, _ RefreshStart) context.Context { return ctx }

// RefreshEnded does nothing.
func (NopObserver) RefreshEnded(context.Context, RefreshEvent) {}

// LockAcquired does nothing.
func (NopObserver) LockAcquired(context.Context, time.Duration) {}

// LeaseLost does nothing.
func (NopObserver) LeaseLost(context.Context) {}

// SessionOver does nothing.
func (NopObserver) SessionOver(context.Context, error) {}

// RefreshStart describes a refresh that is starting.
type RefreshStart struct {
	// Background reports a refresh started while the current token was
	// still valid, which no caller waits for.
	Background bool
}

// Kind says how a refresh produced its token.
type Kind string

// The kinds of a [RefreshEvent].
const (
	// KindRefresh: the Endpoint exchanged the refresh token.
	KindRefresh Kind = "refresh"
	// KindLogin: the login callback ([WithLogin]) produced a token.
	KindLogin Kind = "login"
	// KindAdoption: the Store held a newer token, saved by another holder
	// (another process, or a login), and it was taken as it is.
	KindAdoption Kind = "adoption"
)

// Outcome classifies how a refresh ended, as the metric attribute
// "outcome" does.
type Outcome string

// The outcomes of a [RefreshEvent].
const (
	OutcomeOK            Outcome = "ok"            // a new token from the Endpoint or the login callback
	OutcomeAdopted       Outcome = "adopted"       // a newer token from the Store
	OutcomeSessionOver   Outcome = "session_over"  // the session is over (ErrReauthRequired)
	OutcomeTransient     Outcome = "transient"     // may succeed later: network, 5xx, 429, a lost lease
	OutcomeMisconfigured Outcome = "misconfigured" // will not succeed until something is fixed
)

// RefreshEvent describes a refresh that ended.
type RefreshEvent struct {
	Kind       Kind          // how the token was produced; empty when it failed before knowing
	Outcome    Outcome       // how the refresh ended
	Duration   time.Duration // from start to commit, lock wait included
	Waiters    int           // callers that waited for this refresh (0 for a background refresh nobody waited for)
	Background bool          // started while the token was still valid
	StatusCode int           // the refresh endpoint's HTTP status when it failed, 0 otherwise
	Err        error         // nil on success; never holds a token
}

// outcomeOf classifies a refresh's error.
func outcomeOf(err error) Outcome {
	var re *RefreshError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrReauthRequired):
		return OutcomeSessionOver
	case errors.Is(err, ErrLeaseLost), errors.Is(err, context.DeadlineExceeded):
		return OutcomeTransient
	case errors.As(err, &re) && re.Temporary():
		return OutcomeTransient
	}
	return OutcomeMisconfigured
}

// WithObserver adds an [Observer] of the Source's events. It may be given
// more than once; each Observer sees every event.
func WithObserver(o Observer) Option {
	return func(s *Source) {
		if o != nil {
			s.observers = append(s.observers, o)
		}
	}
}
