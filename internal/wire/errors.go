package wire

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// The conditions a caller branches on. Package refresher exports them under
// the same names.
var (
	ErrReauthRequired = errors.New("refresher: re-authentication required")
	ErrMisconfigured  = errors.New("refresher: the refresh client is misconfigured")
	ErrBlocked        = errors.New("refresher: the refresh was blocked before it reached the refresh endpoint")
)

// Failure is a failed refresh. Its fields are those of
// refresher.RefreshError, in the same order, so that one converts into the
// other (as x/oauth2 converts its internal RetrieveError).
type Failure struct {
	StatusCode  int
	Code        string
	Description string
	RetryAfter  time.Duration
	Err         error
}

// Fail returns the Failure of a refresh that got no answer to classify:
// a configuration error, a missing refresh token, a fence that failed.
func Fail(cause error) *Failure { return &Failure{Err: cause} }

// Error returns "refresher: refresh failed", then the status, the OAuth
// error code, the description and the cause, each when there is one.
func (f *Failure) Error() string {
	var b strings.Builder
	b.WriteString("refresher: refresh failed")
	if f.StatusCode != 0 {
		b.WriteString(": status ")
		b.WriteString(strconv.Itoa(f.StatusCode))
	}
	for _, s := range []string{f.Code, f.Description} {
		if s != "" {
			b.WriteString(": ")
			b.WriteString(s)
		}
	}
	if f.Err != nil {
		if s := f.Err.Error(); s != "" {
			b.WriteString(": ")
			b.WriteString(s)
		}
	}
	return b.String()
}

// Unwrap returns the cause.
func (f *Failure) Unwrap() error { return f.Err }

// Is reports the conditions that the OAuth error code alone tells, so that
// a Failure made by hand (&RefreshError{Code: "invalid_grant"}) is
// classified like one made from an answer.
func (f *Failure) Is(target error) bool {
	switch target {
	case ErrReauthRequired:
		return f.Code == "invalid_grant"
	case ErrMisconfigured:
		return clientCodes[f.Code] != ""
	}
	return false
}

// Temporary reports whether trying again later may succeed: a network
// error, a timeout, a 408, a 429 or a 5xx answer. A dead session, a
// misconfigured client and a blocked refresh are never temporary.
func (f *Failure) Temporary() bool {
	if errors.Is(f, ErrReauthRequired) || errors.Is(f, ErrMisconfigured) || errors.Is(f, ErrBlocked) {
		return false
	}
	switch {
	case f.StatusCode == 408, f.StatusCode == 429, f.StatusCode >= 500:
		return true
	case f.StatusCode != 0:
		return false
	}
	var ne net.Error
	return errors.As(f.Err, &ne) || errors.Is(f.Err, context.DeadlineExceeded)
}

// cause is the Err of a Failure that this package classified: a message
// saying what to check, the condition it means, and, when the server
// answered with an OAuth error, that answer as x/oauth2 reports it.
type cause struct {
	msg   string
	kind  error                 // ErrReauthRequired, ErrMisconfigured, ErrBlocked or nil
	oauth *oauth2.RetrieveError // nil unless the answer had an "error" code
}

func (c *cause) Error() string { return c.msg }

func (c *cause) Unwrap() []error {
	errs := make([]error, 0, 2)
	if c.kind != nil {
		errs = append(errs, c.kind)
	}
	if c.oauth != nil {
		errs = append(errs, c.oauth)
	}
	return errs
}

// newCause is the one place where the message of a classified failure is
// spelled: "session over: ...", "client misconfigured: ...", "blocked:
// ...". An empty reason adds no text (the OAuth error code says it all).
func newCause(kind error, oauth *oauth2.RetrieveError, reason string) *cause {
	prefix := ""
	switch kind {
	case ErrReauthRequired:
		prefix = "session over"
	case ErrMisconfigured:
		prefix = "client misconfigured"
	case ErrBlocked:
		prefix = "blocked"
	}
	msg := reason
	if prefix != "" && reason != "" {
		msg = prefix + ": " + reason
	}
	return &cause{msg: msg, kind: kind, oauth: oauth}
}

// SessionOver returns the cause of a refresh that cannot succeed until the
// user logs in again, for the given reason ("there is no refresh token").
func SessionOver(reason string) error { return newCause(ErrReauthRequired, nil, reason) }

// Misconfigured returns the cause of a refresh that cannot succeed until
// the client's configuration is fixed; reason says what to check.
func Misconfigured(reason string) error { return newCause(ErrMisconfigured, nil, reason) }

// connError is the cause of a Failure for which no complete answer was
// received. It is a [net.Error], so that Temporary holds. Its message is
// the underlying one, redacted and bounded: net/http quotes a malformed
// answer in its errors.
type connError struct {
	err error
	msg string
}

func (e *connError) Error() string   { return e.msg }
func (e *connError) Unwrap() error   { return e.err }
func (e *connError) Timeout() bool   { var ne net.Error; return errors.As(e.err, &ne) && ne.Timeout() }
func (e *connError) Temporary() bool { return true }

// fenceError marks the error of a fence check, which aborted an attempt
// before it was written.
type fenceError struct{ err error }

func (e *fenceError) Error() string {
	return "not sent, the lock could not be confirmed: " + e.err.Error()
}
func (e *fenceError) Unwrap() error { return e.err }
