package transport_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// recorder is a loopback server that records every request it receives,
// whole (headers, URL and body), and answers with its handler, or with a
// Bearer 401 so that a client that wrongly refreshes would show it.
type recorder struct {
	srv  *httptest.Server
	next http.HandlerFunc // optional; default: 401 Bearer invalid_token

	mu    sync.Mutex // guards dumps, auths
	dumps []string
	auths []string
}

// newRecorder starts a recorder listening on addr ("127.0.0.1:0",
// "127.0.0.2:0"). It skips the test if addr cannot be bound: not every
// system routes all of 127.0.0.0/8 to the loopback interface.
func newRecorder(t *testing.T, addr string, next http.HandlerFunc) *recorder {
	t.Helper()
	r := &recorder{next: next}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s (loopback alias missing?): %v", addr, err)
	}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Listener.Close()
	r.srv.Listener = l
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) serve(w http.ResponseWriter, req *http.Request) {
	dump, _ := httputil.DumpRequest(req, true)
	r.mu.Lock()
	r.dumps = append(r.dumps, string(dump))
	r.auths = append(r.auths, req.Header.Get("Authorization"))
	r.mu.Unlock()
	if r.next != nil {
		r.next(w, req)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
}

func (r *recorder) seen() (dumps, auths []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.dumps...), append([]string(nil), r.auths...)
}

// redirectTo answers with a redirect of the given code to target.
func redirectTo(code int, target func() string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, target(), code)
	}
}

func okHandler(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.WriteHeader(http.StatusOK)
}

var redirectCodes = []int{
	http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
	http.StatusTemporaryRedirect, http.StatusPermanentRedirect,
}

func TestRedirectToAnotherHostCarriesNoToken(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "secret-access-token", RefreshToken: "secret-refresh-token", TokenType: "Bearer"}
	for _, code := range redirectCodes {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(fmt.Sprintf("%d %s", code, method), func(t *testing.T) {
				other := newRecorder(t, "127.0.0.2:0", nil)
				origin := newRecorder(t, "127.0.0.1:0", redirectTo(code, func() string { return other.srv.URL + "/landing" }))
				src := refresher.NewSource(noEndpoint(t), refresher.WithToken(tok))
				c := transport.NewClient(src)

				body := "payload that follows a 307 or 308"
				req, err := http.NewRequest(method, origin.srv.URL+"/start", strings.NewReader(body))
				require.NoError(t, err)
				resp, err := c.Do(req)
				require.NoError(t, err)
				readAll(t, resp)

				assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the other host's 401, passed through")
				_, originAuths := origin.seen()
				assert.Equal(t, []string{"Bearer " + tok.AccessToken}, originAuths, "the original host gets the token")
				dumps, auths := other.seen()
				require.Len(t, dumps, 1, "the other host is asked once: no refresh, no replay")
				assert.Equal(t, []string{""}, auths)
				for _, secret := range []string{tok.AccessToken, tok.RefreshToken} {
					assert.NotContains(t, dumps[0], secret, "the other host's view of the request")
				}
				if method == http.MethodPost && (code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect) {
					assert.Contains(t, dumps[0], body, "307 and 308 keep the body")
				}
			})
		}
	}
}

func TestRedirectToSameHostKeepsToken(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "same-host-token"}
	for _, code := range redirectCodes {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			// Another port on the same host name: net/http keeps the
			// Authorization header there, and so do we.
			target := newRecorder(t, "127.0.0.1:0", okHandler)
			origin := newRecorder(t, "127.0.0.1:0", redirectTo(code, func() string { return target.srv.URL + "/landing" }))
			c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(tok)))

			resp, err := c.Get(origin.srv.URL + "/start")
			require.NoError(t, err)
			readAll(t, resp)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			_, auths := target.seen()
			assert.Equal(t, []string{"Bearer same-host-token"}, auths)
		})
	}
}

func TestRedirectBackToOriginalHostCarriesNoToken(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "round-trip-token"}
	var origin *recorder
	other := newRecorder(t, "127.0.0.2:0", redirectTo(http.StatusFound, func() string { return origin.srv.URL + "/back" }))
	origin = newRecorder(t, "127.0.0.1:0", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/start" {
			http.Redirect(w, r, other.srv.URL+"/bounce", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusUnauthorized)
	})
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(tok)))

	resp, err := c.Get(origin.srv.URL + "/start")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, originAuths := origin.seen()
	assert.Equal(t, []string{"Bearer round-trip-token", ""}, originAuths,
		"once a chain left the host, the token is not attached again (another host chose the URL)")
	_, otherAuths := other.seen()
	assert.Equal(t, []string{""}, otherAuths)
}

func TestRedirectFromHTTPSToHTTPCarriesNoToken(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "downgrade-token"}
	plain := newRecorder(t, "127.0.0.1:0", okHandler)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer downgrade-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, plain.srv.URL+"/landing", http.StatusFound)
	}))
	t.Cleanup(tlsSrv.Close)
	base := tlsSrv.Client().Transport
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(tok)), transport.WithBase(base))

	resp, err := c.Get(tlsSrv.URL + "/start")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	_, auths := plain.seen()
	assert.Equal(t, []string{""}, auths, "same host name, but http after https")
	base.(*http.Transport).CloseIdleConnections()
}

// fakeNet is a base RoundTripper that never dials: it answers from a
// function and records the Authorization header of every request.
type fakeNet struct {
	answer func(*http.Request) *http.Response

	mu    sync.Mutex // guards calls
	calls []fakeCall
}

type fakeCall struct{ url, auth string }

func (f *fakeNet) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	f.mu.Lock()
	f.calls = append(f.calls, fakeCall{r.URL.String(), r.Header.Get("Authorization")})
	f.mu.Unlock()
	if f.answer != nil {
		if resp := f.answer(r); resp != nil {
			return resp, nil
		}
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
}

func (f *fakeNet) seen() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeCall(nil), f.calls...)
}

func TestRedirectTokenFollowsNetHTTPHostRule(t *testing.T) {
	// No traffic: the base answers from memory, whatever the host.
	cases := []struct {
		from, to string
		keep     bool
	}{
		{"https://api.example.com/a", "https://api.example.com/b", true},
		{"https://api.example.com/a", "https://API.Example.COM/b", true},
		{"https://api.example.com/a", "https://api.example.com:8443/b", true},
		{"https://example.com/a", "https://api.example.com/b", true},
		{"https://api.example.com/a", "https://example.com/b", false},
		{"https://api.example.com/a", "https://evilapi.example.com/b", false},
		{"https://api.example.com/a", "https://api.example.com.evil.test/b", false},
		{"https://api.example.com/a", "https://other.example.com/b", false},
		{"https://api.example.com/a", "http://api.example.com/b", false},
		{"https://10.0.0.1/a", "https://10.0.0.2/b", false},
		{"https://[2001:db8::1]/a", "https://[2001:db8::2]/b", false},
		{"https://[2001:db8::1]/a", "https://[2001:db8:0::1]/b", true},
	}
	for _, tc := range cases {
		t.Run(tc.from+" to "+tc.to, func(t *testing.T) {
			f := &fakeNet{answer: func(r *http.Request) *http.Response {
				if r.URL.Path == "/a" {
					return &http.Response{StatusCode: http.StatusFound, Header: http.Header{"Location": {tc.to}}, Body: http.NoBody, Request: r}
				}
				return nil
			}}
			c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(&oauth2.Token{AccessToken: "tkn"})),
				transport.WithBase(f), transport.WithInsecureHTTP())
			resp, err := c.Get(tc.from)
			require.NoError(t, err)
			resp.Body.Close()
			calls := f.seen()
			require.Len(t, calls, 2)
			assert.Equal(t, "Bearer tkn", calls[0].auth)
			want := ""
			if tc.keep {
				want = "Bearer tkn"
			}
			assert.Equal(t, want, calls[1].auth)
		})
	}
}

func TestAllowedHostsBoundEveryRequest(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "allow-listed-token"}
	listed := newRecorder(t, "127.0.0.1:0", okHandler)
	unlisted := newRecorder(t, "127.0.0.2:0", nil)
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(tok)),
		transport.WithAllowedHosts(listed.srv.URL))

	resp, err := c.Get(listed.srv.URL + "/x")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = c.Get(unlisted.srv.URL + "/x")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "sent without a token; its 401 is passed through")

	_, auths := listed.seen()
	assert.Equal(t, []string{"Bearer allow-listed-token"}, auths)
	dumps, auths := unlisted.seen()
	assert.Equal(t, []string{""}, auths, "one request, no token, no refresh")
	assert.NotContains(t, dumps[0], tok.AccessToken)
}

func TestAllowedHostsMatchHostsAndOrigins(t *testing.T) {
	cases := []struct {
		allow []string
		url   string
		token bool
	}{
		{[]string{"api.example.com"}, "https://api.example.com/x", true},
		{[]string{"api.example.com"}, "https://API.EXAMPLE.COM:8443/x", true},
		{[]string{"API.example.com"}, "https://api.example.com/x", true},
		{[]string{"api.example.com"}, "https://sub.api.example.com/x", false},
		{[]string{"api.example.com"}, "https://example.com/x", false},
		{[]string{"api.example.com"}, "https://api.example.com.evil.test/x", false},
		{[]string{"api.example.com:8443"}, "https://api.example.com:8443/x", true},
		{[]string{"api.example.com:8443"}, "https://api.example.com/x", false},
		{[]string{"https://api.example.com"}, "https://api.example.com/x", true},
		{[]string{"https://api.example.com"}, "https://api.example.com:443/x", true},
		{[]string{"https://api.example.com/"}, "https://api.example.com/x", true},
		{[]string{"https://api.example.com"}, "https://api.example.com:8443/x", false},
		{[]string{"https://api.example.com"}, "http://api.example.com/x", false},
		{[]string{"http://127.0.0.1:8080"}, "http://127.0.0.1:8080/x", true},
		{[]string{"http://127.0.0.1:8080"}, "http://127.0.0.1:8081/x", false},
		{[]string{"::1"}, "http://[::1]:9/x", true},
		{[]string{"[::1]:9"}, "http://[::1]:9/x", true},
		{[]string{"[::1]:9"}, "http://[0:0::1]:9/x", true},
		{[]string{"10.0.0.1", "https://api.example.com"}, "https://api.example.com/x", true},
		{[]string{"10.0.0.1", "https://api.example.com"}, "https://10.0.0.1/x", true},
		{[]string{"10.0.0.1", "https://api.example.com"}, "https://10.0.0.2/x", false},
		{[]string{}, "https://api.example.com/x", false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%q %s", tc.allow, tc.url), func(t *testing.T) {
			f := &fakeNet{}
			c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(&oauth2.Token{AccessToken: "tkn"})),
				transport.WithBase(f), transport.WithAllowedHosts(tc.allow...))
			resp, err := c.Get(tc.url)
			require.NoError(t, err)
			resp.Body.Close()
			want := ""
			if tc.token {
				want = "Bearer tkn"
			}
			require.Len(t, f.seen(), 1)
			assert.Equal(t, want, f.seen()[0].auth)
		})
	}
}

func TestAllowedHostsPanicsOnInvalidEntry(t *testing.T) {
	for _, entry := range []string{"", "https://api.example.com/path", "https://user@api.example.com",
		"https://api.example.com?q=1", "ftp://api.example.com", "*.example.com", "https://", "api.example.com/x"} {
		t.Run(entry, func(t *testing.T) {
			assert.Panics(t, func() { transport.WithAllowedHosts("ok.example.com", entry) })
		})
	}
}

func TestPlainHTTPToNonLoopbackHostIsRefused(t *testing.T) {
	for _, u := range []string{
		"http://api.example.com/x",
		"http://API.EXAMPLE.COM:8080/x",
		"http://localhost.example.com/x",
		"http://127.0.0.1.nip.io/x",
		"http://10.0.0.1/x",
		"http://0.0.0.0/x",
		"http://[::]/x",
		"http://2130706433/x", // 127.0.0.1 written as an integer: not recognised, so refused
		"ftp://api.example.com/x",
	} {
		t.Run(u, func(t *testing.T) {
			f := &fakeNet{}
			tok := &oauth2.Token{AccessToken: "never-on-the-wire", RefreshToken: "refresh-never-on-the-wire"}
			c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(tok)), transport.WithBase(f))
			body := &countingBody{Reader: strings.NewReader("data")}
			req, err := http.NewRequest(http.MethodPost, u, body)
			require.NoError(t, err)

			resp, err := c.Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			require.ErrorIs(t, err, transport.ErrInsecureHTTP)
			var ue *url.Error
			assert.ErrorAs(t, err, &ue)
			assert.Empty(t, f.seen(), "nothing is sent")
			assert.Equal(t, int32(1), body.closes.Load(), "the body is closed")
			assert.NotContains(t, err.Error(), tok.AccessToken)
			assert.Contains(t, err.Error(), "plain http")
		})
	}
}

func TestPlainHTTPToLoopbackIsAllowed(t *testing.T) {
	for _, u := range []string{
		"http://127.0.0.1/x",
		"http://127.9.8.7:8080/x",
		"http://[::1]:8080/x",
		"http://[::ffff:127.0.0.1]/x",
		"http://localhost/x",
		"http://LocalHost:9/x",
	} {
		t.Run(u, func(t *testing.T) {
			f := &fakeNet{} // answers from memory: nothing is dialled
			c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(&oauth2.Token{AccessToken: "tkn"})), transport.WithBase(f))
			resp, err := c.Get(u)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, []fakeCall{{u, "Bearer tkn"}}, f.seen())
		})
	}
}

func TestInsecureHTTPOptionAllowsPlainHTTP(t *testing.T) {
	f := &fakeNet{} // answers from memory: nothing is dialled
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(&oauth2.Token{AccessToken: "tkn"})),
		transport.WithBase(f), transport.WithInsecureHTTP())
	resp, err := c.Get("http://api.example.com/x")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []fakeCall{{"http://api.example.com/x", "Bearer tkn"}}, f.seen())
}

func TestPlainHTTPWithoutTokenIsSent(t *testing.T) {
	// Only a token is refused: a request that carries none goes out.
	f := &fakeNet{} // answers from memory: nothing is dialled
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(&oauth2.Token{AccessToken: "tkn"})),
		transport.WithBase(f), transport.WithAllowedHosts("https://api.example.com"))

	resp, err := c.Get("http://cdn.example.com/x") // not allow-listed
	require.NoError(t, err)
	resp.Body.Close()
	req, _ := http.NewRequestWithContext(transport.SkipAuth(t.Context()), http.MethodGet, "http://api.example.com/login", nil)
	resp, err = c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []fakeCall{{"http://cdn.example.com/x", ""}, {"http://api.example.com/login", ""}}, f.seen())
}

func TestBrokenRedirectChainCarriesNoToken(t *testing.T) {
	// A base RoundTripper that does not set Response.Request breaks the
	// chain back to the first request: the hop gets no token.
	f := &fakeNet{}
	rt := transport.New(refresher.NewSource(noEndpoint(t), refresher.WithToken(&oauth2.Token{AccessToken: "tkn"})), transport.WithBase(f))
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1/next", nil)
	require.NoError(t, err)
	req.Response = &http.Response{StatusCode: http.StatusFound}
	resp, err := rt.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []fakeCall{{"http://127.0.0.1/next", ""}}, f.seen())
}
