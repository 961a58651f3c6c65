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
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

func TestNewProverPicksTheAlgorithmOfTheKey(t *testing.T) {
	for alg, key := range testKeys(t) {
		t.Run(alg, func(t *testing.T) {
			p, err := dpop.NewProver(key)
			require.NoError(t, err)
			assert.Equal(t, alg, p.Algorithm())
			assert.Equal(t, key.Public(), p.Public())
		})
	}
}

// opaqueSigner hides the concrete type of a key, as a key in hardware does.
type opaqueSigner struct{ crypto.Signer }

func TestNewProverAcceptsAnOpaqueSigner(t *testing.T) {
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	p, err := dpop.NewProver(opaqueSigner{key})
	require.NoError(t, err)
	assert.Equal(t, "ES256", p.Algorithm())
	proof, err := p.Proof("GET", "https://rs.example/x", "")
	require.NoError(t, err)
	got := parseProof(t, proof) // the signature is checked
	assert.Equal(t, &key.PublicKey, got.header.JSONWebKey.Key)
}

// strangeSigner has a public key of a type no JWS algorithm here signs for.
type strangeSigner struct{}

func (strangeSigner) Public() crypto.PublicKey { return []byte("not a key") }
func (strangeSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, nil
}

func TestNewProverRefusesOtherKeys(t *testing.T) {
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	tests := []struct {
		name string
		key  crypto.Signer
		want string
	}{
		{"nil", nil, "nil key"},
		{"ECDSA P-384", p384, "want P-256"},
		{"RSA 1024", rsa1024, "want at least 2048"},
		{"unknown type", strangeSigner{}, "unsupported key type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := dpop.NewProver(tc.key)
			require.Error(t, err)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, strings.HasPrefix(err.Error(), "dpop: "), "got %q, want the package prefix", err)
		})
	}
}

func TestProofHasEveryHeaderAndClaimOfRFC9449(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	for alg, key := range testKeys(t) {
		t.Run(alg, func(t *testing.T) {
			p, err := dpop.NewProver(key, dpop.WithClock(func() time.Time { return now }))
			require.NoError(t, err)
			proof, err := p.Proof(http.MethodPost, "https://as.example/oauth/token", "")
			require.NoError(t, err)

			got := parseProof(t, proof)
			// Header: exactly typ, alg and jwk.
			raw := rawHeader(t, proof)
			assert.Len(t, raw, 3, "header %v: want typ, alg, jwk", raw)
			assert.Equal(t, "dpop+jwt", raw["typ"])
			assert.Equal(t, alg, raw["alg"])
			assert.Equal(t, alg, got.header.Algorithm)
			jwk := got.header.JSONWebKey
			assert.True(t, jwk.IsPublic(), "jwk must hold only the public key")
			assert.Equal(t, key.Public(), jwk.Key)
			rawJWK, ok := raw["jwk"].(map[string]any)
			require.True(t, ok)
			for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
				assert.NotContains(t, rawJWK, private)
			}
			tp, err := jwk.Thumbprint(crypto.SHA256)
			require.NoError(t, err)
			assert.Equal(t, base64.RawURLEncoding.EncodeToString(tp), p.Thumbprint())

			// Claims: exactly jti, htm, htu, iat (no access token, no nonce).
			c := got.claims
			assert.Len(t, c, 4, "claims %v: want jti, htm, htu, iat", c)
			jti, _ := c["jti"].(string)
			assert.GreaterOrEqual(t, len(jti), 22, "jti %q: want at least 128 random bits", jti)
			assert.Equal(t, "POST", c["htm"])
			assert.Equal(t, "https://as.example/oauth/token", c["htu"])
			assert.Equal(t, json.Number("1700000000"), c["iat"])
		})
	}
}

func TestProofHTUDropsQueryAndFragment(t *testing.T) {
	p := newProver(t)
	proof, err := p.Proof("GET", "https://rs.example/api/items?secret=1&page=2#frag", "at")
	require.NoError(t, err)
	got := parseProof(t, proof)
	assert.Equal(t, "https://rs.example/api/items", got.claims["htu"])
	assert.NotContains(t, proof, "secret")
}

func TestProofHTUIsNormalised(t *testing.T) {
	tests := []struct{ in, want string }{
		{"HTTPS://RS.Example.COM/Path", "https://rs.example.com/Path"},
		{"https://rs.example:443/x", "https://rs.example/x"},
		{"http://rs.example:80/x", "http://rs.example/x"},
		{"https://rs.example:8443/x", "https://rs.example:8443/x"},
		{"http://rs.example:443/x", "http://rs.example:443/x"},
		{"https://rs.example", "https://rs.example/"},
		{"https://rs.example?q=1", "https://rs.example/"},
		{"https://rs.example/a/./b/../c", "https://rs.example/a/c"},
		{"https://rs.example/a/b/..", "https://rs.example/a/"},
		{"https://rs.example/../../a", "https://rs.example/a"},
		{"https://rs.example/a//b", "https://rs.example/a//b"},
		{"https://rs.example/%7euser/%2fx%3a", "https://rs.example/~user/%2Fx%3A"},
		{"https://rs.example/a%2E%2E/%2e%2e/b", "https://rs.example/b"},
		{"https://rs.example/caf%C3%A9", "https://rs.example/caf%C3%A9"},
		{"https://rs.example/a b", "https://rs.example/a%20b"},
		{"http://[::1]:80/x", "http://[::1]/x"},
		{"http://[::1]:8080/x", "http://[::1]:8080/x"},
		{"https://user:pass@rs.example/x", "https://rs.example/x"},
	}
	p := newProver(t)
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			proof, err := p.Proof("GET", tc.in, "")
			require.NoError(t, err)
			got := parseProof(t, proof).claims["htu"]
			assert.Equal(t, tc.want, got, "htu of %q", tc.in)
		})
	}
}

func TestProofRefusesAURLThatIsNotAbsoluteHTTP(t *testing.T) {
	p := newProver(t)
	for _, in := range []string{"", "/relative", "ftp://files.example/x", "mailto:a@b.example", "https://", "http://%zz/"} {
		t.Run(in, func(t *testing.T) {
			proof, err := p.Proof("GET", in, "")
			require.Error(t, err)
			assert.Empty(t, proof)
			assert.True(t, strings.HasPrefix(err.Error(), "dpop: "), "got %q", err)
		})
	}
}

func TestProofErrorDoesNotQuoteTheURL(t *testing.T) {
	p := newProver(t)
	_, err := p.Proof("GET", "https://rs.example/%zz?access_token=SECRET", "")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "SECRET")
}

func TestProofATHIsTheHashOfTheAccessToken(t *testing.T) {
	// The access token and ath of RFC 9449 §7.1.
	const token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
	const ath = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
	assert.Equal(t, ath, dpop.AccessTokenHash(token))

	p := newProver(t)
	proof, err := p.Proof("GET", "https://resource.example.org/protectedresource", token)
	require.NoError(t, err)
	got := parseProof(t, proof)
	assert.Equal(t, ath, got.claims["ath"])
	assert.NotContains(t, proof, token)
}

func TestProofWithoutAccessTokenHasNoATH(t *testing.T) {
	p := newProver(t)
	proof, err := p.Proof("POST", "https://as.example/token", "")
	require.NoError(t, err)
	assert.NotContains(t, parseProof(t, proof).claims, "ath")
}

func TestProofMethodIsSentAsGivenAndEmptyMeansGET(t *testing.T) {
	p := newProver(t)
	for in, want := range map[string]string{"": "GET", "GET": "GET", "DELETE": "DELETE", "PATCH": "PATCH"} {
		proof, err := p.Proof(in, "https://rs.example/", "")
		require.NoError(t, err)
		assert.Equal(t, want, parseProof(t, proof).claims["htm"], "htm for method %q", in)
	}
}

func TestProofJTIIsFreshEveryTime(t *testing.T) {
	p := newProver(t)
	seen := make(map[string]bool)
	for range 500 {
		proof, err := p.Proof("GET", "https://rs.example/", "")
		require.NoError(t, err)
		jti := parseProof(t, proof).claims["jti"].(string)
		require.False(t, seen[jti], "jti %q repeated", jti)
		seen[jti] = true
	}
}

func TestWithClockStampsIAT(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	p := newProver(t, dpop.WithClock(func() time.Time { return now }))
	proof, err := p.Proof("GET", "https://rs.example/", "")
	require.NoError(t, err)
	assert.Equal(t, json.Number(fmt.Sprint(now.Unix())), parseProof(t, proof).claims["iat"])
}

func TestProofIATDefaultsToTheRealTime(t *testing.T) {
	p := newProver(t)
	before := time.Now().Unix()
	proof, err := p.Proof("GET", "https://rs.example/", "")
	require.NoError(t, err)
	after := time.Now().Unix()
	iat, err := parseProof(t, proof).claims["iat"].(json.Number).Int64()
	require.NoError(t, err)
	assert.True(t, before <= iat && iat <= after, "iat %d not in [%d, %d]", iat, before, after)
}

func TestProverIsSafeForConcurrentUse(t *testing.T) {
	p := newProver(t)
	origins := []string{"https://as.example", "https://rs1.example", "https://rs2.example:8443"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				o := origins[(g+i)%len(origins)]
				p.ObserveResponse(nonceResponse(t, o+"/x", fmt.Sprintf("n-%d-%d", g, i)))
				proof, err := p.Proof("GET", o+"/x", "at")
				if !assert.NoError(t, err) {
					return
				}
				assert.NotEmpty(t, proof)
				_ = p.Nonce(o)
				_ = p.String()
			}
		})
	}
	wg.Wait()
	for _, o := range origins {
		assert.True(t, strings.HasPrefix(p.Nonce(o), "n-"), "origin %s lost its nonce", o)
	}
}

func TestProverFormatsWithoutItsPrivateKey(t *testing.T) {
	for alg, key := range testKeys(t) {
		t.Run(alg, func(t *testing.T) {
			p, err := dpop.NewProver(key)
			require.NoError(t, err)
			pem, err := p.MarshalKey()
			require.NoError(t, err)
			secrets := privateParts(t, key, pem)

			type holder struct {
				Prover *dpop.Prover
				Value  dpop.Prover
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
				for name, operand := range map[string]any{"pointer": p, "value": *p, "field": holder{p, *p}} {
					out := fmt.Sprintf(verb, operand)
					for _, s := range secrets {
						assert.NotContains(t, strings.ToLower(out), strings.ToLower(s), "%s of a %s", verb, name)
					}
				}
			}
			assert.Equal(t, "dpop.Prover{alg: "+alg+", jkt: "+p.Thumbprint()+"}", fmt.Sprint(p))
			assert.Equal(t, fmt.Sprint(p), fmt.Sprintf("%#v", *p))
		})
	}
}

// privateParts returns key's private numbers in the forms fmt could print
// them (decimal, hex, a byte slice), and a piece of its PKCS #8 PEM body.
func privateParts(t *testing.T, key crypto.Signer, pem []byte) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(pem)), "\n")
	body := strings.Join(lines[1:len(lines)-1], "")
	parts := []string{body[len(body)-40 : len(body)-8]}
	var nums []*big.Int
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		d, err := k.Bytes()
		require.NoError(t, err)
		nums = append(nums, new(big.Int).SetBytes(d))
	case *rsa.PrivateKey:
		nums = append(nums, k.D, k.Primes[0], k.Primes[1])
	case ed25519.PrivateKey:
		seed := k.Seed()
		parts = append(parts, fmt.Sprintf("%x", seed[:12]), strings.Trim(fmt.Sprint(seed[:8]), "[]"))
	default:
		t.Fatalf("no private parts known for %T", key)
	}
	for _, n := range nums {
		parts = append(parts, n.String()[:24], n.Text(16)[:24])
	}
	return parts
}
