package refresher

import (
	"errors"
	"fmt"
	"time"

	"github.com/autorefresh/autorefresh/internal/wire"
)

// ErrReauthRequired reports that the session is over: the refresh token was
// rejected (invalid_grant, revoked, expired, reused) or there is none, and
// only a new login can produce a token. Test for it with [errors.Is]; it holds
// through the [*net/url.Error] that an [net/http.Client] wraps around it.
var ErrReauthRequired = wire.ErrReauthRequired

// ErrMisconfigured reports that the refresh cannot succeed until the
// client's configuration is fixed; logging in again does not help. The
// server refused the client (invalid_client, unauthorized_client,
// unsupported_grant_type, or a 401 that challenges the client's own
// credentials, such as WWW-Authenticate: Basic), or the request
// (invalid_request, invalid_scope), or there is no refresh endpoint at the
// URL (404, 405, a redirect), or the endpoint's settings cannot work. The
// error's message says what to check. Test for it with [errors.Is].
var ErrMisconfigured = wire.ErrMisconfigured

// ErrBlocked reports that something other than the refresh endpoint
// answered: an HTML or XML page with a 4xx status other than 401 (a
// firewall, a proxy, a gateway), or in place of the token (a login page).
// The session may be intact; the network path to the endpoint is not. Test
// for it with [errors.Is].
var ErrBlocked = wire.ErrBlocked

// ErrNoToken is returned when a Source has no token at all: none was given,
// the Store holds none, and no login callback is set. It wraps
// [ErrReauthRequired].
var ErrNoToken = fmt.Errorf("%w: no token (log in first)", ErrReauthRequired)

// RefreshError describes a failed refresh. It never holds a token value,
// nor a secret that the refresh request carried (the client secret, the
// endpoint's fields and header values, cookies): those are removed from
// everything taken from the answer before it is cut to length.
//
// [RefreshError.Kind] tells what the failure means; errors.Is(err,
// [ErrReauthRequired]), [ErrMisconfigured] and [ErrBlocked] test for one of
// them, and Temporary reports whether trying again later may succeed. When
// the server answered with an OAuth error (RFC 6749 §5.2), the error also
// unwraps to an [*oauth2.RetrieveError], as golang.org/x/oauth2 reports it:
//
//	var re *oauth2.RetrieveError
//	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" { ... }
type RefreshError struct {
	// StatusCode is the HTTP status of the refresh endpoint's answer, or 0
	// when no answer was received.
	StatusCode int
	// Code is the OAuth 2.0 error code (RFC 6749 §5.2), such as
	// "invalid_grant", when the server sent one.
	Code string
	// Description is the server's error_description (or message), if any,
	// redacted and at most 200 characters.
	Description string
	// RetryAfter is the delay the server asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Err is the cause. It wraps ErrReauthRequired when the session is
	// over, ErrMisconfigured or ErrBlocked when that is the case.
	Err error
}

// Error returns "refresher: refresh failed" followed by the status, the
// OAuth error code, the description and the cause; it never contains a
// token.
func (e *RefreshError) Error() string { return (*wire.Failure)(e).Error() }

// Unwrap returns the cause.
func (e *RefreshError) Unwrap() error { return e.Err }

// Is reports what the OAuth error code alone tells, whatever the HTTP
// status: invalid_grant is [ErrReauthRequired]; invalid_client,
// unauthorized_client and unsupported_grant_type are [ErrMisconfigured].
func (e *RefreshError) Is(target error) bool { return (*wire.Failure)(e).Is(target) }

// Temporary reports whether the failure is transient: a network error, a
// timeout, a 408, a 429 or a 5xx answer. A dead session, a misconfigured
// client and a blocked refresh are never temporary.
func (e *RefreshError) Temporary() bool { return (*wire.Failure)(e).Temporary() }

// FailureKind says what a failed refresh means for the caller.
type FailureKind int

const (
	// KindOther is a permanent failure of another kind, such as an answer
	// that holds no token or a Store that failed.
	KindOther FailureKind = iota
	// KindSessionOver: the refresh token was rejected; log in again
	// ([ErrReauthRequired]).
	KindSessionOver
	// KindMisconfigured: fix the client's configuration ([ErrMisconfigured]).
	KindMisconfigured
	// KindBlocked: something in front of the endpoint answered ([ErrBlocked]).
	KindBlocked
	// KindTransient: try again later ([RefreshError.Temporary]).
	KindTransient
)

// String returns the kind's name: "session over", "misconfigured", ...
func (k FailureKind) String() string {
	switch k {
	case KindSessionOver:
		return "session over"
	case KindMisconfigured:
		return "misconfigured"
	case KindBlocked:
		return "blocked"
	case KindTransient:
		return "transient"
	}
	return "other"
}

// Kind says what the failure means: the session is over, the client is
// misconfigured, the refresh was blocked, the failure is transient, or
// another permanent failure.
func (e *RefreshError) Kind() FailureKind {
	switch {
	case errors.Is(e, ErrReauthRequired):
		return KindSessionOver
	case errors.Is(e, ErrMisconfigured):
		return KindMisconfigured
	case errors.Is(e, ErrBlocked):
		return KindBlocked
	case e.Temporary():
		return KindTransient
	}
	return KindOther
}

// BodyTooLargeError reports a refresh answer whose body exceeds the limit
// (1 MiB by default); the rest of the body was not read.
type BodyTooLargeError = wire.BodyTooLargeError

// refreshError converts a failure of the wire layer into the exported type.
func refreshError(f *wire.Failure) *RefreshError { return (*RefreshError)(f) }

// sessionOver returns the RefreshError of a refresh that cannot succeed
// until the user logs in again, for the given reason.
func sessionOver(reason string) *RefreshError {
	return refreshError(wire.Fail(wire.SessionOver(reason)))
}

// asRefreshError returns err unchanged if it is or wraps a *RefreshError,
// and wraps it in one otherwise, so that every failure a Source reports can
// be inspected the same way.
func asRefreshError(err error) error {
	var re *RefreshError
	if errors.As(err, &re) {
		return err
	}
	return &RefreshError{Err: err}
}
