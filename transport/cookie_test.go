package transport_test

import (
	"bytes"
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

// cookieSession logs in to contract B through a client with a jar and
// returns the jar, the token of the login answer and the endpoint that
// refreshes through the jar.
func cookieSession(t *testing.T, srv *testserver.Server) (http.CookieJar, *oauth2.Token, *refresher.JSONEndpoint) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	ep := refresher.SeedEndpoint(srv.URL())
	ep.HTTPClient = refresher.NewHTTPClient(refresher.ClientConfig{Jar: jar})
	login := &http.Client{Jar: jar}
	resp, err := login.Post(srv.URL()+testserver.PathLogin, "application/json",
		bytes.NewReader([]byte(`{"username":"demo","password":"demo"}`)))
	require.NoError(t, err)
	tok, err := ep.ParseResponse(resp)
	require.NoError(t, err)
	tok.Expiry = tok.Expiry.AddDate(1, 0, 0) // reactive only: the 401 must come
	return jar, tok, ep
}

func TestCookieSessionReplayCarriesTheRefreshedCookie(t *testing.T) {
	srv := testserver.NewTest(t, testserver.Config{})
	jar, tok, ep := cookieSession(t, srv)
	attempts := &attemptLog{}
	c := transport.NewClient(refresher.NewSource(ep, refresher.WithToken(tok)),
		transport.WithCookieJar(jar), transport.WithBase(attempts))
	c.Jar = jar

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

// Without WithCookieJar, http.Client's stale cookie rides along on the
// replay: the server reads the cookie before the Authorization header, and
// the replay fails. This is why the option exists.
func TestCookieSessionWithoutJarOptionReplaysTheStaleCookie(t *testing.T) {
	srv := testserver.NewTest(t, testserver.Config{})
	jar, tok, ep := cookieSession(t, srv)
	c := transport.NewClient(refresher.NewSource(ep, refresher.WithToken(tok)))
	c.Jar = jar

	srv.ExpireAccessTokens()
	resp, err := c.Get(srv.URL() + testserver.PathCurrentUser)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, int64(1), srv.Stats().Rotations, "refreshes")
}
