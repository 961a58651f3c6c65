package refresher

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/autorefresh/autorefresh/internal/wire"
)

// Defaults of [NewHTTPClient], used for every field of [ClientConfig] left
// at zero.
const (
	// DefaultRetryMax is how many times an attempt that surely did not
	// reach the server is repeated.
	DefaultRetryMax = wire.DefaultRetryMax
	// DefaultRetryWaitMin and DefaultRetryWaitMax bound the exponential
	// backoff between two attempts when the server gave no Retry-After.
	DefaultRetryWaitMin = wire.DefaultRetryWaitMin
	DefaultRetryWaitMax = wire.DefaultRetryWaitMax
	// DefaultMaxRetryAfter is the longest Retry-After waited for.
	DefaultMaxRetryAfter = wire.DefaultMaxRetryAfter
	// DefaultHTTPTimeout bounds one refresh call, retries and waits included.
	DefaultHTTPTimeout = wire.DefaultHTTPTimeout
	// DefaultMaxBodySize is the most of an answer's body that is read.
	DefaultMaxBodySize = wire.DefaultMaxBodySize
)

// ClientConfig configures the HTTP client of a refresh call, built by
// [NewHTTPClient]. The zero value is ready to use: every zero field takes the
// default given in its comment.
type ClientConfig struct {
	// Base sends each attempt. If nil, one transport shared by every
	// such client of the process is used, independent of
	// [http.DefaultTransport], honouring the proxy environment variables,
	// and keeping a bounded pool of connections alive: at most 32 per
	// host, open or idle (refreshes beyond that wait for one), closed
	// after 90 s idle; HTTP/2 over TLS.
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
// configured URL only). Right before each attempt is written, it confirms
// that the Source still holds the lock that entitles it to refresh (when its
// Store offers one); an attempt whose lock was lost is not sent.
//
// The answer's body is read completely before the client returns, so that
// its length can be checked; closing it is still the caller's duty.
func NewHTTPClient(cfg ClientConfig) *http.Client {
	return wire.NewHTTPClient(wire.ClientConfig(cfg))
}

// defaultClient is an endpoint's HTTP client when none is given: one from
// NewHTTPClient, built on first use.
type defaultClient struct {
	once   sync.Once // guards client
	client *http.Client
}

// get returns own if not nil, else the default client, logging to l.
func (d *defaultClient) get(own *http.Client, l *slog.Logger) *http.Client {
	if own != nil {
		return own
	}
	d.once.Do(func() { d.client = NewHTTPClient(ClientConfig{Logger: l}) })
	return d.client
}
