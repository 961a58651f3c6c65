package dpop_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

func proofNonce(t *testing.T, p *dpop.Prover, rawURL string) any {
	t.Helper()
	proof, err := p.Proof("GET", rawURL, "")
	require.NoError(t, err)
	return parseProof(t, proof).claims["nonce"]
}

func TestProofCarriesNoNonceUntilOneIsSeen(t *testing.T) {
	p := newProver(t)
	assert.Nil(t, proofNonce(t, p, "https://as.example/token"))
	p.ObserveResponse(response(t, http.StatusOK, "https://as.example/token", nil))
	assert.Nil(t, proofNonce(t, p, "https://as.example/token"), "a response without DPoP-Nonce")
}

func TestProofCarriesTheNonceOfItsOwnOrigin(t *testing.T) {
	p := newProver(t)
	p.ObserveResponse(nonceResponse(t, "https://as.example/oauth/token", "as-nonce"))
	p.ObserveResponse(nonceResponse(t, "https://rs.example/api", "rs-nonce"))

	tests := []struct {
		url  string
		want any
	}{
		{"https://as.example/oauth/token", "as-nonce"},
		{"https://as.example/other/path?q=1", "as-nonce"},
		{"https://AS.example:443/token", "as-nonce"},
		{"https://rs.example/api/items", "rs-nonce"},
		{"http://as.example/token", nil},       // another scheme
		{"https://as.example:8443/token", nil}, // another port
		{"https://sub.as.example/token", nil},  // another host
		{"https://other.example/", nil},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, proofNonce(t, p, tc.url), "nonce for %s", tc.url)
		want, _ := tc.want.(string)
		assert.Equal(t, want, p.Nonce(tc.url), "Nonce(%s)", tc.url)
	}
}

func TestObserveResponseKeepsTheLatestNonce(t *testing.T) {
	p := newProver(t)
	p.ObserveResponse(nonceResponse(t, "https://rs.example/a", "n1"))
	p.ObserveResponse(response(t, http.StatusOK, "https://rs.example/b", nil)) // no nonce: keep n1
	assert.Equal(t, "n1", proofNonce(t, p, "https://rs.example/c"))
	p.ObserveResponse(nonceResponse(t, "https://rs.example/b", "n2"))
	assert.Equal(t, "n2", proofNonce(t, p, "https://rs.example/c"))
}

func TestObserveResponseUsesTheOriginOfTheFinalRequest(t *testing.T) {
	// After a redirect, resp.Request is the last request: its origin owns
	// the nonce.
	p := newProver(t)
	resp := nonceResponse(t, "https://rs2.example/landing", "n")
	resp.Request.Response = &http.Response{StatusCode: http.StatusFound}
	p.ObserveResponse(resp)
	assert.Equal(t, "n", p.Nonce("https://rs2.example/"))
	assert.Empty(t, p.Nonce("https://rs1.example/"))
}

func TestObserveResponseIgnoresWhatIsNotANonce(t *testing.T) {
	tests := map[string][]string{
		"empty":        {""},
		"space":        {"a b"},
		"double quote": {`a"b`},
		"backslash":    {`a\b`},
		"control":      {"a\x01b"},
		"non-ASCII":    {"café"},
		"too long":     {strings.Repeat("n", 1025)},
		"two values":   {"n1", "n2"},
	}
	for name, values := range tests {
		t.Run(name, func(t *testing.T) {
			p := newProver(t)
			p.ObserveResponse(nonceResponse(t, "https://rs.example/", "old"))
			h := http.Header{}
			for _, v := range values {
				h.Add(dpop.NonceHeaderName, v)
			}
			p.ObserveResponse(response(t, http.StatusOK, "https://rs.example/", h))
			assert.Equal(t, "old", p.Nonce("https://rs.example/"))
		})
	}
}

func TestObserveResponseAcceptsTheLongestNonce(t *testing.T) {
	p := newProver(t)
	long := strings.Repeat("n", 1024)
	p.ObserveResponse(nonceResponse(t, "https://rs.example/", long))
	assert.Equal(t, long, proofNonce(t, p, "https://rs.example/"))
}

func TestObserveResponseIgnoresResponsesWithoutRequest(t *testing.T) {
	p := newProver(t)
	p.ObserveResponse(nil)
	resp := nonceResponse(t, "https://rs.example/", "n")
	resp.Request = nil
	p.ObserveResponse(resp)
	assert.Empty(t, p.Nonce("https://rs.example/"))
}

func TestNonceCacheForgetsTheLeastRecentlyUsedOriginBeyondItsBound(t *testing.T) {
	p := newProver(t)
	p.ObserveResponse(nonceResponse(t, "https://as.example/token", "as-nonce"))
	for i := range 1000 {
		// A hostile server redirecting through many hosts; the
		// authorization server stays in use.
		p.ObserveResponse(nonceResponse(t, fmt.Sprintf("https://h%d.evil.example/", i), "evil"))
		if i%10 == 0 {
			require.Equal(t, "as-nonce", p.Nonce("https://as.example/"), "after %d origins", i)
		}
	}
	assert.Equal(t, "as-nonce", p.Nonce("https://as.example/"))
	assert.Equal(t, "evil", p.Nonce("https://h999.evil.example/"))
	assert.Empty(t, p.Nonce("https://h0.evil.example/"), "the oldest origins are forgotten")
	assert.LessOrEqual(t, dpop.CachedOrigins(p), 64)
}
