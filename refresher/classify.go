package refresher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// This file is the one place that decides what an answer of a refresh
// endpoint, or the failure to get one, means: a dead session
// ([ErrReauthRequired]), a transient failure worth trying again later, or a
// permanent failure of the endpoint itself; and which failed attempts the
// refresh call may safely repeat at once.

// reauthError is the cause of a [RefreshError] that ends the session for
// another reason than an invalid_grant code.
type reauthError struct{ reason string }

func (e *reauthError) Error() string { return "session over: " + e.reason }

// Unwrap returns ErrReauthRequired, so that errors.Is holds.
func (e *reauthError) Unwrap() error { return ErrReauthRequired }

// connError is the cause of a [RefreshError] for which no complete answer
// was received. It is a [net.Error], so that [RefreshError.Temporary] holds.
type connError struct{ err error }

func (e *connError) Error() string   { return e.err.Error() }
func (e *connError) Unwrap() error   { return e.err }
func (e *connError) Timeout() bool   { var ne net.Error; return errors.As(e.err, &ne) && ne.Timeout() }
func (e *connError) Temporary() bool { return true }

// BodyTooLargeError reports a refresh answer whose body exceeds the limit
// (1 MiB by default); the rest of the body was not read.
type BodyTooLargeError struct {
	StatusCode int   // the status of the answer
	Limit      int64 // the limit, in bytes
}

// Error names the status and the limit.
func (e *BodyTooLargeError) Error() string {
	return fmt.Sprintf("the body of the status %d answer exceeds %s; reading stopped there", e.StatusCode, byteSize(e.Limit))
}

// bodyReadError reports an answer whose body could not be read to its end.
type bodyReadError struct {
	status int
	err    error
}

func (e *bodyReadError) Error() string {
	return fmt.Sprintf("reading the body of the status %d answer: %v", e.status, e.err)
}

func (e *bodyReadError) Unwrap() error { return e.err }

// oauthCodes are the error codes of RFC 6749 §5.2.
var oauthCodes = map[string]bool{
	"invalid_request":        true,
	"invalid_client":         true,
	"invalid_grant":          true,
	"unauthorized_client":    true,
	"unsupported_grant_type": true,
	"invalid_scope":          true,
}

// classifyAnswer maps an answer of the refresh endpoint to an error, or
// returns nil when it reads as a success to be parsed: a 2xx status and no
// OAuth error code in the body.
//
// The rules:
//   - invalid_grant, whatever the status (and even with 200): the session is over;
//   - 429, 408 and 5xx: transient, with the server's Retry-After;
//   - 401 and 403: the session is over, whatever the body;
//   - 404 and 405: the endpoint is misconfigured (permanent, not a dead session);
//   - another 4xx with an RFC 6749 error code (invalid_request, invalid_client,
//     unsupported_grant_type, ...): permanent, the request itself is wrong;
//   - another 4xx without one (an API of its own, an HTML page): the session is over;
//   - 3xx (redirects are not followed) or a 2xx with another error code: permanent.
func classifyAnswer(status int, header http.Header, body []byte) *RefreshError {
	code, desc := errorFields(body)
	ok := status >= 200 && status < 300
	if ok && code == "" {
		return nil
	}
	e := &RefreshError{StatusCode: status, Code: code, Description: desc}
	if status == http.StatusTooManyRequests || status >= 500 {
		e.RetryAfter, _ = parseRetryAfter(header.Get("Retry-After"), time.Now())
	}
	switch {
	case code == "invalid_grant":
		// RefreshError.Is reports ErrReauthRequired.
	case status == http.StatusTooManyRequests:
		e.Err = errors.New("too many requests; try again later")
	case status >= 500:
		e.Err = errors.New("the server failed; try again later")
	case status == http.StatusRequestTimeout:
		e.Err = errors.New("the server timed out waiting for the request")
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.Err = &reauthError{"the refresh endpoint rejected the refresh token"}
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		e.Err = errors.New("no refresh endpoint there: check its URL and method")
	case status >= 400 && status < 500 && oauthCodes[code]:
		e.Err = errors.New("the server refused the request itself; check the client's configuration")
	case status >= 400 && status < 500:
		e.Err = &reauthError{"the refresh endpoint refused the refresh"}
	case status >= 300 && status < 400:
		e.Err = fmt.Errorf("unexpected redirect (%s) to %q; redirects of a refresh are not followed",
			statusText(status), redirectHost(header))
	case ok:
		e.Err = errors.New("the answer carries an error code despite its status")
	default:
		e.Err = fmt.Errorf("unexpected status %s", statusText(status))
	}
	return e
}

// classifyTransport maps the failure of an HTTP exchange that produced no
// usable answer. A body over the limit is a permanent failure of the endpoint
// unless its status was transient; every other failure is transient, because
// the request may or may not have been processed.
func classifyTransport(err error) *RefreshError {
	var re *RefreshError
	if errors.As(err, &re) {
		return re
	}
	var tl *BodyTooLargeError
	if errors.As(err, &tl) {
		e := classifyAnswer(tl.StatusCode, nil, nil)
		if e == nil || !e.Temporary() {
			e = &RefreshError{StatusCode: tl.StatusCode}
		}
		e.Err = tl
		return e
	}
	var br *bodyReadError
	if errors.As(err, &br) {
		return &RefreshError{Err: &connError{br}}
	}
	return &RefreshError{Err: &connError{err}}
}

// parseFailure reports a 2xx answer that holds no usable token.
func parseFailure(status int, format string, args ...any) *RefreshError {
	return &RefreshError{StatusCode: status, Err: fmt.Errorf(format, args...)}
}

// safeToRetry reports whether a failed attempt of a refresh call surely did
// not reach the server's refresh logic, so that sending it again cannot
// present a refresh token twice: the connection could not be established, or
// the server answered with a status that means "not processed" (408, 429,
// 5xx other than 501 and 505). A timeout or a connection reset after the
// request was written is never safe: the server may have rotated the token.
func safeToRetry(resp *http.Response, err error) bool {
	if err != nil {
		return isDialError(err)
	}
	switch s := resp.StatusCode; {
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests:
		return true
	case s == http.StatusNotImplemented, s == http.StatusHTTPVersionNotSupported:
		return false
	default:
		return s >= 500 && s < 600
	}
}

// isDialError reports whether err is the failure to open a connection
// (refused, unreachable, DNS, or through a proxy), which guarantees that
// nothing was sent to the server.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect")
}

// errorFields reads an OAuth error code and a description from a JSON body:
// "error" and "error_description" (RFC 6749 §5.2), else "message" (the
// habit of many JSON APIs). Anything else gives empty strings.
func errorFields(body []byte) (code, desc string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return "", ""
	}
	var v struct {
		Error       any `json:"error"`
		Description any `json:"error_description"`
		Message     any `json:"message"`
	}
	if json.Unmarshal(body, &v) != nil {
		return "", ""
	}
	if s, ok := v.Error.(string); ok && isCode(s) {
		code = s
	}
	if s, ok := v.Description.(string); ok {
		desc = s
	} else if s, ok := v.Message.(string); ok {
		desc = s
	}
	return code, cleanText(desc, 200)
}

// isCode reports whether s has the shape of an OAuth error code.
func isCode(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// cleanText makes s fit for an error message: printable, at most n runes.
func cleanText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return strings.TrimSpace(s)
}

// redact removes each secret from e's texts, so that a server echoing the
// refresh token in an error message does not leak it into logs.
func redact(e *RefreshError, secrets ...string) *RefreshError {
	for _, s := range secrets {
		if len(s) < 4 {
			continue
		}
		if strings.Contains(e.Description, s) {
			e.Description = strings.ReplaceAll(e.Description, s, "[redacted]")
		}
		if strings.Contains(e.Code, s) {
			e.Code = "[redacted]"
		}
	}
	return e
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(maxLifetime/time.Second) {
			n = int64(maxLifetime / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// mediaType returns the media type of a Content-Type value, lower-cased.
func mediaType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	}
	return mt
}

func statusText(status int) string {
	if t := http.StatusText(status); t != "" {
		return strconv.Itoa(status) + " " + t
	}
	return strconv.Itoa(status)
}

func redirectHost(h http.Header) string {
	loc := h.Get("Location")
	if i := strings.Index(loc, "://"); i >= 0 {
		loc = loc[i+3:]
	}
	if i := strings.IndexAny(loc, "/?#"); i >= 0 {
		loc = loc[:i]
	}
	if i := strings.LastIndexByte(loc, '@'); i >= 0 {
		loc = loc[i+1:]
	}
	return loc
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
