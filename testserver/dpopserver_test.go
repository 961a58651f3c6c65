package testserver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

// dpopClient drives a DPoP server by hand: every request carries a proof
// of its Prover, and it learns the server's nonce from every answer.
type dpopClient struct {
	t   *testing.T
	srv *Server
	p   *dpop.Prover
}

func newDPoPClient(t *testing.T, srv *Server) *dpopClient {
	t.Helper()
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	p, err := dpop.NewProver(key, dpop.WithClock(srv.Clock().Now))
	require.NoError(t, err)
	return &dpopClient{t: t, srv: srv, p: p}
}

// do sends req with a proof for accessToken (and no proof if withProof is
// false), and returns the answer, its body read.
func (c *dpopClient) do(req *http.Request, accessToken string, withProof bool) (*http.Response, map[string]any) {
	c.t.Helper()
	if withProof {
		proof, err := c.p.Proof(req.Method, req.URL.String(), accessToken)
		require.NoError(c.t, err)
		req.Header.Set(dpop.HeaderName, proof)
	}
	resp, err := c.srv.Client().Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	c.p.ObserveResponse(resp)
	b, err := io.ReadAll(resp.Body)
	require.NoError(c.t, err)
	var m map[string]any
	json.Unmarshal(b, &m)
	return resp, m
}

// login makes a password grant with a proof, after the nonce dance.
func (c *dpopClient) login() tokenResponse {
	c.t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {DemoUser}, "password": {DemoPassword}, "client_id": {PublicClientID}}
	for range 2 {
		req, err := http.NewRequest(http.MethodPost, c.srv.URL()+PathToken, strings.NewReader(form.Encode()))
		require.NoError(c.t, err)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body := c.do(req, "", true)
		if resp.StatusCode == http.StatusOK {
			b, _ := json.Marshal(body)
			var tr tokenResponse
			require.NoError(c.t, json.Unmarshal(b, &tr))
			return tr
		}
		require.True(c.t, dpop.IsNonceError(resp.StatusCode, resp.Header, body["error"].(string)), "%d %v", resp.StatusCode, body)
	}
	c.t.Fatal("no token after the nonce dance")
	return tokenResponse{}
}

func (c *dpopClient) me(scheme, token string, withProof bool) (*http.Response, map[string]any) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.srv.URL()+PathMe, nil)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", scheme+" "+token)
	return c.do(req, token, withProof)
}

func newDPoPServer(t *testing.T) *Server {
	return NewTest(t, Config{DPoP: true, Clock: NewClock(time.Now())})
}

func TestDPoPServerBindsTheTokensOfALoginWithAProof(t *testing.T) {
	srv := newDPoPServer(t)
	c := newDPoPClient(t, srv)
	tr := c.login()
	assert.Equal(t, "DPoP", tr.TokenType)
	claims, err := srv.ParseAccessToken(tr.AccessToken)
	require.NoError(t, err)
	require.NotNil(t, claims.Confirmation)
	assert.Equal(t, c.p.Thumbprint(), claims.Confirmation.JKT)

	resp, body := c.me("DPoP", tr.AccessToken, true)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	assert.NotEmpty(t, resp.Header.Get(dpop.NonceHeaderName), "every answer carries the nonce")
}

func TestDPoPServerRefusesATokenRequestWithoutProof(t *testing.T) {
	srv := newDPoPServer(t)
	form := url.Values{"grant_type": {"password"}, "username": {DemoUser}, "password": {DemoPassword}, "client_id": {PublicClientID}}
	resp, err := srv.Client().PostForm(srv.URL()+PathToken, form)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, "invalid_dpop_proof", body["error"])
	assert.Zero(t, srv.Stats().Logins)
}

func TestDPoPServerResourceRefusesABoundTokenWithoutItsProof(t *testing.T) {
	srv := newDPoPServer(t)
	c := newDPoPClient(t, srv)
	tr := c.login()

	t.Run("as a bearer token", func(t *testing.T) {
		resp, _ := c.me("Bearer", tr.AccessToken, false)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
	t.Run("without a proof", func(t *testing.T) {
		resp, body := c.me("DPoP", tr.AccessToken, false)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, "invalid_dpop_proof", body["error"])
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `DPoP error="invalid_dpop_proof"`)
	})
	t.Run("with a proof of another key", func(t *testing.T) {
		thief := newDPoPClient(t, srv)
		resp, _ := thief.me("DPoP", tr.AccessToken, true) // learns the nonce
		require.True(t, dpop.IsNonceChallenge(resp))
		resp, body := thief.me("DPoP", tr.AccessToken, true)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Equal(t, "invalid_token", body["error"])
	})
	t.Run("with a stale nonce", func(t *testing.T) {
		srv.ExpireDPoPNonces()
		resp, _ := c.me("DPoP", tr.AccessToken, true)
		assert.True(t, dpop.IsNonceChallenge(resp), "a use_dpop_nonce challenge with the new nonce")
		resp, body := c.me("DPoP", tr.AccessToken, true)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%v", body)
	})
}

func TestDPoPServerRefusesAnUnboundTokenWithTheDPoPScheme(t *testing.T) {
	srv := newDPoPServer(t)
	c := newDPoPClient(t, srv)
	tok, err := srv.IssueToken(DemoUser)
	require.NoError(t, err)
	resp, body := c.me("DPoP", tok.AccessToken, true)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, "invalid_token", body["error"])
	resp, body = c.me("Bearer", tok.AccessToken, false)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "an unbound token stays a bearer token: %v", body)
}

func TestDPoPServerWithoutDPoPIgnoresProofsAndSendsNoNonce(t *testing.T) {
	srv := NewTest(t, Config{})
	c := newDPoPClient(t, srv)
	tok, err := srv.IssueToken(DemoUser)
	require.NoError(t, err)
	resp, _ := c.me("Bearer", tok.AccessToken, true)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, resp.Header.Get(dpop.NonceHeaderName))
}
