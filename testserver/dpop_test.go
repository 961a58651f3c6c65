package testserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

// dpopEpoch is the start of the verifier tests' frozen clocks.
var dpopEpoch = time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC)

const (
	tokenURL    = "https://as.example/oauth/token"
	resourceURL = "https://rs.example/api/me"
	accessToken = "access.token.value"
)

// dpopFixture is a verifier and a client key, both on one frozen clock.
type dpopFixture struct {
	t      *testing.T
	clock  *Clock
	v      *dpopVerifier
	key    *ecdsa.PrivateKey
	prover *dpop.Prover
}

func newDPoPFixture(t *testing.T, set dpopSettings) *dpopFixture {
	t.Helper()
	clock := NewClock(dpopEpoch)
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	p, err := dpop.NewProver(key, dpop.WithClock(clock.Now))
	require.NoError(t, err)
	return &dpopFixture{t: t, clock: clock, v: newDPoPVerifier(clock.Now, set), key: key, prover: p}
}

// observeNonce hands the verifier's current nonce to the prover, as a
// response from rawURL's server would.
func (f *dpopFixture) observeNonce(rawURL string) {
	f.t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(f.t, err)
	h := http.Header{}
	h.Set("DPoP-Nonce", f.v.nonce())
	f.prover.ObserveResponse(&http.Response{StatusCode: http.StatusOK, Header: h, Request: &http.Request{URL: u}})
}

// proof returns a Prover's proof.
func (f *dpopFixture) proof(method, rawURL, at string) string {
	f.t.Helper()
	p, err := f.prover.Proof(method, rawURL, at)
	require.NoError(f.t, err)
	return p
}

func (f *dpopFixture) check(proof, method, rawURL, at string) (string, error) {
	f.t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(f.t, err)
	return f.v.verifyProof(proof, method, u, at)
}

// claims returns valid claims for a request, with the verifier's nonce.
func (f *dpopFixture) claims(method, rawURL, at string) map[string]any {
	c := map[string]any{
		"jti": rand.Text(), "htm": method, "htu": rawURL,
		"iat": f.clock.Now().Unix(), "nonce": f.v.nonce(),
	}
	if at != "" {
		c["ath"] = dpop.AccessTokenHash(at)
	}
	return c
}

// forge signs claims with go-jose as a hostile or buggy client would:
// header is added to the protected header (typ dpop+jwt unless header
// sets it, nil to leave it out), and the public JWK of key is embedded if
// embed is set.
func forge(t *testing.T, alg jose.SignatureAlgorithm, key any, embed bool, header map[jose.HeaderKey]any, claims map[string]any) string {
	t.Helper()
	extra := map[jose.HeaderKey]any{jose.HeaderType: "dpop+jwt"}
	for k, v := range header {
		if v == nil {
			delete(extra, k)
		} else {
			extra[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, &jose.SignerOptions{EmbedJWK: embed, ExtraHeaders: extra})
	require.NoError(t, err)
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	jws, err := signer.Sign(payload)
	require.NoError(t, err)
	s, err := jws.CompactSerialize()
	require.NoError(t, err)
	return s
}

// unsigned returns a proof with alg none.
func unsigned(t *testing.T, pub crypto.PublicKey, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(map[string]any{"alg": "none", "typ": "dpop+jwt", "jwk": jose.JSONWebKey{Key: pub}})
	require.NoError(t, err)
	c, err := json.Marshal(claims)
	require.NoError(t, err)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "."
}

func requireDPoPError(t *testing.T, err error, check dpopCheck, code string) {
	t.Helper()
	var de *dpopError
	require.True(t, errors.As(err, &de), "got %v, want a *dpopError (%s)", err, check)
	assert.Equal(t, check, de.check, "failed check (%s)", de.desc)
	assert.Equal(t, code, de.code())
}

func TestDPoPVerifierAcceptsAProversProofs(t *testing.T) {
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ec, err := dpop.GenerateKey()
	require.NoError(t, err)
	for _, key := range []crypto.Signer{ec, rsaKey, ed} {
		f := newDPoPFixture(t, dpopSettings{})
		p, err := dpop.NewProver(key, dpop.WithClock(f.clock.Now))
		require.NoError(t, err)
		f.prover = p
		t.Run(p.Algorithm(), func(t *testing.T) {
			f.observeNonce(tokenURL)
			f.observeNonce(resourceURL)

			jkt, err := f.check(f.proof("POST", tokenURL, ""), "POST", tokenURL, "")
			require.NoError(t, err, "token request")
			assert.Equal(t, p.Thumbprint(), jkt)

			jkt, err = f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL+"?page=2", accessToken)
			require.NoError(t, err, "resource request")
			assert.Equal(t, p.Thumbprint(), jkt)
		})
	}
}

func TestDPoPVerifierReadsMethodAndURLFromTheRequest(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	f.observeNonce(tokenURL)
	r := httptest.NewRequest("POST", tokenURL+"?ignored=1", strings.NewReader("grant_type=refresh_token"))
	r.Header.Set("DPoP", f.proof("POST", tokenURL, ""))
	jkt, err := f.v.verify(r, "")
	require.NoError(t, err)
	assert.Equal(t, f.prover.Thumbprint(), jkt)

	plain := httptest.NewRequest("POST", "http://as.example/oauth/token", nil) // no TLS: http
	plain.Header.Set("DPoP", f.proof("POST", tokenURL, ""))
	_, err = f.v.verify(plain, "")
	requireDPoPError(t, err, dpopCheckHTU, errInvalidDPoPProof)
}

func TestDPoPVerifierWantsExactlyOneDPoPHeader(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	f.observeNonce(tokenURL)
	r := httptest.NewRequest("POST", tokenURL, nil)
	_, err := f.v.verify(r, "")
	requireDPoPError(t, err, dpopCheckHeader, errInvalidDPoPProof)

	r.Header.Add("DPoP", f.proof("POST", tokenURL, ""))
	r.Header.Add("DPoP", f.proof("POST", tokenURL, ""))
	_, err = f.v.verify(r, "")
	requireDPoPError(t, err, dpopCheckHeader, errInvalidDPoPProof)
}

func TestDPoPVerifierDemandsANonceThenAcceptsIt(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	_, err := f.check(f.proof("POST", tokenURL, ""), "POST", tokenURL, "")
	requireDPoPError(t, err, dpopCheckNonce, errUseDPoPNonce)

	f.observeNonce(tokenURL)
	_, err = f.check(f.proof("POST", tokenURL, ""), "POST", tokenURL, "")
	require.NoError(t, err)
}

func TestDPoPVerifierWithoutNoncesAcceptsProofsWithoutOne(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{NoNonce: true})
	assert.Empty(t, f.v.nonce())
	_, err := f.check(f.proof("POST", tokenURL, ""), "POST", tokenURL, "")
	require.NoError(t, err)
}

func TestDPoPVerifierRotatesTheNonceOnItsClock(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{NonceEvery: time.Minute})
	n1 := f.v.nonce()
	assert.Equal(t, n1, f.v.nonce(), "the nonce holds until it is due")
	f.observeNonce(resourceURL) // the client holds n1

	f.clock.Advance(time.Minute)
	n2 := f.v.nonce()
	assert.NotEqual(t, n1, n2)
	_, err := f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL, accessToken)
	require.NoError(t, err, "the previous nonce is still accepted")

	f.clock.Advance(time.Minute)
	assert.NotEqual(t, n2, f.v.nonce())
	_, err = f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL, accessToken)
	requireDPoPError(t, err, dpopCheckNonce, errUseDPoPNonce)

	f.observeNonce(resourceURL)
	_, err = f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL, accessToken)
	require.NoError(t, err)
}

func TestDPoPVerifierRotatesTheNonceAfterItsUses(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{NonceEvery: -1, NonceUses: 2})
	n1 := f.v.nonce()
	f.observeNonce(resourceURL)
	for i := range 2 {
		_, err := f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL, accessToken)
		require.NoError(t, err, "use %d", i+1)
	}
	n2 := f.v.nonce()
	assert.NotEqual(t, n1, n2, "rotated after 2 uses")
	f.clock.Advance(24 * time.Hour)
	f.observeNonce(resourceURL)
	assert.Equal(t, n2, f.v.nonce(), "NonceEvery < 0: no rotation by time")
}

func TestDPoPVerifierRefusesAReplayedProof(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	f.observeNonce(resourceURL)
	proof := f.proof("GET", resourceURL, accessToken)
	_, err := f.check(proof, "GET", resourceURL, accessToken)
	require.NoError(t, err)
	_, err = f.check(proof, "GET", resourceURL, accessToken)
	requireDPoPError(t, err, dpopCheckReplay, errInvalidDPoPProof)

	f.clock.Advance(30 * time.Second)
	_, err = f.check(proof, "GET", resourceURL, accessToken)
	requireDPoPError(t, err, dpopCheckReplay, errInvalidDPoPProof)

	f.clock.Advance(31 * time.Second) // past the window: refused for its age
	_, err = f.check(proof, "GET", resourceURL, accessToken)
	requireDPoPError(t, err, dpopCheckIAT, errInvalidDPoPProof)
}

func TestDPoPVerifierReplayCacheIsBounded(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{MaxReplay: 3, NoNonce: true})
	for i := range 3 {
		_, err := f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL, accessToken)
		require.NoError(t, err, "proof %d", i+1)
	}
	_, err := f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL, accessToken)
	requireDPoPError(t, err, dpopCheckReplay, errInvalidDPoPProof)
	assert.Len(t, f.v.seen, 3)

	f.clock.Advance(dpopDefaultWindow) // the three are forgotten when room is needed
	_, err = f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL, accessToken)
	require.NoError(t, err)
	assert.Len(t, f.v.seen, 1)
}

func TestDPoPVerifierRefusesBadProofs(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	other, err := dpop.GenerateKey()
	require.NoError(t, err)
	weakRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	hmacKey := []byte("0123456789abcdef0123456789abcdef")
	now := f.clock.Now().Unix()
	es := func(header map[jose.HeaderKey]any, c map[string]any) string {
		return forge(t, jose.ES256, f.key, true, header, c)
	}
	with := func(k string, v any) map[string]any {
		c := f.claims("GET", resourceURL, accessToken)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}

	tests := []struct {
		name  string
		proof string
		check dpopCheck
		code  string
	}{
		{"not a JWS", "not.a.jws", dpopCheckMalformed, errInvalidDPoPProof},
		{"JSON serialization", `{"payload":"e30","signatures":[]}`, dpopCheckMalformed, errInvalidDPoPProof},
		{"too long", strings.Repeat("a", dpopMaxProofBytes+1), dpopCheckHeader, errInvalidDPoPProof},
		{"alg none", unsigned(t, &f.key.PublicKey, with("x", nil)), dpopCheckAlg, errInvalidDPoPProof},
		{"alg HS256", forge(t, jose.HS256, hmacKey, false, map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: &f.key.PublicKey}}, with("x", nil)), dpopCheckAlg, errInvalidDPoPProof},
		{"alg ES384", forge(t, jose.ES384, p384, true, nil, with("x", nil)), dpopCheckAlg, errInvalidDPoPProof},
		{"typ JWT", es(map[jose.HeaderKey]any{jose.HeaderType: "JWT"}, with("x", nil)), dpopCheckTyp, errInvalidDPoPProof},
		{"typ missing", es(map[jose.HeaderKey]any{jose.HeaderType: nil}, with("x", nil)), dpopCheckTyp, errInvalidDPoPProof},
		{"jwk missing", forge(t, jose.ES256, f.key, false, nil, with("x", nil)), dpopCheckJWK, errInvalidDPoPProof},
		{"jwk holds the private key", forge(t, jose.ES256, f.key, false, map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: f.key}}, with("x", nil)), dpopCheckJWK, errInvalidDPoPProof},
		{"jwk of another key", forge(t, jose.ES256, f.key, false, map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: &other.PublicKey}}, with("x", nil)), dpopCheckSignature, errInvalidDPoPProof},
		{"jwk of another type than alg", forge(t, jose.ES256, f.key, false, map[jose.HeaderKey]any{"jwk": jose.JSONWebKey{Key: &rsa2048.PublicKey}}, with("x", nil)), dpopCheckAlg, errInvalidDPoPProof},
		{"RSA key under 2048 bits", forge(t, jose.RS256, weakRSA, true, nil, with("x", nil)), dpopCheckJWK, errInvalidDPoPProof},
		{"tampered claims", tamper(t, es(nil, with("x", nil))), dpopCheckSignature, errInvalidDPoPProof},
		{"claims not an object", es(nil, nil), dpopCheckMalformed, errInvalidDPoPProof},
		{"jti missing", es(nil, with("jti", nil)), dpopCheckClaims, errInvalidDPoPProof},
		{"jti too long", es(nil, with("jti", strings.Repeat("j", dpopMaxJTIBytes+1))), dpopCheckClaims, errInvalidDPoPProof},
		{"htm missing", es(nil, with("htm", nil)), dpopCheckClaims, errInvalidDPoPProof},
		{"htu missing", es(nil, with("htu", nil)), dpopCheckClaims, errInvalidDPoPProof},
		{"iat missing", es(nil, with("iat", nil)), dpopCheckClaims, errInvalidDPoPProof},
		{"htm POST for a GET", es(nil, with("htm", "POST")), dpopCheckHTM, errInvalidDPoPProof},
		{"htm in lower case", es(nil, with("htm", "get")), dpopCheckHTM, errInvalidDPoPProof},
		{"htu of another path", es(nil, with("htu", "https://rs.example/api/other")), dpopCheckHTU, errInvalidDPoPProof},
		{"htu of another host", es(nil, with("htu", "https://evil.example/api/me")), dpopCheckHTU, errInvalidDPoPProof},
		{"htu of another port", es(nil, with("htu", "https://rs.example:8443/api/me")), dpopCheckHTU, errInvalidDPoPProof},
		{"htu over http", es(nil, with("htu", "http://rs.example/api/me")), dpopCheckHTU, errInvalidDPoPProof},
		{"htu relative", es(nil, with("htu", "/api/me")), dpopCheckHTU, errInvalidDPoPProof},
		{"iat 61 s old", es(nil, with("iat", now-61)), dpopCheckIAT, errInvalidDPoPProof},
		{"iat 61 s ahead", es(nil, with("iat", now+61)), dpopCheckIAT, errInvalidDPoPProof},
		{"iat absurd", es(nil, with("iat", 1e300)), dpopCheckIAT, errInvalidDPoPProof},
		{"ath missing", es(nil, with("ath", nil)), dpopCheckATH, errInvalidDPoPProof},
		{"ath of another token", es(nil, with("ath", dpop.AccessTokenHash("another token"))), dpopCheckATH, errInvalidDPoPProof},
		{"ath of the token, not hashed", es(nil, with("ath", accessToken)), dpopCheckATH, errInvalidDPoPProof},
		{"nonce missing", es(nil, with("nonce", nil)), dpopCheckNonce, errUseDPoPNonce},
		{"nonce unknown", es(nil, with("nonce", "made-up")), dpopCheckNonce, errUseDPoPNonce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jkt, err := f.check(tc.proof, "GET", resourceURL, accessToken)
			requireDPoPError(t, err, tc.check, tc.code)
			assert.Empty(t, jkt)
			assert.NotContains(t, err.Error(), accessToken)
		})
	}
}

// tamper changes the claims of proof without signing them again.
func tamper(t *testing.T, proof string) string {
	t.Helper()
	parts := strings.Split(proof, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal(b, &c))
	c["htu"] = "https://rs.example/api/admin"
	b, err = json.Marshal(c)
	require.NoError(t, err)
	parts[1] = base64.RawURLEncoding.EncodeToString(b)
	return strings.Join(parts, ".")
}

func TestDPoPVerifierAcceptsIATAtTheEdgesOfItsWindow(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	now := f.clock.Now().Unix()
	for _, iat := range []any{now - 60, now + 60, float64(now) + 0.5} {
		c := f.claims("GET", resourceURL, accessToken)
		c["iat"] = iat
		_, err := f.check(forge(t, jose.ES256, f.key, true, nil, c), "GET", resourceURL, accessToken)
		require.NoError(t, err, "iat %v, now %d", iat, now)
	}
}

func TestDPoPVerifierIgnoresATHOnTokenRequests(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	c := f.claims("POST", tokenURL, "")
	c["ath"] = "whatever"
	_, err := f.check(forge(t, jose.ES256, f.key, true, nil, c), "POST", tokenURL, "")
	require.NoError(t, err)
}

func TestDPoPVerifierComparesHTUNormalised(t *testing.T) {
	tests := []struct{ claim, request string }{
		{"HTTPS://RS.Example:443/api/./v1/../me", "https://rs.example/api/me"},
		{"https://rs.example/api/me?x=1#frag", "https://rs.example/api/me?y=2"},
		{"https://rs.example/%7Euser/a%2fb", "https://rs.example/~user/a%2Fb"},
		{"http://[::1]:80/x", "http://[::1]/x"},
		{"https://rs.example", "https://rs.example/"},
	}
	for _, tc := range tests {
		t.Run(tc.claim, func(t *testing.T) {
			f := newDPoPFixture(t, dpopSettings{NoNonce: true})
			c := f.claims("GET", tc.claim, "")
			_, err := f.check(forge(t, jose.ES256, f.key, true, nil, c), "GET", tc.request, "")
			require.NoError(t, err)
		})
	}
}

// The client (transport/dpop) and this server normalise htu each in its own
// code; they must agree.
func TestNormalizeHTUAgreesWithTheClient(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	for _, raw := range []string{
		"https://rs.example/api/me", "HTTPS://RS.EXAMPLE:443/A/B", "http://rs.example:80",
		"https://rs.example:8443/a/../b/./c/", "https://rs.example/a//b/..", "https://rs.example/../x",
		"https://rs.example/%7e%41%2f%2e%2E/y", "https://rs.example/caf%c3%a9?q#f",
		"http://[::1]:8080/x", "http://[::1]:80/x", "https://user:pw@rs.example/x",
	} {
		proof := f.proof("GET", raw, "")
		var c dpopClaims
		require.NoError(t, json.Unmarshal(payloadOf(t, proof), &c))
		u, err := url.Parse(raw)
		require.NoError(t, err)
		assert.Equal(t, normalizeHTU(u), c.HTU, "htu of %s", raw)
	}
}

func payloadOf(t *testing.T, proof string) []byte {
	t.Helper()
	parts := strings.Split(proof, ".")
	require.Len(t, parts, 3)
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	require.NoError(t, err)
	return b
}

func TestDPoPErrorChallengeIsANonceChallengeForTheClient(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{})
	_, err := f.check(f.proof("GET", resourceURL, accessToken), "GET", resourceURL, accessToken)
	var de *dpopError
	require.True(t, errors.As(err, &de))

	h := http.Header{}
	h.Set("WWW-Authenticate", de.challenge())
	h.Set("DPoP-Nonce", f.v.nonce())
	resp := &http.Response{StatusCode: http.StatusUnauthorized, Header: h}
	assert.True(t, dpop.IsNonceChallenge(resp), "challenge %q", de.challenge())
	assert.Contains(t, de.challenge(), `algs="ES256 RS256 EdDSA"`)

	invalid := &dpopError{check: dpopCheckHTU, desc: "htu"}
	h.Set("WWW-Authenticate", invalid.challenge())
	assert.False(t, dpop.IsNonceChallenge(resp))
	assert.True(t, strings.HasPrefix(invalid.challenge(), `DPoP error="invalid_dpop_proof"`), "got %q", invalid.challenge())
}

func TestDPoPVerifierIsSafeForConcurrentUse(t *testing.T) {
	f := newDPoPFixture(t, dpopSettings{NonceUses: 7})
	f.observeNonce(resourceURL)
	shared := f.proof("GET", resourceURL, accessToken)
	var accepted, replayed, stale atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				_, err := f.v.verifyProof(shared, "GET", mustURL(resourceURL), accessToken)
				var de *dpopError
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.As(err, &de) && de.check == dpopCheckReplay:
					replayed.Add(1)
				case errors.As(err, &de) && de.check == dpopCheckNonce:
					stale.Add(1)
				default:
					t.Errorf("unexpected %v", err)
				}
				_ = f.v.nonce()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), accepted.Load(), "one proof is accepted once")
	assert.Equal(t, int32(8*20-1), replayed.Load()+stale.Load())
}

func mustURL(raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil {
		panic(fmt.Sprintf("%s: %v", raw, err))
	}
	return u
}
