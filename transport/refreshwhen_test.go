package transport_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// zitadelLike answers 403 to an expired token on its userinfo path, 403 to
// every request on /admin (a genuine permission denial), and 401 elsewhere.
func zitadelLike(t *testing.T, a *authServer) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		valid := r.Header.Get("Authorization") == "Bearer "+a.currentAccess()
		switch {
		case r.URL.Path == "/admin":
			w.WriteHeader(http.StatusForbidden)
		case !valid && r.URL.Path == "/oidc/v1/userinfo":
			w.WriteHeader(http.StatusForbidden)
		case !valid:
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRefreshWhenHealsA403ForAnExpiredTokenOnly(t *testing.T) {
	a := newAuthServer(t)
	srv := zitadelLike(t, a)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))),
		transport.WithRefreshWhen(func(resp *http.Response) bool {
			if resp.StatusCode == http.StatusForbidden && resp.Request.URL.Path == "/oidc/v1/userinfo" {
				return true
			}
			return transport.TokenRejected(resp)
		}))

	resp, err := c.Get(srv.URL + "/oidc/v1/userinfo")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the 403 of an expired token is healed")
	assert.Equal(t, int64(1), a.calls.Load(), "refreshes")

	resp, err = c.Get(srv.URL + "/admin")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, int64(1), a.calls.Load(), "a permission denial costs no refresh")

	a.expireAccess()
	resp, err = c.Get(srv.URL + "/other")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "a 401 still heals through TokenRejected")
	assert.Equal(t, int64(2), a.calls.Load(), "refreshes")
}

func TestRefreshWhenReplacesTheDefaultRule(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(stale(a))),
		transport.WithRefreshWhen(func(*http.Response) bool { return false }))
	resp, err := c.Get(a.url("/echo"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

func TestTokenRejectedIsTheDefaultRule(t *testing.T) {
	bearer, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
	bearer.Header.Set("Authorization", "Bearer t")
	dpop, _ := http.NewRequest(http.MethodGet, "https://api.example/", nil)
	dpop.Header.Set("Authorization", "DPoP t")
	for _, c := range []struct {
		name      string
		status    int
		challenge string
		req       *http.Request
		want      bool
	}{
		{"401 without challenge", 401, "", bearer, true},
		{"401 invalid_token", 401, `Bearer error="invalid_token"`, bearer, true},
		{"401 insufficient_scope", 401, `Bearer error="insufficient_scope"`, bearer, false},
		{"401 Basic only", 401, `Basic realm="x"`, bearer, false},
		{"401 DPoP challenge to a DPoP token", 401, `DPoP error="invalid_token"`, dpop, true},
		{"401 without request", 401, `Bearer error="invalid_token"`, nil, true},
		{"403", 403, "", bearer, false},
		{"200", 200, "", bearer, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: c.status, Header: http.Header{}, Request: c.req}
			if c.challenge != "" {
				resp.Header.Set("WWW-Authenticate", c.challenge)
			}
			assert.Equal(t, c.want, transport.TokenRejected(resp))
		})
	}
	assert.False(t, transport.TokenRejected(nil))
}
