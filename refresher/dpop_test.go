package refresher_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/autorefresh/autorefresh/transport/dpop"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// dpopServer starts a test server that requires DPoP, on a frozen clock.
func dpopServer(t *testing.T) *testserver.Server {
	t.Helper()
	return testserver.NewTest(t, testserver.Config{DPoP: true, Clock: testserver.NewClock(time.Now())})
}

// newDPoPProver returns a Prover with a new key, on the server's clock.
func newDPoPProver(t *testing.T, srv *testserver.Server) *dpop.Prover {
	t.Helper()
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	p, err := dpop.NewProver(key, dpop.WithClock(srv.Clock().Now))
	require.NoError(t, err)
	return p
}

// dpopEndpoint is the public client of srv, with p.
func dpopEndpoint(srv *testserver.Server, p *dpop.Prover) *refresher.OAuth2Endpoint {
	return &refresher.OAuth2Endpoint{
		Config: &oauth2.Config{
			ClientID: testserver.PublicClientID,
			Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
		},
		DPoP: p,
	}
}

// tokenRequests counts the requests to the token endpoint answered status.
func tokenRequests(srv *testserver.Server, status int) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Path == testserver.PathToken && r.Status == status {
			n++
		}
	}
	return n
}

func TestOAuth2EndpointDPoPRetriesOnceOnUseDPoPNonceAndGetsADPoPToken(t *testing.T) {
	srv := dpopServer(t)
	p := newDPoPProver(t, srv)
	tok, err := srv.IssueToken(testserver.DemoUser)
	require.NoError(t, err)

	got, err := dpopEndpoint(srv, p).Refresh(context.Background(), tok) // p knows no nonce yet
	require.NoError(t, err)
	assert.Equal(t, "DPoP", got.TokenType)
	assert.Equal(t, 1, tokenRequests(srv, http.StatusBadRequest), "one use_dpop_nonce answer")
	assert.Equal(t, 1, tokenRequests(srv, http.StatusOK), "one retry, which succeeded")
	assert.Equal(t, int64(1), srv.Stats().Rotations)
	claims, err := srv.ParseAccessToken(got.AccessToken)
	require.NoError(t, err)
	require.NotNil(t, claims.Confirmation)
	assert.Equal(t, p.Thumbprint(), claims.Confirmation.JKT, "cnf.jkt")
}

func TestOAuth2EndpointDPoPSecondNonceDemandIsAFailureNotAnotherRetry(t *testing.T) {
	srv := dpopServer(t)
	p := newDPoPProver(t, srv)
	tok, err := srv.IssueToken(testserver.DemoUser)
	require.NoError(t, err)
	// Each answer hands out a nonce that the next request finds stale.
	base := roundTrip(func(r *http.Request) (*http.Response, error) {
		resp, err := srv.Client().Transport.RoundTrip(r)
		srv.ExpireDPoPNonces()
		return resp, err
	})
	ep := dpopEndpoint(srv, p)
	ep.HTTPClient = &http.Client{Transport: base}

	_, err = ep.Refresh(context.Background(), tok)
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, dpop.ErrorUseNonce, re.Code)
	assert.Equal(t, 2, tokenRequests(srv, http.StatusBadRequest), "the request and one retry")
	assert.Zero(t, srv.Stats().Rotations)
}

func TestDPoPStolenRefreshTokenPresentedWithAnotherKeyIsRefused(t *testing.T) {
	srv := dpopServer(t)
	owner := newDPoPProver(t, srv)
	issued, err := srv.IssueToken(testserver.DemoUser)
	require.NoError(t, err)
	bound, err := dpopEndpoint(srv, owner).Refresh(context.Background(), issued)
	require.NoError(t, err)

	thief := newDPoPProver(t, srv)
	_, err = dpopEndpoint(srv, thief).Refresh(context.Background(), bound)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "invalid_grant", re.Code)

	// The owner's session lives on: the thief's attempt revoked nothing.
	next, err := dpopEndpoint(srv, owner).Refresh(context.Background(), bound)
	require.NoError(t, err)
	assert.Equal(t, "DPoP", next.TokenType)
}

func TestDPoPRestartWithAPersistedKeyContinuesTheSession(t *testing.T) {
	srv := dpopServer(t)
	dir := t.TempDir()
	tokenPath, keyPath := filepath.Join(dir, "token.json"), filepath.Join(dir, "dpop-key.pem")
	ctx := context.Background()
	get := func(c *http.Client) int {
		t.Helper()
		resp, err := c.Get(srv.URL() + testserver.PathMe)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	// First process: a new key, kept next to the token.
	p1 := newDPoPProver(t, srv)
	pem, err := p1.MarshalKey()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyPath, pem, 0o600))
	fs1 := refresher.NewFileStore(tokenPath)
	issued, err := srv.IssueToken(testserver.DemoUser)
	require.NoError(t, err)
	bound, err := dpopEndpoint(srv, p1).Refresh(ctx, issued)
	require.NoError(t, err)
	src1 := refresher.NewSource(dpopEndpoint(srv, p1), refresher.WithStore(fs1), refresher.WithToken(bound),
		refresher.WithClock(srv.Clock().Now))
	assert.Equal(t, http.StatusOK, get(transport.NewClient(src1, transport.WithDPoP(p1))))
	require.NoError(t, fs1.Close())

	// Second process: the key and the token from disk, after the token expired.
	srv.Clock().Advance(testserver.DefaultAccessTTL + time.Minute)
	rotations := srv.Stats().Rotations
	data, err := os.ReadFile(keyPath)
	require.NoError(t, err)
	p2, err := dpop.LoadProver(data, dpop.WithClock(srv.Clock().Now))
	require.NoError(t, err)
	require.Equal(t, p1.Thumbprint(), p2.Thumbprint())
	fs2 := refresher.NewFileStore(tokenPath)
	t.Cleanup(func() { fs2.Close() })
	src2 := refresher.NewSource(dpopEndpoint(srv, p2), refresher.WithStore(fs2), refresher.WithClock(srv.Clock().Now))

	assert.Equal(t, http.StatusOK, get(transport.NewClient(src2, transport.WithDPoP(p2))))
	assert.Equal(t, int64(1), srv.Stats().Rotations-rotations, "the bound refresh token was refreshed with the persisted key")
	stored, err := fs2.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, "DPoP", stored.TokenType, "the stored token keeps its type")
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
