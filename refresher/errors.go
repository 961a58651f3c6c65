package refresher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrReauthRequired reports that the session is over: the refresh token was
// rejected (invalid_grant, revoked, expired, reused) or there is none, and
// only a new login can produce a token. Test for it with [errors.Is]; it holds
// through the [*net/url.Error] that an [net/http.Client] wraps around it.
var ErrReauthRequired = errors.New("refresher: re-authentication required")

// ErrNoToken is returned when a Source has no token at all: none was given,
// the Store holds none, and no login callback is set. It wraps
// [ErrReauthRequired].
var ErrNoToken = fmt.Errorf("%w: no token (log in first)", ErrReauthRequired)

// RefreshError describes a failed refresh. It never holds a token value.
//
// errors.Is(err, ErrReauthRequired) reports whether the session is over;
// Temporary reports whether trying again later may succeed.
type RefreshError struct {
	// StatusCode is the HTTP status of the refresh endpoint's answer, or 0
	// when no answer was received.
	StatusCode int
	// Code is the OAuth 2.0 error code (RFC 6749 §5.2), such as
	// "invalid_grant", when the server sent one.
	Code string
	// Description is the server's error_description, if any.
	Description string
	// RetryAfter is the delay the server asked for (Retry-After), if any.
	RetryAfter time.Duration
	// Err is the cause. It wraps ErrReauthRequired when the session is over.
	Err error
}

// Error returns a message naming the status, the OAuth error code, the
// description and the cause; it never contains a token.
func (e *RefreshError) Error() string {
	var b strings.Builder
	b.WriteString("refresher: refresh failed")
	if e.StatusCode != 0 {
		b.WriteString(": status ")
		b.WriteString(strconv.Itoa(e.StatusCode))
	}
	if e.Code != "" {
		b.WriteString(": ")
		b.WriteString(e.Code)
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(e.Description)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *RefreshError) Unwrap() error { return e.Err }

// Is reports whether target is ErrReauthRequired and the server answered
// invalid_grant, whatever the HTTP status.
func (e *RefreshError) Is(target error) bool {
	return target == ErrReauthRequired && e.Code == "invalid_grant"
}

// Temporary reports whether the failure is transient: a network error, a
// timeout, a 408, a 429 or a 5xx answer. A dead session is never temporary.
func (e *RefreshError) Temporary() bool {
	if errors.Is(e, ErrReauthRequired) {
		return false
	}
	switch {
	case e.StatusCode == 408, e.StatusCode == 429, e.StatusCode >= 500:
		return true
	case e.StatusCode != 0:
		return false
	}
	var ne net.Error
	return errors.As(e.Err, &ne) || errors.Is(e.Err, context.DeadlineExceeded)
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
