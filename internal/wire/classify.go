package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/autorefresh/autorefresh/internal/wire/challenge"
	"golang.org/x/oauth2"
)

// This file is the one place that decides what an answer of a refresh
// endpoint, or the failure to get one, means:
//
//   - the refresh token was rejected: the session is over ([ErrReauthRequired]);
//   - the client is misconfigured ([ErrMisconfigured]): its credentials, its
//     grant, its URL; a new login does not help, a fix of the configuration does;
//   - the refresh was blocked ([ErrBlocked]): something in front of the
//     endpoint (a firewall, a proxy, a login page) answered instead of it;
//   - a transient failure worth trying again later;
//   - a permanent failure of another kind (an answer that holds no token);
//
// and which failed attempts the refresh call may safely repeat at once.

// clientCodes are the RFC 6749 §5.2 codes that blame the client rather than
// the refresh token, with what to check.
var clientCodes = map[string]string{
	"invalid_client":         "the server did not accept the client's authentication; check the client ID and secret and how they are sent (AuthStyle)",
	"unauthorized_client":    "the client may not use the refresh_token grant; check its registration at the authorization server",
	"unsupported_grant_type": "the server does not take the refresh_token grant at this URL; check the token URL",
}

// requestCodes are the other RFC 6749 §5.2 codes: the request itself is
// wrong, which the client's configuration decides.
var requestCodes = map[string]string{
	"invalid_request": "the server refused the request itself; check the endpoint's fields, headers and URL",
	"invalid_scope":   "the server refused the scope; check the scopes the client asks for",
}

// Classify maps an answer of the refresh endpoint to a Failure, or returns
// nil when it reads as a success to be parsed: a 2xx status and no OAuth
// error code in the body. Every text it takes from the answer is redacted
// with secrets before it is cut to length.
//
// The rules, in order:
//   - invalid_grant, whatever the status (and even with 200): session over;
//   - invalid_client, unauthorized_client, unsupported_grant_type, whatever
//     the status: misconfigured;
//   - 408, 429 and 5xx: transient, with the server's Retry-After;
//   - a 401 whose WWW-Authenticate challenges only other schemes than Bearer
//     (Basic, Digest): the server asks for the client's own credentials,
//     misconfigured;
//   - invalid_request and invalid_scope with a 4xx: misconfigured;
//   - 404 and 405: misconfigured (no refresh endpoint at that URL);
//   - 3xx (redirects are not followed): misconfigured (use the final URL);
//   - another 4xx but 401 whose body is an HTML or XML page: blocked, the
//     page comes from something in front of the endpoint;
//   - another 4xx: session over. That includes a 401 of any body (HTML too):
//     the endpoint's own verdict on the credential it was given, the refresh
//     token, as APIs of their own send it (often as "res.status(401).send"
//     HTML); and a 403 or 400 with a JSON or text body, the API's own answer;
//   - a 2xx with another error code, or another status: permanent.
func Classify(status int, header http.Header, body []byte, secrets *Secrets) *Failure {
	code, desc := errorFields(body, secrets)
	ok := status >= 200 && status < 300
	if ok && code == "" {
		return nil
	}
	f := &Failure{StatusCode: status, Code: code, Description: desc}
	var oauth *oauth2.RetrieveError
	if code != "" {
		oauth = retrieveError(status, header, body, code, desc, secrets)
	}
	if status == http.StatusTooManyRequests || status >= 500 {
		f.RetryAfter, _ = ParseRetryAfter(header.Get("Retry-After"), time.Now())
	}
	var kind error
	var reason string
	switch {
	case code == "invalid_grant":
		kind = ErrReauthRequired
	case clientCodes[code] != "":
		kind, reason = ErrMisconfigured, clientCodes[code]
	case status == http.StatusTooManyRequests:
		reason = "too many requests; try again later"
	case status >= 500 && status < 600:
		reason = "the server failed; try again later"
	case status == http.StatusRequestTimeout:
		reason = "the server timed out waiting for the request"
	case status == http.StatusUnauthorized && challenge.OtherSchemesOnly(header, "Bearer"):
		kind, reason = ErrMisconfigured, "the server asks for the client's own credentials (WWW-Authenticate); check the client ID and secret, or the endpoint's Authorization header"
	case status >= 400 && status < 500 && requestCodes[code] != "":
		kind, reason = ErrMisconfigured, requestCodes[code]
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		kind, reason = ErrMisconfigured, "no refresh endpoint there; check its URL and method"
	case status >= 300 && status < 400:
		kind, reason = ErrMisconfigured, fmt.Sprintf("the refresh URL redirects (%s) to %q; redirects of a refresh are not followed, configure the final URL",
			statusText(status), secrets.Quote(redirectHost(header), 80))
	case status >= 400 && status < 500 && status != http.StatusUnauthorized && isMarkup(header, body):
		kind, reason = ErrBlocked, fmt.Sprintf("the status %d answer is an %s page, not the refresh endpoint's own answer; check what stands in front of it (a firewall, a proxy, a login page)",
			status, markupName(header, body))
	case status >= 400 && status < 500:
		kind, reason = ErrReauthRequired, "the refresh endpoint rejected the refresh token"
	case ok:
		reason = "the answer carries an error code despite its status"
	default:
		reason = fmt.Sprintf("unexpected status %s", statusText(status))
	}
	f.Err = newCause(kind, oauth, reason)
	return f
}

// retrieveError returns the answer as golang.org/x/oauth2 reports an OAuth
// error, so that code written for x/oauth2 (errors.As and ErrorCode) keeps
// working. Its body is redacted; its Response has no Request (which holds
// the client's credentials) and no Body (already read).
func retrieveError(status int, header http.Header, body []byte, code, desc string, secrets *Secrets) *oauth2.RetrieveError {
	var uri string
	var v struct {
		URI any `json:"error_uri"`
	}
	if json.Unmarshal(body, &v) == nil {
		if s, ok := v.URI.(string); ok {
			uri = secrets.Quote(s, 200)
		}
	}
	return &oauth2.RetrieveError{
		Response: &http.Response{
			Status:     statusText(status),
			StatusCode: status,
			Header:     header.Clone(),
			Body:       http.NoBody,
		},
		Body:             secrets.RedactBytes(bytes.Clone(body)),
		ErrorCode:        code,
		ErrorDescription: desc,
		ErrorURI:         uri,
	}
}

// classifyTransport maps the failure of an HTTP exchange that produced no
// usable answer. A fence that failed is reported as it is; a body over the
// limit is a permanent failure of the endpoint unless its status was
// transient; every other failure is transient, because the request may or
// may not have been processed.
func classifyTransport(err error, secrets *Secrets) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	var fe *fenceError
	if errors.As(err, &fe) {
		return &Failure{Err: fe}
	}
	var tl *BodyTooLargeError
	if errors.As(err, &tl) {
		f := Classify(tl.StatusCode, http.Header{}, nil, secrets)
		if f == nil || !f.Temporary() {
			f = &Failure{StatusCode: tl.StatusCode}
		}
		f.Err = tl
		return f
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// Its message names the URL, whose query may hold a key.
		err = &url.Error{Op: ue.Op, URL: logURL(ue.URL), Err: ue.Err}
	}
	return &Failure{Err: &connError{err: err, msg: secrets.Quote(err.Error(), 300)}}
}

// SafeToRetry reports whether a failed attempt of a refresh call surely did
// not reach the server's refresh logic, so that sending it again cannot
// present a refresh token twice: the connection could not be established, or
// the server answered with a status that means "not processed" (408, 429,
// 5xx other than 501 and 505). A timeout or a connection reset after the
// request was written is never safe: the server may have rotated the token.
func SafeToRetry(resp *http.Response, err error) bool {
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
// habit of many JSON APIs). Anything else gives empty strings. Both are
// redacted, and the description cut to length after that.
func errorFields(body []byte, secrets *Secrets) (code, desc string) {
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
		if secrets.Redact(code) != code {
			code = redacted
		}
	}
	if s, ok := v.Description.(string); ok {
		desc = s
	} else if s, ok := v.Message.(string); ok {
		desc = s
	}
	return code, secrets.Quote(desc, 200)
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

// isMarkup reports whether an answer is an HTML or XML page: by its
// Content-Type, or by its first byte when it has none that says otherwise.
func isMarkup(header http.Header, body []byte) bool {
	return markupName(header, body) != ""
}

// markupName returns "HTML" or "XML" for a page, "" for anything else.
func markupName(header http.Header, body []byte) string {
	mt := mediaType(header.Get("Content-Type"))
	switch {
	case mt == "text/html" || mt == "application/xhtml+xml":
		return "HTML"
	case mt == "text/xml" || mt == "application/xml" || strings.HasSuffix(mt, "+xml"):
		return "XML"
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return ""
	}
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '<' {
		return "HTML"
	}
	return ""
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(MaxLifetime/time.Second) {
			n = int64(MaxLifetime / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// mediaType returns the media type of a Content-Type value, lower-cased.
// The result may be long: quote it only through Secrets.Quote.
func mediaType(ct string) string {
	if len(ct) > 1024 {
		ct = ct[:1024]
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		before, _, _ := strings.Cut(ct, ";")
		return strings.ToLower(strings.TrimSpace(before))
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

// logURL returns u without user information and query, for a log line or
// an error message.
func logURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(invalid URL)"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}

// LogURL is logURL, for the endpoints' log lines.
func LogURL(u string) string { return logURL(u) }

// CheckURL reports a refresh URL that cannot work, as a misconfiguration.
// what names the setting ("JSONEndpoint.URL").
func CheckURL(what, u string) error {
	if u == "" {
		return Misconfigured(what + " is empty; set the refresh URL")
	}
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return Misconfigured(what + " is not a valid URL")
	case p.Scheme != "http" && p.Scheme != "https":
		return Misconfigured(what + " is not an http or https URL")
	case p.Host == "":
		return Misconfigured(what + " has no host")
	}
	return nil
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
