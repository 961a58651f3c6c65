package refresher_test

import (
	"context"
	"errors"
	"github.com/autorefresh/autorefresh/internal/safebuf"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/internal/fence"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// countingRT counts the attempts made through it; the first failDials
// attempts fail as a refused connection would, before anything is sent.
type countingRT struct {
	base      http.RoundTripper
	failDials int64
	attempts  atomic.Int64
}

func (c *countingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if n := c.attempts.Add(1); n <= c.failDials {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	return c.base.RoundTrip(req)
}

func newCountingRT(failDials int64) *countingRT {
	return &countingRT{base: &http.Transport{DisableKeepAlives: true}, failDials: failDials}
}

// fastRetries is a client configuration whose backoff does not slow tests.
func fastRetries(base http.RoundTripper) refresher.ClientConfig {
	return refresher.ClientConfig{Base: base, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond}
}

func TestRefreshCallRetriesDialErrors(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1"}`))
	rt := newCountingRT(2)
	ep := &refresher.JSONEndpoint{URL: srv.URL, HTTPClient: refresher.NewHTTPClient(fastRetries(rt))}
	tok, err := ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, int64(3), rt.attempts.Load(), "attempts")
	assert.Equal(t, int64(1), srv.calls.Load(), "calls that reached the server")
}

func TestRefreshCallGivesUpOnDialErrorsAfterRetryMax(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused

	rt := newCountingRT(0)
	ep := &refresher.JSONEndpoint{URL: "http://" + addr + "/refresh", HTTPClient: refresher.NewHTTPClient(fastRetries(rt))}
	tok, err := ep.Refresh(context.Background(), staleToken())
	assert.Equal(t, gotRetry, outcomeOf(t, tok, err), "error: %v", err)
	assert.Equal(t, int64(1+refresher.DefaultRetryMax), rt.attempts.Load(), "attempts")
	assert.Contains(t, err.Error(), "connection refused")
}

func TestRetriesCanBeDisabled(t *testing.T) {
	srv := newAnswerServer(t, answer(503, "text/plain", "busy"))
	cfg := fastRetries(nil)
	cfg.RetryMax = -1
	ep := &refresher.JSONEndpoint{URL: srv.URL, HTTPClient: refresher.NewHTTPClient(cfg)}
	tok, err := ep.Refresh(context.Background(), staleToken())
	assert.Equal(t, gotRetry, outcomeOf(t, tok, err))
	assert.Equal(t, int64(1), srv.calls.Load())
}

func TestRefreshCallIsNotRetriedAfterTimeout(t *testing.T) {
	srv := newAnswerServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done() // never answers; ends when the client hangs up
	})
	cfg := fastRetries(nil)
	cfg.Timeout = 200 * time.Millisecond
	ep := &refresher.JSONEndpoint{URL: srv.URL, HTTPClient: refresher.NewHTTPClient(cfg)}
	tok, err := ep.Refresh(context.Background(), staleToken())
	assert.Equal(t, gotRetry, outcomeOf(t, tok, err), "error: %v", err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, int64(1), srv.calls.Load(), "calls that reached the server")
}

func TestCallerContextEndsTheRefreshCall(t *testing.T) {
	started := make(chan struct{})
	srv := newAnswerServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server notices a hang-up
		close(started)
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := (&refresher.JSONEndpoint{URL: srv.URL}).Refresh(ctx, staleToken())
	assert.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.Is(err, refresher.ErrReauthRequired))
	assert.Equal(t, int64(1), srv.calls.Load())
}

func TestRetryAfterBeyondTheDeadlineIsNotWaited(t *testing.T) {
	srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		answer(503, "text/plain", "busy")(n, w, r)
	})
	cfg := fastRetries(nil)
	cfg.Timeout = time.Second
	ep := &refresher.JSONEndpoint{URL: srv.URL, HTTPClient: refresher.NewHTTPClient(cfg)}
	start := time.Now()
	tok, err := ep.Refresh(context.Background(), staleToken())
	assert.Equal(t, gotRetry, outcomeOf(t, tok, err))
	assert.Less(t, time.Since(start), time.Second, "the wait was started")
	assert.Equal(t, int64(1), srv.calls.Load())
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 5*time.Second, re.RetryAfter)
}

func TestRetryAfterIsCappedByMaxRetryAfter(t *testing.T) {
	srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "2")
		answer(429, "text/plain", "slow down")(n, w, r)
	})
	cfg := fastRetries(nil)
	cfg.MaxRetryAfter = time.Second
	ep := &refresher.JSONEndpoint{URL: srv.URL, HTTPClient: refresher.NewHTTPClient(cfg)}
	tok, err := ep.Refresh(context.Background(), staleToken())
	assert.Equal(t, gotRetry, outcomeOf(t, tok, err))
	assert.Equal(t, int64(1), srv.calls.Load(), "a Retry-After over the cap is not waited for")
}

func TestRetryAfterAsHTTPDateIsHonoured(t *testing.T) {
	srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", time.Now().Add(time.Second).UTC().Format(http.TimeFormat))
			answer(503, "text/plain", "busy")(n, w, r)
			return
		}
		jsonAnswer(200, `{"access_token":"SECRET-A1"}`)(n, w, r)
	})
	tok, err := (&refresher.JSONEndpoint{URL: srv.URL}).Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, int64(2), srv.calls.Load())
}

func TestNotImplementedIsNotRetried(t *testing.T) {
	srv := newAnswerServer(t, answer(501, "text/plain", "no"))
	ep := &refresher.JSONEndpoint{URL: srv.URL, HTTPClient: refresher.NewHTTPClient(fastRetries(nil))}
	_, err := ep.Refresh(context.Background(), staleToken())
	require.Error(t, err)
	assert.Equal(t, int64(1), srv.calls.Load())
}

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closed atomic.Int32
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

func TestHTTPClientLeavesTheCallersRequestAlone(t *testing.T) {
	var got []string
	var mu sync.Mutex
	srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		w.WriteHeader(204)
	})
	body := &closeCounter{Reader: strings.NewReader("payload")}
	req, err := http.NewRequest(http.MethodPost, srv.URL, body)
	require.NoError(t, err)
	req.Header.Set("X-Test", "1")
	resp, err := refresher.NewHTTPClient(fastRetries(nil)).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 204, resp.StatusCode)
	assert.Equal(t, []string{"payload", "payload"}, got, "the body is sent whole on each attempt")
	assert.Equal(t, int32(1), body.closed.Load(), "the caller's body is closed once")
	assert.Equal(t, http.Header{"X-Test": {"1"}}, req.Header, "the caller's headers are untouched")
	assert.Equal(t, body, req.Body, "the caller's body is not replaced")
}

func TestBodyLimitIsConfigurable(t *testing.T) {
	srv := newAnswerServer(t, answer(200, "application/json", `{"a":"0123456789"}`))
	cfg := fastRetries(nil)
	cfg.MaxBodySize = 10
	_, err := refresher.NewHTTPClient(cfg).Get(srv.URL)
	var tl *refresher.BodyTooLargeError
	require.ErrorAs(t, err, &tl)
	assert.Equal(t, int64(10), tl.Limit)
	assert.Contains(t, err.Error(), "exceeds 10 bytes")
}

func TestHTTPClientLogsRetriesOnlyToTheGivenLogger(t *testing.T) {
	var buf safebuf.Buffer
	srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			w.WriteHeader(503)
			return
		}
		jsonAnswer(200, `{"access_token":"SECRET-A1"}`)(n, w, r)
	})
	cfg := fastRetries(nil)
	cfg.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ep := &refresher.JSONEndpoint{URL: srv.URL, HTTPClient: refresher.NewHTTPClient(cfg)}
	_, err := ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	out := buf.String()
	assert.Contains(t, out, "retrying request")
	assert.Contains(t, out, "status: 503")
	assert.NotContains(t, out, secretMark)
}

// lostLease is what a fence check returns once the lock has lapsed.
var lostLease = errors.New("lease lost")

func TestFailingFenceSendsNothing(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1"}`))
	ctx := fence.With(context.Background(), func(context.Context) error { return lostLease })
	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, ep := range []refresher.Endpoint{
		endpointKinds[0].new(srv.URL),
		endpointKinds[1].new(srv.URL),
		&refresher.JSONEndpoint{URL: srv.URL, HTTPClient: plain},
		&refresher.OAuth2Endpoint{HTTPClient: plain, Config: oauth2Config(srv.URL, "s3", oauth2.AuthStyleAutoDetect)},
	} {
		tok, err := ep.Refresh(ctx, staleToken())
		assert.Nil(t, tok)
		require.ErrorIs(t, err, lostLease)
		var re *refresher.RefreshError
		require.ErrorAs(t, err, &re)
		assert.False(t, re.Temporary(), "a lost lock is not a network failure")
		assert.NotErrorIs(t, err, refresher.ErrReauthRequired)
	}
	assert.Zero(t, srv.calls.Load(), "requests that reached the server")
}

func TestFenceIsCheckedBeforeEachRetry(t *testing.T) {
	srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		jsonAnswer(503, `{"error":"temporarily_unavailable"}`)(n, w, r)
	})
	var checks atomic.Int64
	ctx := fence.With(context.Background(), func(context.Context) error {
		if checks.Add(1) > 1 {
			return lostLease // the lease lapsed during the backoff
		}
		return nil
	})
	ep := &refresher.JSONEndpoint{URL: srv.URL, HTTPClient: refresher.NewHTTPClient(fastRetries(nil))}
	_, err := ep.Refresh(ctx, staleToken())
	require.ErrorIs(t, err, lostLease)
	assert.Equal(t, int64(1), srv.calls.Load(), "requests that reached the server")
	assert.Equal(t, int64(2), checks.Load(), "fence checks")
}

func TestPassingFenceIsCheckedOncePerAttempt(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1"}`))
	var checks atomic.Int64
	ctx := fence.With(context.Background(), func(context.Context) error { checks.Add(1); return nil })
	for _, kind := range endpointKinds {
		checks.Store(0)
		_, err := kind.new(srv.URL).Refresh(ctx, staleToken())
		require.NoError(t, err)
		assert.Equal(t, int64(1), checks.Load(), "%s: fence checks", kind.name)
	}
}

// nilBodyRT answers every request with status and a nil Body, as a
// RoundTripper may.
type nilBodyRT int

func (s nilBodyRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{StatusCode: int(s), Header: http.Header{}, Request: req}, nil
}

func TestNilResponseBodyIsAnEmptyAnswer(t *testing.T) {
	for _, status := range []int{401, 200, 503} {
		for name, c := range map[string]*http.Client{
			"NewHTTPClient": refresher.NewHTTPClient(refresher.ClientConfig{Base: nilBodyRT(status), RetryMax: -1}),
			"plain client":  {Transport: nilBodyRT(status)},
		} {
			for _, ep := range []refresher.Endpoint{
				&refresher.JSONEndpoint{URL: "http://127.0.0.1:1/refresh", HTTPClient: c},
				&refresher.OAuth2Endpoint{HTTPClient: c, Config: oauth2Config("http://127.0.0.1:1/token", "s3", oauth2.AuthStyleInHeader)},
			} {
				tok, err := ep.Refresh(context.Background(), staleToken())
				assert.Nil(t, tok)
				var re *refresher.RefreshError
				require.ErrorAs(t, err, &re, "%d %s", status, name)
				assert.Equal(t, status, re.StatusCode)
			}
		}
	}
	_, err := (&refresher.JSONEndpoint{}).ParseResponse(&http.Response{StatusCode: 401})
	assert.ErrorIs(t, err, refresher.ErrReauthRequired)
}

func TestDefaultClientKeepsConnectionsAlive(t *testing.T) {
	var mu sync.Mutex
	peers := map[string]bool{}
	srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers[r.RemoteAddr] = true
		mu.Unlock()
		jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1"}`)(n, w, r)
	})
	ep := endpointKinds[0].new(srv.URL)
	for range 3 {
		_, err := ep.Refresh(context.Background(), staleToken())
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, peers, 1, "connections used by 3 refreshes")
}
