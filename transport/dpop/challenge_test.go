package dpop_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

func TestIsNonceChallengeRecognisesAResourceServersDemand(t *testing.T) {
	tests := []struct {
		name   string
		status int
		www    []string
		nonce  string
		want   bool
	}{
		{"RFC 9449 §9 example", 401, []string{`DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`}, "eyJ7S_zG.eyJH0-Z.HX4w-7v", true},
		{"token value", 401, []string{`DPoP error=use_dpop_nonce`}, "n", true},
		{"scheme in another case", 401, []string{`dpop ERROR="use_dpop_nonce"`}, "n", true},
		{"spaces around =", 401, []string{`DPoP error = "use_dpop_nonce"`}, "n", true},
		{"error after another parameter", 401, []string{`DPoP algs="ES256 RS256", error="use_dpop_nonce"`}, "n", true},
		{"after a Bearer challenge", 401, []string{`Bearer realm="api", error="invalid_token", DPoP algs="ES256", error="use_dpop_nonce"`}, "n", true},
		{"in a second header field", 401, []string{`Bearer realm="api"`, `DPoP error="use_dpop_nonce"`}, "n", true},
		{"quoted comma in an earlier parameter", 401, []string{`DPoP realm="a, error=x", error="use_dpop_nonce"`}, "n", true},
		{"Bearer challenge with that error", 401, []string{`Bearer error="use_dpop_nonce"`}, "n", false},
		{"DPoP challenge, another error", 401, []string{`DPoP error="invalid_token"`}, "n", false},
		{"DPoP challenge, error in another challenge", 401, []string{`DPoP algs="ES256", Bearer error="use_dpop_nonce"`}, "n", false},
		{"no nonce header", 401, []string{`DPoP error="use_dpop_nonce"`}, "", false},
		{"invalid nonce header", 401, []string{`DPoP error="use_dpop_nonce"`}, "a b", false},
		{"403", 403, []string{`DPoP error="use_dpop_nonce"`}, "n", false},
		{"400", 400, []string{`DPoP error="use_dpop_nonce"`}, "n", false},
		{"no challenge", 401, nil, "n", false},
		{"token68", 401, []string{`DPoP dXNlX2Rwb3Bfbm9uY2U=`}, "n", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.www {
				h.Add("WWW-Authenticate", v)
			}
			if tc.nonce != "" {
				h.Set(dpop.NonceHeaderName, tc.nonce)
			}
			resp := response(t, tc.status, "https://rs.example/", h)
			assert.Equal(t, tc.want, dpop.IsNonceChallenge(resp))
		})
	}
	assert.False(t, dpop.IsNonceChallenge(nil))
}

func TestIsNonceChallengeReadsABoundedHeader(t *testing.T) {
	h := http.Header{}
	h.Add("WWW-Authenticate", "Bearer realm=\""+strings.Repeat("x", 9000)+"\"")
	h.Add("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
	h.Set(dpop.NonceHeaderName, "n")
	assert.False(t, dpop.IsNonceChallenge(response(t, 401, "https://rs.example/", h)),
		"a challenge beyond the first 8 KiB is not read")
}

func TestIsNonceErrorRecognisesATokenEndpointsDemand(t *testing.T) {
	withNonce := http.Header{}
	withNonce.Set(dpop.NonceHeaderName, "eyJ7S_zG.eyJH0-Z.HX4w-7v")
	tests := []struct {
		name   string
		status int
		header http.Header
		code   string
		want   bool
	}{
		{"RFC 9449 §8", 400, withNonce, "use_dpop_nonce", true},
		{"no nonce header", 400, http.Header{}, "use_dpop_nonce", false},
		{"another error", 400, withNonce, "invalid_grant", false},
		{"invalid_dpop_proof", 400, withNonce, "invalid_dpop_proof", false},
		{"not a 400", 401, withNonce, "use_dpop_nonce", false},
		{"success", 200, withNonce, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, dpop.IsNonceError(tc.status, tc.header, tc.code))
		})
	}
}
