package transport_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// attemptLog is a base RoundTripper that records the Cookie and
// Authorization headers of every attempt it sends.
type attemptLog struct {
	mu      sync.Mutex // guards cookies, auth
	cookies []string
	auth    []string
}

func (l *attemptLog) RoundTrip(r *http.Request) (*http.Response, error) {
	l.mu.Lock()
	l.cookies = append(l.cookies, r.Header.Get("Cookie"))
	l.auth = append(l.auth, r.Header.Get("Authorization"))
	l.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

// cookieLogin logs in to the Express API through a client with jar and
// returns the token of the login answer.
func cookieLogin(t *testing.T, srv *testserver.Server, jar http.CookieJar) *oauth2.Token {
	t.Helper()
	login := &http.Client{Jar: jar}
	resp, err := login.Post(srv.URL()+testserver.PathLogin, "application/json",
		bytes.NewReader([]byte(`{"username":"demo","password":"demo"}`)))
	require.NoError(t, err)
	tok, err := refresher.ExpressEndpoint(srv.URL()).ParseResponse(resp)
	require.NoError(t, err)
	tok.Expiry = tok.Expiry.AddDate(1, 0, 0) // reactive only: the 401 must come
	return tok
}

// cookieSession logs in to the Express API through a client with a jar and
// returns the jar, the token of the login answer and the endpoint that
// refreshes through the jar, named once as its Jar.
func cookieSession(t *testing.T, srv *testserver.Server) (http.CookieJar, *oauth2.Token, *refresher.JSONEndpoint) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	tok := cookieLogin(t, srv, jar)
	ep := refresher.ExpressEndpoint(srv.URL())
	ep.Jar = jar
	return jar, tok, ep
}

func TestCookieSessionReplayCarriesTheRefreshedCookie(t *testing.T) {
	srv := testserver.NewTest(t, testserver.Config{})
	jar, tok, ep := cookieSession(t, srv)
	attempts := &attemptLog{}
	c := transport.NewClient(refresher.NewSource(ep, refresher.WithToken(tok)), transport.WithBase(attempts))
	require.Same(t, jar, c.Jar, "NewClient takes the endpoint's jar")

	srv.ExpireAccessTokens()
	req, err := http.NewRequest(http.MethodGet, srv.URL()+testserver.PathCurrentUser, nil)
	require.NoError(t, err)
	req.Header.Set("Cookie", "theme=dark") // the caller's own, not in the jar
	resp, err := c.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	require.Len(t, attempts.cookies, 2, "the request and its replay")
	for i, ck := range attempts.cookies {
		assert.Contains(t, ck, "theme=dark", "attempt %d keeps the caller's cookie", i)
	}
	assert.Contains(t, attempts.cookies[0], "accessToken="+tok.AccessToken, "the first attempt carries the login cookie")
	assert.NotContains(t, attempts.cookies[1], tok.AccessToken, "the replay does not resend the rejected cookie")
	var fresh string
	for _, ck := range jar.Cookies(resp.Request.URL) {
		if ck.Name == "accessToken" {
			fresh = ck.Value
		}
	}
	require.NotEmpty(t, fresh)
	assert.Contains(t, attempts.cookies[1], "accessToken="+fresh, "the replay carries the jar's new cookie")
	assert.Equal(t, []string{"", ""}, attempts.auth, "a cookie session sends no Authorization header")
	assert.Equal(t, int64(1), srv.Stats().Rotations, "refreshes")
}

// The jar wired in the three places of old (the refresh client's
// ClientConfig.Jar, WithCookieJar, client.Jar) still works, and so does
// leaving out WithCookieJar, which used to replay the stale cookie: the
// Transport follows the jar of the Source's refresh call.
func TestCookieSessionFollowsTheRefreshClientsJar(t *testing.T) {
	for _, withOption := range []bool{true, false} {
		t.Run(fmt.Sprintf("WithCookieJar=%t", withOption), func(t *testing.T) {
			srv := testserver.NewTest(t, testserver.Config{})
			jar, err := cookiejar.New(nil)
			require.NoError(t, err)
			tok := cookieLogin(t, srv, jar)
			ep := refresher.ExpressEndpoint(srv.URL())
			ep.HTTPClient = refresher.NewHTTPClient(refresher.ClientConfig{Jar: jar})
			var opts []transport.Option
			if withOption {
				opts = append(opts, transport.WithCookieJar(jar))
			}
			c := transport.NewClient(refresher.NewSource(ep, refresher.WithToken(tok)), opts...)
			c.Jar = jar

			for range 4 {
				srv.ExpireAccessTokens()
				resp, err := c.Get(srv.URL() + testserver.PathCurrentUser)
				require.NoError(t, err)
				readAll(t, resp)
				assert.Equal(t, http.StatusOK, resp.StatusCode)
			}
			assert.Equal(t, int64(4), srv.Stats().Rotations, "one refresh per expiry")
		})
	}
}

// The miswiring that used to fail silently: WithCookieJar and client.Jar,
// but a refresh endpoint without the jar. Each request got a 401, rotated
// the refresh token and returned the 401 (4 requests, 4 rotations). Now
// every request fails at once with an error that names the missing jar,
// and no refresh token is presented.
func TestCookieSessionWhoseRefreshHasNoJarFailsLoudly(t *testing.T) {
	srv := testserver.NewTest(t, testserver.Config{})
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	tok := cookieLogin(t, srv, jar)
	ep := refresher.ExpressEndpoint(srv.URL()) // no Jar
	c := transport.NewClient(refresher.NewSource(ep, refresher.WithToken(tok)), transport.WithCookieJar(jar))
	c.Jar = jar

	for range 4 {
		srv.ExpireAccessTokens()
		_, err := c.Get(srv.URL() + testserver.PathCurrentUser)
		require.ErrorIs(t, err, transport.ErrRefreshJarMissing)
		assert.Contains(t, err.Error(), "JSONEndpoint.Jar", "the error names the missing piece")
	}
	st := srv.Stats()
	assert.Zero(t, st.Refreshes, "refresh calls")
	assert.Zero(t, st.Rotations, "rotations")
}

// A Transport in cookie mode whose Source refreshes through another jar
// fails the same way.
func TestCookieSessionWithTwoJarsFailsLoudly(t *testing.T) {
	srv := testserver.NewTest(t, testserver.Config{})
	jar, tok, ep := cookieSession(t, srv)
	other, err := cookiejar.New(nil)
	require.NoError(t, err)
	c := transport.NewClient(refresher.NewSource(ep, refresher.WithToken(tok)), transport.WithCookieJar(other))
	c.Jar = jar

	srv.ExpireAccessTokens()
	_, err = c.Get(srv.URL() + testserver.PathCurrentUser)
	require.ErrorIs(t, err, transport.ErrJarMismatch)
	assert.Contains(t, err.Error(), "JSONEndpoint.Jar")
	assert.Zero(t, srv.Stats().Refreshes, "refresh calls")
}

// An endpoint of one's own tells its jar through a CookieJar method, here
// promoted from an embedded *JSONEndpoint; a plain EndpointFunc cannot,
// and in cookie mode it fails with ErrRefreshJarMissing.
func TestCookieSessionWithAnEndpointOfOnesOwn(t *testing.T) {
	srv := testserver.NewTest(t, testserver.Config{})
	jar, tok, ep := cookieSession(t, srv)
	calls := 0
	own := &countingEndpoint{JSONEndpoint: ep, calls: &calls}
	c := transport.NewClient(refresher.NewSource(own, refresher.WithToken(tok)))
	srv.ExpireAccessTokens()
	resp, err := c.Get(srv.URL() + testserver.PathCurrentUser)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, calls)
	assert.Same(t, jar, c.Jar)

	fn := refresher.EndpointFunc(ep.Refresh)
	c = transport.NewClient(refresher.NewSource(fn, refresher.WithToken(tok)), transport.WithCookieJar(jar))
	_, err = c.Get(srv.URL() + testserver.PathCurrentUser)
	require.ErrorIs(t, err, transport.ErrRefreshJarMissing)
}

type countingEndpoint struct {
	*refresher.JSONEndpoint
	calls *int
}

func (e *countingEndpoint) Refresh(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
	*e.calls++
	return e.JSONEndpoint.Refresh(ctx, cur)
}
