package transport_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

func TestValidTokenIsAttachedAsAuthorizationHeader(t *testing.T) {
	a := newAuthServer(t)
	tok := a.issue()
	var got string
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Get("Authorization")
		return http.DefaultTransport.RoundTrip(r)
	})
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(tok)), transport.WithBase(base))

	resp, err := c.Get(a.url("/echo"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "Bearer "+tok.AccessToken, got)
	assert.Zero(t, a.calls.Load(), "endpoint calls")
}

func TestTokenTypeIsUsedAsScheme(t *testing.T) {
	var got string
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Get("Authorization")
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	tok := &oauth2.Token{AccessToken: "abc", TokenType: "MAC"}
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(tok)), transport.WithBase(base))
	resp, err := c.Get("http://127.0.0.1/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "MAC abc", got)
}

func TestCallerRequestIsNeverMutated(t *testing.T) {
	a := newAuthServer(t)
	a.issue()
	a.expireAccess() // force refresh + replay: both attempts must leave req alone
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(&oauth2.Token{AccessToken: "old", RefreshToken: a.refresh}))
	rt := transport.New(src)

	body := []byte("payload")
	req, err := http.NewRequest(http.MethodPost, a.url("/echo"), bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("X-Custom", "1")
	before := req.Header.Clone()
	beforeURL := *req.URL

	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, before, req.Header, "caller's headers")
	assert.Empty(t, req.Header.Get("Authorization"))
	assert.Equal(t, beforeURL, *req.URL, "caller's URL")
	assert.Equal(t, int64(len(body)), req.ContentLength)
}

func TestRequestBodyIsClosedExactlyOnceOnEveryPath(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 2048)
	cases := []struct {
		name     string
		setup    func(a *authServer) refresher.Endpoint
		token    func(a *authServer) *oauth2.Token
		body     []byte
		getBody  bool
		limit    int64
		base     http.RoundTripper
		wantErr  bool
		wantCode int
	}{
		{name: "valid token", token: func(a *authServer) *oauth2.Token { return a.issue() }, body: []byte("a"), wantCode: 200},
		{name: "refresh and replay buffered", token: stale, body: []byte("b"), wantCode: 200},
		{name: "refresh and replay with GetBody", token: stale, body: []byte("c"), getBody: true, wantCode: 200},
		{name: "over the replay limit", token: stale, body: big, limit: 1024, wantCode: 401},
		{name: "no token", token: func(*authServer) *oauth2.Token { return nil }, body: []byte("d"), wantErr: true},
		{name: "refresh fails", token: func(a *authServer) *oauth2.Token {
			a.issue()
			a.expireAccess()
			return &oauth2.Token{AccessToken: "old", RefreshToken: "reused"}
		}, body: []byte("e"), wantErr: true},
		{name: "base fails", token: func(a *authServer) *oauth2.Token { return a.issue() }, body: []byte("f"),
			base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
				r.Body.Close()
				return nil, errors.New("boom")
			}), wantErr: true},
		{name: "skip auth", token: func(a *authServer) *oauth2.Token { return a.issue() }, body: []byte("g"), wantCode: 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthServer(t)
			var opts []refresher.Option
			if tok := tc.token(a); tok != nil {
				opts = append(opts, refresher.WithToken(tok))
			}
			topts := []transport.Option{}
			if tc.limit > 0 {
				topts = append(topts, transport.WithReplayLimit(tc.limit))
			}
			if tc.base != nil {
				topts = append(topts, transport.WithBase(tc.base))
			}
			c := transport.NewClient(refresher.NewSource(a.endpoint(), opts...), topts...)

			cb := &countingBody{Reader: bytes.NewReader(tc.body)}
			ctx := context.Background()
			if tc.name == "skip auth" {
				ctx = transport.SkipAuth(ctx)
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url("/echo"), cb)
			require.NoError(t, err)
			if tc.getBody {
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tc.body)), nil }
			}
			resp, err := c.Do(req)
			if tc.wantErr {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
				readAll(t, resp)
				assert.Equal(t, tc.wantCode, resp.StatusCode)
			}
			assert.Equal(t, int32(1), cb.closes.Load(), "Close calls on the caller's body")
		})
	}
}

// stale returns a token the server no longer accepts whose refresh token is
// still live.
func stale(a *authServer) *oauth2.Token {
	tok := a.issue()
	a.expireAccess()
	return tok
}

func TestUnauthorizedTriggersOneRefreshAndOneReplay(t *testing.T) {
	a := newAuthServer(t)
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a)))
	c := transport.NewClient(src)

	resp, err := c.Get(a.url("/echo"))
	require.NoError(t, err)
	body := readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, body)
	assert.Equal(t, int64(1), a.calls.Load(), "endpoint calls")
	assert.Equal(t, int64(1), a.unauthorized.Load(), "401s served")
	assert.Equal(t, int64(2), a.requests.Load(), "requests: original + replay")
	assert.Equal(t, "Bearer "+a.currentAccess(), resp.Request.Header.Get("Authorization"))
}

func TestConcurrent401sShareOneRefresh(t *testing.T) {
	const n = 200
	a := newAuthServer(t)
	a.gate = make(chan struct{})
	// The refresh is held until every one of the n requests has had its
	// 401, so that all of them ask for a refresh while it is in flight.
	var once sync.Once
	a.onUnauthorized = func(k int64) {
		if k == n {
			once.Do(func() { close(a.gate) })
		}
	}
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a)))
	c := transport.NewClient(src, transport.WithBase(&http.Transport{MaxIdleConnsPerHost: n}))

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			resp, err := c.Post(a.url("/echo"), "text/plain", strings.NewReader(strings.Repeat("z", i)))
			if err != nil {
				errs <- err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				errs <- errors.New(resp.Status)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed: %v", err)
	}
	assert.Equal(t, int64(1), a.calls.Load(), "endpoint calls")
	assert.Equal(t, int64(n), a.unauthorized.Load(), "401s served")
	c.CloseIdleConnections()
}

func TestReplayThatGets401AgainIsReturnedAsIs(t *testing.T) {
	a := newAuthServer(t)
	tok := stale(a)
	// Every access token is refused: the replay gets 401 too.
	a.onUnauthorized = func(int64) { a.expireAccess() }
	ep := a.endpoint()
	src := refresher.NewSource(refresher.EndpointFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		t, err := ep.Refresh(ctx, cur)
		a.expireAccess()
		return t, err
	}), refresher.WithToken(tok))
	c := transport.NewClient(src)

	resp, err := c.Get(a.url("/echo"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, int64(1), a.calls.Load(), "endpoint calls")
	assert.Equal(t, int64(2), a.requests.Load(), "requests: original + one replay")
}

func TestReplayWithGetBodyIsByteIdentical(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))))
	body := bytes.Repeat([]byte{0, 1, 2, 0xff}, 10_000)

	req, err := http.NewRequest(http.MethodPut, a.url("/echo"), bytes.NewReader(body)) // sets GetBody
	require.NoError(t, err)
	require.NotNil(t, req.GetBody)
	resp, err := c.Do(req)
	require.NoError(t, err)
	readAll(t, resp)

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{sha(body), sha(body)}, a.bodyHashes())
}

func TestReplayOfPlainReaderIsByteIdentical(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))))
	body := bytes.Repeat([]byte("plain reader "), 50_000) // 650 KB, under the 1 MiB limit

	req, err := http.NewRequest(http.MethodPost, a.url("/echo"), io.MultiReader(bytes.NewReader(body)))
	require.NoError(t, err)
	require.Nil(t, req.GetBody)
	resp, err := c.Do(req)
	require.NoError(t, err)
	readAll(t, resp)

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{sha(body), sha(body)}, a.bodyHashes())
}

func TestBodyOverLimitIsSentOnceAnd401Returned(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))))
	body := bytes.Repeat([]byte("L"), transport.DefaultReplayLimit+1)

	req, err := http.NewRequest(http.MethodPost, a.url("/echo"), io.MultiReader(bytes.NewReader(body)))
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, []string{sha(body)}, a.bodyHashes(), "the body is sent once, whole")
	assert.Equal(t, int64(1), a.calls.Load(), "the token is refreshed for the next request")

	resp, err = c.Get(a.url("/echo"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the next request uses the refreshed token")
	assert.Equal(t, int64(1), a.calls.Load(), "endpoint calls")
	assert.Equal(t, int64(1), a.unauthorized.Load(), "401s served")
}

func TestOwnAuthorizationHeaderIsPassedThrough(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))))

	req, err := http.NewRequest(http.MethodGet, a.url("/echo"), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer callers-own")
	resp, err := c.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "Bearer callers-own", resp.Request.Header.Get("Authorization"))
	assert.Zero(t, a.calls.Load(), "endpoint calls")
}

func TestForbiddenDoesNotTriggerRefresh(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(a.issue())))

	resp, err := c.Get(a.url("/forbidden"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Zero(t, a.calls.Load(), "endpoint calls")
	assert.Equal(t, int64(1), a.requests.Load(), "requests")
}

func TestRefreshOnConfiguresTriggerStatuses(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(a.issue())),
		transport.WithRefreshOn(http.StatusForbidden))

	resp, err := c.Get(a.url("/forbidden"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "the replay's answer")
	assert.Equal(t, int64(1), a.calls.Load(), "endpoint calls")
	assert.Equal(t, int64(2), a.requests.Load(), "requests: original + replay")
}

func TestSkipAuthSendsRequestUntouched(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))))

	req, err := http.NewRequestWithContext(transport.SkipAuth(context.Background()), http.MethodGet, a.url("/echo"), nil)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Empty(t, resp.Request.Header.Get("Authorization"))
	assert.Zero(t, a.calls.Load(), "endpoint calls")
}

func TestReauthRequiredFailsAllWaitersThroughURLError(t *testing.T) {
	const n = 20
	a := newAuthServer(t)
	a.issue()
	a.expireAccess()
	a.gate = make(chan struct{})
	var once sync.Once
	a.onUnauthorized = func(k int64) {
		if k == n {
			once.Do(func() { close(a.gate) })
		}
	}
	// A refresh token the server does not know: invalid_grant.
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(&oauth2.Token{AccessToken: "old", RefreshToken: "unknown"}))
	c := transport.NewClient(src)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			resp, err := c.Get(a.url("/echo"))
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		var ue *url.Error
		require.ErrorAs(t, err, &ue)
		assert.ErrorIs(t, err, refresher.ErrReauthRequired)
	}
	assert.Equal(t, int64(1), a.calls.Load(), "endpoint calls")

	// Later requests fail fast: no endpoint call, nothing sent.
	requests := a.requests.Load()
	_, err := c.Get(a.url("/echo"))
	assert.ErrorIs(t, err, refresher.ErrReauthRequired)
	assert.Equal(t, int64(1), a.calls.Load(), "endpoint calls after the session ended")
	assert.Equal(t, requests, a.requests.Load(), "requests sent after the session ended")

	// A new token revives the session.
	require.NoError(t, src.SetToken(context.Background(), a.issue()))
	resp, err := c.Get(a.url("/echo"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestProactiveRefreshSendsNoExpiredToken(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	a := newAuthServer(t)
	a.expiresIn, a.clock = 5*time.Minute, clock
	// With WithBlockingRefresh, a request whose token is due waits for
	// the refresh. (By default it goes out with the still-valid token while
	// the refresh runs; this server, which refuses an access token as soon
	// as a newer one is issued, may then answer 401, which a replay heals:
	// see TestBackgroundRefreshServesDueTokensAndHealsRaces.)
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(a.issue()), refresher.WithClock(clock), refresher.WithBlockingRefresh())
	c := transport.NewClient(src)

	for range 3 {
		// 14 s before expiry, past the jittered refresh point inside the
		// 30 s leeway: the token is refreshed before the request, which
		// the server accepts.
		advance(5*time.Minute - 14*time.Second)
		resp, err := c.Get(a.url("/echo"))
		require.NoError(t, err)
		readAll(t, resp)
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, int64(3), a.calls.Load(), "endpoint calls")
	assert.Zero(t, a.unauthorized.Load(), "401s served")
}

func TestBackgroundRefreshServesDueTokensAndHealsRaces(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	a := newAuthServer(t)
	a.expiresIn, a.clock = 5*time.Minute, clock
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(a.issue()), refresher.WithClock(clock))
	c := transport.NewClient(src)
	for round := range 3 {
		advance(5*time.Minute - 14*time.Second) // due, still valid
		for range 20 {
			resp, err := c.Get(a.url("/echo"))
			require.NoError(t, err)
			readAll(t, resp)
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		require.Eventually(t, func() bool { return a.calls.Load() >= int64(round+1) }, 10*time.Second, time.Millisecond)
		assert.Equal(t, int64(round+1), a.calls.Load(), "one refresh per round")
	}
}

// noEndpoint fails the test if it is called.
func noEndpoint(t *testing.T) refresher.Endpoint {
	return refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		t.Error("unexpected endpoint call")
		return nil, errors.New("unexpected endpoint call")
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// idleCloser is a RoundTripper that counts CloseIdleConnections calls.
type idleCloser struct {
	http.RoundTripper
	calls int
}

func (c *idleCloser) CloseIdleConnections() { c.calls++ }

func TestCloseIdleConnectionsReachesTheBase(t *testing.T) {
	base := &idleCloser{RoundTripper: http.DefaultTransport}
	c := transport.NewClient(refresher.NewSource(noEndpoint(t)), transport.WithBase(base))
	c.CloseIdleConnections()
	assert.Equal(t, 1, base.calls)
}
