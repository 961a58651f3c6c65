package refresher

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Defaults of [NewHTTPClient], used for every field of [ClientConfig] left
// at zero.
const (
	// DefaultRetryMax is how many times an attempt that surely did not
	// reach the server is repeated.
	DefaultRetryMax = 2
	// DefaultRetryWaitMin and DefaultRetryWaitMax bound the exponential
	// backoff between two attempts when the server gave no Retry-After.
	DefaultRetryWaitMin = 250 * time.Millisecond
	DefaultRetryWaitMax = 2 * time.Second
	// DefaultMaxRetryAfter is the longest Retry-After waited for.
	DefaultMaxRetryAfter = 30 * time.Second
	// DefaultHTTPTimeout bounds one refresh call, retries and waits included.
	DefaultHTTPTimeout = 60 * time.Second
	// DefaultMaxBodySize is the most of an answer's body that is read.
	DefaultMaxBodySize = 1 << 20
)

// maxRequestBody bounds the body of a refresh request, which the endpoints
// of this package build themselves.
const maxRequestBody = 1 << 20

// ClientConfig configures the HTTP client of a refresh call, built by
// [NewHTTPClient]. The zero value is ready to use: every zero field takes the
// default given in its comment.
type ClientConfig struct {
	// Base sends each attempt. If nil, a transport of its own is used,
	// independent of [http.DefaultTransport], honouring the proxy
	// environment variables and opening a new connection for each refresh
	// (refreshes are rare; a fresh connection tells a request that was
	// surely not sent from one that may have been processed).
	//
	// Base must not be a transport that adds tokens itself, such as one
	// from this module's transport package: a refresh call must never
	// wait for a refresh.
	Base http.RoundTripper

	// Jar, if not nil, supplies cookies to the refresh request and keeps
	// the cookies of its answer, for APIs that keep the session in cookies.
	Jar http.CookieJar

	// RetryMax is how many times an attempt that surely did not reach the
	// server is repeated: a failure to connect, or an answer of 408, 429 or
	// 5xx (but 501 and 505). Zero means [DefaultRetryMax]; a negative
	// value disables retries. An attempt that may have been processed (a
	// timeout or a reset after the request was written, a truncated
	// answer) is never repeated: the server may have rotated the refresh
	// token already.
	RetryMax int

	// RetryWaitMin and RetryWaitMax bound the exponential backoff between
	// attempts when the server sent no Retry-After. Zero means
	// [DefaultRetryWaitMin] and [DefaultRetryWaitMax].
	RetryWaitMin, RetryWaitMax time.Duration

	// MaxRetryAfter is the longest Retry-After that is waited for before
	// the next attempt. An answer asking for a longer wait, or for one
	// that would end after the call's deadline, is returned at once (as a
	// transient [*RefreshError] with RetryAfter set). Zero means
	// [DefaultMaxRetryAfter].
	MaxRetryAfter time.Duration

	// Timeout bounds the whole call: every attempt, every wait and the
	// reading of the answer. The request's context may end it sooner.
	// Zero means [DefaultHTTPTimeout].
	Timeout time.Duration

	// MaxBodySize is the most of an answer's body that is read; a longer
	// body fails the call with a [*BodyTooLargeError]. Zero means
	// [DefaultMaxBodySize] (1 MiB).
	MaxBodySize int64

	// Logger receives a line for each attempt and retry. If nil, nothing
	// is logged. Lines name the method and the URL, never a token.
	Logger *slog.Logger
}

// NewHTTPClient returns an [http.Client] for refresh calls, built on
// go-retryablehttp with a retry policy fit for rotating refresh tokens: only
// an attempt that surely did not reach the server is repeated (see
// [ClientConfig.RetryMax]), Retry-After is honoured up to a cap, the whole
// call is bounded in time, answers are read at most [ClientConfig.MaxBodySize]
// bytes, and redirects are not followed (a refresh token is sent to the
// configured URL only).
//
// The answer's body is read completely before the client returns, so that
// its length can be checked; closing it is still the caller's duty.
func NewHTTPClient(cfg ClientConfig) *http.Client {
	if cfg.RetryMax == 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	cfg.RetryMax = max(cfg.RetryMax, 0)
	if cfg.RetryWaitMin <= 0 {
		cfg.RetryWaitMin = DefaultRetryWaitMin
	}
	if cfg.RetryWaitMax <= 0 {
		cfg.RetryWaitMax = DefaultRetryWaitMax
	}
	cfg.RetryWaitMax = max(cfg.RetryWaitMax, cfg.RetryWaitMin)
	if cfg.MaxRetryAfter <= 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = DefaultMaxBodySize
	}
	base := cfg.Base
	if base == nil {
		base = newBaseTransport()
	}
	rt := &retryTransport{cfg: cfg}
	rt.client = &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport:     &bufferTransport{base: base, limit: cfg.MaxBodySize},
			CheckRedirect: noRedirect,
		},
		RetryWaitMin: cfg.RetryWaitMin,
		RetryWaitMax: cfg.RetryWaitMax,
		RetryMax:     cfg.RetryMax,
		CheckRetry:   rt.checkRetry,
		Backoff:      rt.backoff,
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	if cfg.Logger != nil {
		rt.client.Logger = leveledLogger{cfg.Logger}
	}
	return &http.Client{Transport: rt, Jar: cfg.Jar, CheckRedirect: noRedirect}
}

// newBaseTransport returns the default transport of refresh calls.
func newBaseTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// retryTransport runs a request through the retrying client.
type retryTransport struct {
	cfg    ClientConfig
	client *retryablehttp.Client
}

// RoundTrip sends req, retrying what is safe to retry. It does not modify
// req and always closes its body.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(req.Body, maxRequestBody+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		if len(b) > maxRequestBody {
			return nil, errors.New("refresher: refresh request body too large")
		}
		body = b
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.cfg.Timeout)
	defer cancel() // the answer's body is already read by bufferTransport
	r2 := req.Clone(ctx)
	r2.Body, r2.GetBody, r2.ContentLength = http.NoBody, nil, 0
	rreq := &retryablehttp.Request{Request: r2}
	if body != nil {
		if err := rreq.SetBody(body); err != nil {
			return nil, err
		}
	}
	resp, err := t.client.Do(rreq)
	if err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		var ue *url.Error
		if errors.As(err, &ue) && ue == err {
			err = ue.Err // the caller's http.Client wraps it again
		}
		return nil, err
	}
	return resp, nil
}

// checkRetry is the retryablehttp.CheckRetry of a refresh call.
func (t *retryTransport) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil || !safeToRetry(resp, err) {
		return false, nil
	}
	wait := t.cfg.RetryWaitMax
	if resp != nil {
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			if ra > t.cfg.MaxRetryAfter {
				return false, nil
			}
			wait = ra
		}
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
		return false, nil
	}
	return true, nil
}

// backoff is the retryablehttp.Backoff of a refresh call: the server's
// Retry-After (checkRetry made sure it is under the cap), else exponential.
func (t *retryTransport) backoff(lo, hi time.Duration, attempt int, resp *http.Response) time.Duration {
	if resp != nil {
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(ra, t.cfg.MaxRetryAfter)
		}
	}
	d := float64(lo) * math.Pow(2, float64(attempt))
	if d > float64(hi) {
		return hi
	}
	return time.Duration(d)
}

// bufferTransport reads each answer's body completely, up to a limit, so
// that a body too long fails clearly and a body cut short is known before
// the retry policy sees the answer.
type bufferTransport struct {
	base  http.RoundTripper
	limit int64
}

func (t *bufferTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c, _ := req.Context().Value(captureKey{}).(*capture)
	if c != nil {
		c.reset()
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := readBody(resp.Body, resp.StatusCode, t.limit)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	if c != nil {
		c.set(resp.StatusCode, resp.Header, body)
	}
	return resp, nil
}

// readBody reads and closes body, failing with a *BodyTooLargeError past
// limit bytes.
func readBody(body io.ReadCloser, status int, limit int64) ([]byte, error) {
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if int64(len(b)) > limit {
		return nil, &BodyTooLargeError{StatusCode: status, Limit: limit}
	}
	if err != nil {
		return nil, &bodyReadError{status: status, err: err}
	}
	return b, nil
}

// capture keeps the last answer seen by a bufferTransport, for a caller
// whose own library (golang.org/x/oauth2) does not expose it on success.
type capture struct {
	ok     bool
	status int
	header http.Header
	body   []byte
}

type captureKey struct{}

func withCapture(ctx context.Context, c *capture) context.Context {
	return context.WithValue(ctx, captureKey{}, c)
}

func (c *capture) reset() { *c = capture{} }

func (c *capture) set(status int, h http.Header, body []byte) {
	*c = capture{ok: true, status: status, header: h.Clone(), body: body}
}

// leveledLogger adapts a *slog.Logger to retryablehttp.LeveledLogger.
type leveledLogger struct{ l *slog.Logger }

func (l leveledLogger) Error(msg string, kv ...any) { l.l.Warn("refresher: http: "+msg, kv...) }
func (l leveledLogger) Info(msg string, kv ...any)  { l.l.Info("refresher: http: "+msg, kv...) }
func (l leveledLogger) Debug(msg string, kv ...any) { l.l.Debug("refresher: http: "+msg, kv...) }
func (l leveledLogger) Warn(msg string, kv ...any)  { l.l.Warn("refresher: http: "+msg, kv...) }

// checkURL reports a refresh URL that cannot work, so that a
// misconfiguration is a permanent error rather than a transient one.
func checkURL(u string) error {
	p, err := url.Parse(u)
	switch {
	case err != nil:
		return errors.New("is not a valid URL")
	case p.Scheme != "http" && p.Scheme != "https":
		return errors.New("is not an http or https URL")
	case p.Host == "":
		return errors.New("has no host")
	}
	return nil
}

// logURL returns u without user information and query, for a log line.
func logURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(invalid URL)"
	}
	p.User, p.RawQuery, p.Fragment = nil, "", ""
	return p.String()
}
