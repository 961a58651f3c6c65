package dpop_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

// testKeys returns one key of each kind a Prover accepts, named by the
// algorithm it signs with. The RSA key is made once: it is slow.
func testKeys(t *testing.T) map[string]crypto.Signer {
	t.Helper()
	ec, err := dpop.GenerateKey()
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return map[string]crypto.Signer{"ES256": ec, "RS256": rsaKey(t), "EdDSA": ed}
}

var rsaOnce = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func rsaKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsaOnce()
	require.NoError(t, err)
	return k
}

func newProver(t *testing.T, opts ...dpop.Option) *dpop.Prover {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p, err := dpop.NewProver(key, opts...)
	require.NoError(t, err)
	return p
}

// parsedProof is a proof taken apart and its signature checked with the
// key in its own header.
type parsedProof struct {
	header jose.Header
	claims map[string]any
}

// parseProof parses proof as a server would, with go-jose, and checks its
// signature with the JWK of its header.
func parseProof(t *testing.T, proof string) parsedProof {
	t.Helper()
	jws, err := jose.ParseSignedCompact(proof, []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA})
	require.NoError(t, err)
	require.Len(t, jws.Signatures, 1)
	h := jws.Signatures[0].Protected
	require.NotNil(t, h.JSONWebKey, "jwk header")
	payload, err := jws.Verify(h.JSONWebKey)
	require.NoError(t, err, "signature checked with the embedded jwk")
	var c map[string]any
	d := json.NewDecoder(strings.NewReader(string(payload)))
	d.UseNumber()
	require.NoError(t, d.Decode(&c))
	return parsedProof{header: h, claims: c}
}

// rawHeader returns the decoded JSON of a proof's protected header.
func rawHeader(t *testing.T, proof string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(proof, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	require.NoError(t, err)
	var h map[string]any
	require.NoError(t, json.Unmarshal(b, &h))
	return h
}

// response returns a response to a GET of rawURL carrying header.
func response(t *testing.T, status int, rawURL string, header http.Header) *http.Response {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{
		StatusCode: status,
		Header:     header,
		Body:       io.NopCloser(strings.NewReader("")),
		Request:    &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}},
	}
}

func nonceResponse(t *testing.T, rawURL, nonce string) *http.Response {
	t.Helper()
	h := http.Header{}
	h.Set(dpop.NonceHeaderName, nonce)
	return response(t, http.StatusOK, rawURL, h)
}

// fixedClock returns a clock that always reads the Unix time sec.
func fixedClock(sec int64) func() time.Time {
	return func() time.Time { return time.Unix(sec, 0) }
}

// proofHasNonce reports whether proof's nonce claim is nonce. It does not
// check the signature.
func proofHasNonce(proof, nonce string) bool {
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var c struct{ Nonce string }
	return json.Unmarshal(b, &c) == nil && c.Nonce == nonce
}
