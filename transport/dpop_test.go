package transport_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
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

// dpopSetup is a test server that requires DPoP, on a frozen clock, and a
// Prover and an endpoint that share that clock.
type dpopSetup struct {
	srv *testserver.Server
	p   *dpop.Prover
	ep  *refresher.OAuth2Endpoint
}

func newDPoPSetup(t *testing.T) *dpopSetup {
	t.Helper()
	srv := testserver.NewTest(t, testserver.Config{DPoP: true, Clock: testserver.NewClock(time.Now())})
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	p, err := dpop.NewProver(key, dpop.WithClock(srv.Clock().Now))
	require.NoError(t, err)
	ep := &refresher.OAuth2Endpoint{
		Config: &oauth2.Config{
			ClientID: testserver.PublicClientID,
			Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
		},
		DPoP: p,
	}
	return &dpopSetup{srv: srv, p: p, ep: ep}
}

// boundToken returns a token bound to d.p: the server issues a family, and
// its first refresh with a proof binds it.
func (d *dpopSetup) boundToken(t *testing.T) *oauth2.Token {
	t.Helper()
	tok, err := d.srv.IssueToken(testserver.DemoUser)
	require.NoError(t, err)
	bound, err := d.ep.Refresh(context.Background(), tok)
	require.NoError(t, err)
	require.Equal(t, "DPoP", bound.TokenType)
	return bound
}

// countRequests returns the requests to path answered with status (any status if 0).
func countRequests(srv *testserver.Server, path string, status int) int {
	n := 0
	for _, r := range srv.Requests() {
		if r.Path == path && (status == 0 || r.Status == status) {
			n++
		}
	}
	return n
}

func TestDPoPRequestCarriesTheDPoPSchemeAndAProofOfItsURL(t *testing.T) {
	d := newDPoPSetup(t)
	tok := d.boundToken(t)
	var seen *http.Request
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = r
		return d.srv.Client().Transport.RoundTrip(r)
	})
	c := transport.NewClient(refresher.NewSource(d.ep, refresher.WithToken(tok), refresher.WithClock(d.srv.Clock().Now)),
		transport.WithDPoP(d.p), transport.WithBase(base))

	resp, err := c.Get(d.srv.URL() + testserver.PathMe + "?q=1")
	require.NoError(t, err)
	readAll(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "DPoP "+tok.AccessToken, seen.Header.Get("Authorization"))
	claims := proofClaims(t, seen.Header.Get(dpop.HeaderName))
	assert.Equal(t, "GET", claims["htm"])
	assert.Equal(t, d.srv.URL()+testserver.PathMe, claims["htu"], "htu is the attempt's URL without its query")
	assert.Equal(t, dpop.AccessTokenHash(tok.AccessToken), claims["ath"])
	assert.NotEmpty(t, claims["nonce"], "the nonce learned at the token endpoint")
}

func TestDPoPNonceChallengeIsRetriedOnceWithoutARefresh(t *testing.T) {
	d := newDPoPSetup(t)
	tok := d.boundToken(t)
	c := transport.NewClient(refresher.NewSource(d.ep, refresher.WithToken(tok), refresher.WithClock(d.srv.Clock().Now)),
		transport.WithDPoP(d.p))
	rotations := d.srv.Stats().Rotations

	d.srv.ExpireDPoPNonces()
	body := strings.Repeat("a DPoP body, replayed for the nonce. ", 100)
	req, err := http.NewRequest(http.MethodPost, d.srv.URL()+testserver.PathEcho, io.NopCloser(strings.NewReader(body))) // no GetBody
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	b := readAll(t, resp)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)

	var echo testserver.EchoResponse
	require.NoError(t, json.Unmarshal([]byte(b), &echo))
	sum := sha256.Sum256([]byte(body))
	assert.Equal(t, hex.EncodeToString(sum[:]), echo.SHA256, "the retry carries the whole body")
	assert.Equal(t, 2, countRequests(d.srv, testserver.PathEcho, 0), "the request and one retry")
	assert.Equal(t, 1, countRequests(d.srv, testserver.PathEcho, http.StatusUnauthorized), "one use_dpop_nonce answer")
	assert.Equal(t, rotations, d.srv.Stats().Rotations, "no refresh")
}

// nonceDemander answers every request with a DPoP nonce challenge.
type nonceDemander struct{ calls atomic.Int32 }

func (n *nonceDemander) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	calls := n.calls.Add(1)
	h := http.Header{}
	h.Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="nonce"`)
	h.Set(dpop.NonceHeaderName, "nonce-"+string(rune('a'+calls)))
	return &http.Response{StatusCode: http.StatusUnauthorized, Header: h, Body: http.NoBody, Request: r}, nil
}

func TestDPoPNonceDemandedAgainIsReturnedWithoutAThirdTryOrARefresh(t *testing.T) {
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	p, err := dpop.NewProver(key)
	require.NoError(t, err)
	src := &countingSource{tok: &oauth2.Token{AccessToken: "at", TokenType: "DPoP"}}
	base := &nonceDemander{}
	c := transport.NewClient(src, transport.WithDPoP(p), transport.WithBase(base))

	resp, err := c.Get("http://127.0.0.1:1/api")
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Equal(t, int32(2), base.calls.Load(), "the request and one retry")
	assert.Zero(t, src.refreshes.Load(), "refreshes")
	assert.Equal(t, "nonce-c", p.Nonce("http://127.0.0.1:1/"), "the last answer's nonce is remembered")
}

func TestDPoPTokenWithoutProverIsRefusedAndNothingIsSent(t *testing.T) {
	base := &nonceDemander{}
	src := &countingSource{tok: &oauth2.Token{AccessToken: "at", TokenType: "dpop"}}
	c := transport.NewClient(src, transport.WithBase(base))
	body := &closeCounter{Reader: strings.NewReader("x")}

	req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/api", body)
	require.NoError(t, err)
	_, err = c.Do(req)
	require.ErrorIs(t, err, transport.ErrDPoPWithoutProver)
	assert.Zero(t, base.calls.Load(), "requests sent")
	assert.Equal(t, int32(1), body.closes.Load(), "the caller's body is closed")
}

func TestDPoPStormAfterExpiryMakesOneRefreshAndNoFailures(t *testing.T) {
	d := newDPoPSetup(t)
	tok := d.boundToken(t)
	src := refresher.NewSource(d.ep, refresher.WithToken(tok), refresher.WithClock(d.srv.Clock().Now))
	c := transport.NewClient(src, transport.WithDPoP(d.p), transport.WithBase(d.srv.Client().Transport))
	rotations := d.srv.Stats().Rotations

	d.srv.Clock().Advance(testserver.DefaultAccessTTL + time.Minute) // the token and the nonce have expired
	const n = 100
	var (
		wg       sync.WaitGroup
		failures atomic.Int32
		start    = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start
			resp, err := c.Get(d.srv.URL() + testserver.PathMe)
			if err != nil {
				failures.Add(1)
				t.Error(err)
				return
			}
			b := readAll(t, resp)
			if resp.StatusCode != http.StatusOK {
				failures.Add(1)
				t.Errorf("status %d: %s", resp.StatusCode, b)
			}
		})
	}
	close(start)
	wg.Wait()
	assert.Zero(t, failures.Load(), "failures")
	assert.Equal(t, int64(1), d.srv.Stats().Rotations-rotations, "refreshes")
}

// countingSource serves one token and counts refreshes, which fail.
type countingSource struct {
	tok       *oauth2.Token
	refreshes atomic.Int32
}

func (s *countingSource) Token(context.Context) (*oauth2.Token, error) { return s.tok, nil }
func (s *countingSource) Refresh(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	s.refreshes.Add(1)
	return nil, errors.New("no refresh here")
}

// closeCounter is a request body that counts its Close calls.
type closeCounter struct {
	io.Reader
	closes atomic.Int32
}

func (c *closeCounter) Close() error { c.closes.Add(1); return nil }

// proofClaims returns the claims of a proof, unverified.
func proofClaims(t *testing.T, proof string) map[string]any {
	t.Helper()
	parts := strings.Split(proof, ".")
	require.Len(t, parts, 3, "a compact JWS")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}
