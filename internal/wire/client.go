package wire

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/autorefresh/autorefresh/internal/fence"
	"github.com/hashicorp/go-retryablehttp"
)

// Defaults of NewHTTPClient; package refresher documents them.
const (
	DefaultRetryMax      = 2
	DefaultRetryWaitMin  = 250 * time.Millisecond
	DefaultRetryWaitMax  = 2 * time.Second
	DefaultMaxRetryAfter = 30 * time.Second
	DefaultHTTPTimeout   = 60 * time.Second
	DefaultMaxBodySize   = 1 << 20
)

// maxRequestBody bounds the body of a refresh request, which the endpoints
// build themselves.
const maxRequestBody = 1 << 20

// ClientConfig is refresher.ClientConfig, field for field, so that one
// converts into the other; package refresher documents the fields.
type ClientConfig struct {
	Base                       http.RoundTripper
	Jar                        http.CookieJar
	RetryMax                   int
	RetryWaitMin, RetryWaitMax time.Duration
	MaxRetryAfter              time.Duration
	Timeout                    time.Duration
	MaxBodySize                int64
	Logger                     *slog.Logger
}

// NewHTTPClient returns the refresh client that refresher.NewHTTPClient
// documents: go-retryablehttp with a retry policy fit for rotating refresh
// tokens, a fence check right before each attempt is written, answers read
// at most cfg.MaxBodySize bytes, and no redirects followed.
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
		base = sharedBaseTransport()
	}
	rt := &retryTransport{cfg: cfg}
	rt.client = &retryablehttp.Client{
		HTTPClient: &http.Client{
			Transport:     &attemptTransport{base: base, limit: cfg.MaxBodySize},
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

// Bounds of the default transport's connections to one host.
const (
	maxConnsPerHost = 32
	idleConnTimeout = 90 * time.Second
)

// sharedBaseTransport is the transport of every refresh client without a
// Base: one bounded pool per process, however many endpoints and sessions
// there are, so that a storm of refreshes reuses a few connections instead
// of opening (and leaving in TIME_WAIT) one per session.
var sharedBaseTransport = sync.OnceValue(newBaseTransport)

// newBaseTransport returns the default transport of refresh calls: its own
// pool of kept-alive connections, independent of [http.DefaultTransport].
// At most maxConnsPerHost connections to a host are open at once, and all
// of them may stay idle, so that a connection, once opened, is reused
// rather than closed while refreshes queue for it. A request written to a
// pooled connection that the server had closed fails as a transient error
// and is not retried (it may have been written); net/http itself retries
// it only when nothing was written.
func newBaseTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		ForceAttemptHTTP2:      true,
		MaxConnsPerHost:        maxConnsPerHost,
		MaxIdleConns:           4 * maxConnsPerHost,
		MaxIdleConnsPerHost:    maxConnsPerHost,
		IdleConnTimeout:        idleConnTimeout,
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
			return nil, errors.New("the refresh request's body is over 1 MiB")
		}
		body = b
	}
	ctx, cancel := context.WithTimeout(req.Context(), t.cfg.Timeout)
	defer cancel() // the answer's body is already read by attemptTransport
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
		if resp != nil && resp.Body != nil {
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
	if ctx.Err() != nil || !SafeToRetry(resp, err) {
		return false, nil
	}
	wait := t.cfg.RetryWaitMax
	if resp != nil {
		if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
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
		if ra, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			return min(ra, t.cfg.MaxRetryAfter)
		}
	}
	d := float64(lo) * math.Pow(2, float64(attempt))
	if d > float64(hi) {
		return hi
	}
	return time.Duration(d)
}

// attemptTransport sends one attempt of a refresh call: it runs the fence
// check right before the request is written (an attempt whose lock was lost
// is not sent), adds a fresh DPoP proof when the request's context holds a
// Prover (see Exchange) and shows it the answer, then reads the answer's
// body completely, up to a limit, so that a body too long fails clearly and
// a body cut short is known before the retry policy sees the answer.
type attemptTransport struct {
	base  http.RoundTripper
	limit int64 // 0: the body is not read here
}

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := fence.Check(req.Context()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &fenceError{err}
	}
	p := proverFrom(req.Context())
	if p != nil {
		r, err := withProof(req, p)
		if err != nil {
			if req.Body != nil {
				req.Body.Close()
			}
			return nil, err
		}
		req = r
	}
	resp, err := t.base.RoundTrip(req)
	if p != nil {
		observe(p, req, resp)
	}
	if err != nil || t.limit == 0 {
		return resp, err
	}
	body, err := ReadBody(resp.Body, resp.StatusCode, t.limit)
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// fenced returns c, or a copy of it whose attempts run the fence check,
// when c is not a client from NewHTTPClient (which runs it on each retry).
func fenced(c *http.Client) *http.Client {
	if _, ok := c.Transport.(*retryTransport); ok {
		return c
	}
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	c2 := *c
	c2.Transport = &attemptTransport{base: base}
	return &c2
}

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

// ReadBody reads and closes body, failing with a *BodyTooLargeError past
// limit bytes. A nil body (a RoundTripper may return one) reads as empty.
func ReadBody(body io.ReadCloser, status int, limit int64) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
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

// leveledLogger adapts a *slog.Logger to retryablehttp.LeveledLogger.
type leveledLogger struct{ l *slog.Logger }

func (l leveledLogger) Error(msg string, kv ...any) { l.l.Warn("refresher: http: "+msg, kv...) }
func (l leveledLogger) Info(msg string, kv ...any)  { l.l.Info("refresher: http: "+msg, kv...) }
func (l leveledLogger) Debug(msg string, kv ...any) { l.l.Debug("refresher: http: "+msg, kv...) }
func (l leveledLogger) Warn(msg string, kv ...any)  { l.l.Warn("refresher: http: "+msg, kv...) }
