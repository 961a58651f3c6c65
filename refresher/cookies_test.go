package refresher_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// cookieAnswer sets the access token cookie and answers with a token pair.
func cookieAnswer(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: "accessToken", Value: "SECRET-A1", Path: "/"})
	jsonAnswer(200, `{"data":{"accessToken":"SECRET-A1","refreshToken":"SECRET-R1"}}`)(0, w, r)
}

// The jar named once, as JSONEndpoint.Jar, serves the refresh call: its
// cookies go out and the answer's come back, with the default client and
// with a client of one's own that has no jar.
func TestJSONEndpointJarServesTheRefreshCall(t *testing.T) {
	for name, own := range map[string]*http.Client{"default client": nil, "own client": refresher.NewHTTPClient(refresher.ClientConfig{})} {
		t.Run(name, func(t *testing.T) {
			rs := newRecordingServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { cookieAnswer(w, r) })
			u, _ := url.Parse(rs.URL)
			jar := newJar(t)
			jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "SECRET-S0"}})
			ep := refresher.ExpressEndpoint(rs.URL)
			ep.Jar, ep.HTTPClient = jar, own
			_, err := ep.Refresh(context.Background(), staleToken())
			require.NoError(t, err)
			require.Len(t, rs.last(t).cookies, 1)
			assert.Equal(t, "SECRET-S0", rs.last(t).cookies[0].Value, "the jar's cookie went out")
			assert.Len(t, jar.Cookies(u), 2, "the answer's cookie came back into the jar")
			if own != nil {
				assert.Nil(t, own.Jar, "the client of one's own is not modified")
			}

			src := refresher.NewSource(ep)
			assert.Same(t, jar, src.CookieJar())
		})
	}
}

// A client of one's own with another jar would hide the session's cookies
// from the refresh call: the refresh fails as misconfigured, unsent.
func TestJSONEndpointWithTwoJarsFailsUnsent(t *testing.T) {
	rs := newRecordingServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) { cookieAnswer(w, r) })
	ep := refresher.ExpressEndpoint(rs.URL)
	ep.Jar = newJar(t)
	ep.HTTPClient = refresher.NewHTTPClient(refresher.ClientConfig{Jar: newJar(t)})
	_, err := ep.Refresh(context.Background(), staleToken())
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.ErrorIs(t, err, refresher.ErrMisconfigured)
	assert.Contains(t, err.Error(), "JSONEndpoint.Jar")
	assert.Zero(t, rs.calls.Load(), "no refresh token was presented")
}

// Source.CookieJar reports the jar of its Endpoint's refresh call: the
// Jar, else the HTTPClient's; nil for an endpoint without one, for an
// EndpointFunc and for the zero Source.
func TestSourceCookieJar(t *testing.T) {
	jar := newJar(t)
	viaClient := &refresher.JSONEndpoint{URL: "https://api.example.com/refresh",
		HTTPClient: refresher.NewHTTPClient(refresher.ClientConfig{Jar: jar})}
	assert.Same(t, jar, refresher.NewSource(viaClient).CookieJar())
	assert.Nil(t, refresher.NewSource(refresher.ExpressEndpoint("https://api.example.com")).CookieJar())
	fn := refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return nil, nil })
	assert.Nil(t, refresher.NewSource(fn).CookieJar())
	assert.Nil(t, new(refresher.Source).CookieJar())
}
