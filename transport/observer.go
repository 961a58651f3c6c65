package transport

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"golang.org/x/oauth2"
)

// Observer receives a [Transport]'s events, for metrics and traces (package
// otelrefresher adapts them to OpenTelemetry). Events carry no token values.
//
// Its methods are called on the goroutine of the request, with the
// request's context (so that a span in it can be annotated or linked). They
// must be safe for concurrent use and should return quickly. A panic in an
// Observer is recovered and logged. Embed [NopObserver] to implement only
// some of them.
type Observer interface {
	// TokenRejected is called once for each answer that rejected the token
	// (a 401, or what [WithRefreshOn] or [WithRefreshWhen] says), after the
	// Transport asked its Source for a new token and, if it could, replayed
	// the request. ev.Outcome says how that ended.
	TokenRejected(ctx context.Context, ev RejectionEvent)
	// TokenWithheld is called for a request that was to carry the token and
	// does not, because a rule of [Transport] kept it: a redirect that left
	// the original host (or went from https to http), a host outside the
	// allow-list, or plain http to a host that is not loopback (that request
	// is not sent at all; it fails with [ErrInsecureHTTP]).
	TokenWithheld(ctx context.Context, ev WithheldEvent)
}

// NopObserver is an [Observer] that does nothing, to embed in an Observer
// that implements only some methods.
type NopObserver struct{}

// TokenRejected does nothing.
func (NopObserver) TokenRejected(context.Context, RejectionEvent) {}

// TokenWithheld does nothing.
func (NopObserver) TokenWithheld(context.Context, WithheldEvent) {}

// ReplayOutcome says what became of a request whose token was rejected, as
// the metric attribute "outcome" does.
type ReplayOutcome string

// The outcomes of a [RejectionEvent].
const (
	// ReplayOK: the request was replayed with a new token, and the answer
	// to the replay did not reject it.
	ReplayOK ReplayOutcome = "ok"
	// ReplayRejectedAgain: the request was replayed with a new token, and
	// that one was rejected too; that answer is returned.
	ReplayRejectedAgain ReplayOutcome = "rejected_again"
	// ReplayNotReplayable: the request body could not be sent again (it
	// outgrew the replay limit, was still being sent, or GetBody failed).
	// The token was refreshed for the next request; the rejection is
	// returned.
	ReplayNotReplayable ReplayOutcome = "not_replayable"
	// ReplayNoRefresh: the Source gave no new token (the refresh failed, or
	// gave back the rejected token), so nothing was replayed. The Source's
	// own events say why.
	ReplayNoRefresh ReplayOutcome = "no_refresh"
	// ReplayFailed: the replay was sent but got no answer (a network
	// error).
	ReplayFailed ReplayOutcome = "failed"
)

// RejectionEvent describes an answer that rejected the token, and what the
// Transport did about it.
type RejectionEvent struct {
	Outcome      ReplayOutcome // what became of the request
	StatusCode   int           // the status of the answer that rejected the token
	ReplayStatus int           // the status of the replay's answer; 0 if there was none
	Method       string        // the request's method
	Host         string        // the request's host (and port, if any)
}

// WithheldReason says which rule kept a token from a request, as the metric
// attribute "reason" does.
type WithheldReason string

// The reasons of a [WithheldEvent].
const (
	// WithheldRedirect: a redirect left the original host or went from
	// https to http; the request was sent without the token.
	WithheldRedirect WithheldReason = "redirect"
	// WithheldNotAllowed: the host is not in the list of
	// [WithAllowedHosts]; the request was sent without the token.
	WithheldNotAllowed WithheldReason = "not_allowed"
	// WithheldInsecureHTTP: the token would have gone over plain http to a
	// host that is not loopback; the request was not sent
	// ([ErrInsecureHTTP]).
	WithheldInsecureHTTP WithheldReason = "insecure_http"
)

// WithheldEvent describes a request that did not carry the token because
// of a rule of the [Transport].
type WithheldEvent struct {
	Reason WithheldReason // the rule that kept the token
	Method string         // the request's method
	Host   string         // the request's host (and port, if any)
}

// WithObserver adds an [Observer] of the Transport's events. It may be
// given more than once; each Observer sees every event. Default: none.
func WithObserver(o Observer) Option {
	return func(t *Transport) {
		if o != nil {
			t.observers = append(t.observers, o)
		}
	}
}

// observeWithheld reports that req goes (or fails) without the token.
func (t *Transport) observeWithheld(req *http.Request, reason WithheldReason) {
	if len(t.observers) == 0 {
		return
	}
	ev := WithheldEvent{Reason: reason, Method: req.Method, Host: req.URL.Host}
	for _, o := range t.observers {
		t.guard(req.Context(), func() { o.TokenWithheld(req.Context(), ev) })
	}
}

// observeRejected reports what became of req, whose answer (of status
// status) rejected the token, when nothing was replayed.
func (t *Transport) observeRejected(req *http.Request, status int, outcome ReplayOutcome) {
	t.emitRejected(req, RejectionEvent{Outcome: outcome, StatusCode: status})
}

// observeReplay reports the replay sent with fresh: its answer resp, or
// err, to req, whose first answer (of status status) rejected the token.
func (t *Transport) observeReplay(req *http.Request, status int, sent *http.Request, fresh *oauth2.Token, resp *http.Response, err error) {
	if len(t.observers) == 0 {
		return
	}
	ev := RejectionEvent{Outcome: ReplayFailed, StatusCode: status}
	if err == nil && resp != nil {
		ev.Outcome, ev.ReplayStatus = ReplayOK, resp.StatusCode
		if t.rejected(sent, resp, fresh) {
			ev.Outcome = ReplayRejectedAgain
		}
	}
	t.emitRejected(req, ev)
}

func (t *Transport) emitRejected(req *http.Request, ev RejectionEvent) {
	if len(t.observers) == 0 {
		return
	}
	ev.Method, ev.Host = req.Method, req.URL.Host
	for _, o := range t.observers {
		t.guard(req.Context(), func() { o.TokenRejected(req.Context(), ev) })
	}
}

// guard calls fn, which calls into an Observer, and logs its panic instead
// of letting it end the request.
func (t *Transport) guard(ctx context.Context, fn func()) {
	defer func() {
		if p := recover(); p != nil {
			t.log.LogAttrs(ctx, slog.LevelError, "transport: an Observer panicked", slog.String("panic", fmt.Sprint(p)))
		}
	}()
	fn()
}
