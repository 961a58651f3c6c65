package transport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// challengeServer accepts only the access token "fresh"; any other gets
// status with the given WWW-Authenticate fields. Its endpoint issues
// "fresh".
type challengeServer struct {
	srv      *httptest.Server
	calls    atomic.Int64 // endpoint calls
	requests atomic.Int64
}

func newChallengeServer(t *testing.T, status int, challenges []string) *challengeServer {
	t.Helper()
	s := &challengeServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") == "Bearer fresh" {
			w.WriteHeader(http.StatusOK)
			return
		}
		for _, c := range challenges {
			w.Header().Add("WWW-Authenticate", c)
		}
		w.WriteHeader(status)
		io.WriteString(w, "denied")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *challengeServer) source() *refresher.Source {
	return refresher.NewSource(refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		s.calls.Add(1)
		return &oauth2.Token{AccessToken: "fresh", RefreshToken: "r2"}, nil
	}), refresher.WithToken(&oauth2.Token{AccessToken: "stale", RefreshToken: "r1"}))
}

func TestInsufficientScopeNeverTriggersRefresh(t *testing.T) {
	cases := []struct {
		name       string
		status     int
		challenges []string
	}{
		{"401", http.StatusUnauthorized, []string{`Bearer realm="api", error="insufficient_scope", scope="admin"`}},
		{"403 configured as a trigger", http.StatusForbidden, []string{`Bearer error="insufficient_scope"`}},
		{"among other challenges", http.StatusUnauthorized, []string{`Basic realm="api"`, `Bearer error="insufficient_scope"`}},
		{"invalid_request", http.StatusUnauthorized, []string{`Bearer error="invalid_request"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newChallengeServer(t, tc.status, tc.challenges)
			c := transport.NewClient(s.source(), transport.WithRefreshOn(http.StatusUnauthorized, http.StatusForbidden))

			resp, err := c.Get(s.srv.URL)
			require.NoError(t, err)
			body := readAll(t, resp)
			assert.Equal(t, tc.status, resp.StatusCode)
			assert.Equal(t, "denied", body, "the answer is returned untouched")
			assert.Equal(t, tc.challenges, resp.Header.Values("WWW-Authenticate"))
			assert.Zero(t, s.calls.Load(), "endpoint calls")
			assert.Equal(t, int64(1), s.requests.Load(), "requests")
		})
	}
}

func TestChallengeForAnotherSchemeIsPassedThrough(t *testing.T) {
	for _, challenges := range [][]string{
		{`Basic realm="api"`},
		{`Digest realm="api", qop="auth", nonce="abc", opaque="def"`},
		{`Basic realm="api", Digest realm="api", nonce="abc"`},
		{`Basic realm="api"`, `Negotiate`},
	} {
		t.Run(challenges[0], func(t *testing.T) {
			s := newChallengeServer(t, http.StatusUnauthorized, challenges)
			c := transport.NewClient(s.source())

			resp, err := c.Get(s.srv.URL)
			require.NoError(t, err)
			body := readAll(t, resp)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Equal(t, "denied", body)
			assert.Equal(t, challenges, resp.Header.Values("WWW-Authenticate"))
			assert.Zero(t, s.calls.Load(), "endpoint calls")
			assert.Equal(t, int64(1), s.requests.Load(), "requests")
		})
	}
}

func TestBearerChallengeOrNoChallengeTriggersRefresh(t *testing.T) {
	for _, tc := range []struct {
		name       string
		challenges []string
	}{
		{"no WWW-Authenticate", nil},
		{"bare Bearer", []string{`Bearer`}},
		{"Bearer realm", []string{`Bearer realm="api"`}},
		{"invalid_token", []string{`Bearer error="invalid_token", error_description="expired"`}},
		{"lower-case scheme", []string{`bearer error="invalid_token"`}},
		{"Basic and Bearer", []string{`Basic realm="api", Bearer error="invalid_token"`}},
		{"unreadable", []string{`@@@`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newChallengeServer(t, http.StatusUnauthorized, tc.challenges)
			c := transport.NewClient(s.source())

			resp, err := c.Get(s.srv.URL)
			require.NoError(t, err)
			readAll(t, resp)
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, int64(1), s.calls.Load(), "endpoint calls")
			assert.Equal(t, int64(2), s.requests.Load(), "requests: original + replay")
		})
	}
}
