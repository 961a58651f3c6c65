package dpop_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

func TestGenerateKeyMakesAP256Key(t *testing.T) {
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	assert.Equal(t, elliptic.P256(), key.Curve)
}

func TestMarshalKeyRoundTripKeepsTheThumbprint(t *testing.T) {
	for alg, key := range testKeys(t) {
		t.Run(alg, func(t *testing.T) {
			p, err := dpop.NewProver(key)
			require.NoError(t, err)
			data, err := p.MarshalKey()
			require.NoError(t, err)
			block, rest := pem.Decode(data)
			require.NotNil(t, block)
			assert.Equal(t, "PRIVATE KEY", block.Type)
			assert.Empty(t, rest)

			loaded, err := dpop.LoadProver(data)
			require.NoError(t, err)
			assert.Equal(t, p.Thumbprint(), loaded.Thumbprint())
			assert.Equal(t, alg, loaded.Algorithm())

			proof, err := loaded.Proof("POST", "https://as.example/token", "")
			require.NoError(t, err)
			got := parseProof(t, proof)
			assert.Equal(t, key.Public(), got.header.JSONWebKey.Key, "the loaded key signs as the original")
		})
	}
}

func TestLoadProverReadsAPrivateJWK(t *testing.T) {
	for alg, key := range testKeys(t) {
		t.Run(alg, func(t *testing.T) {
			data, err := json.Marshal(jose.JSONWebKey{Key: key})
			require.NoError(t, err)
			p, err := dpop.LoadProver(append([]byte("\n  "), data...))
			require.NoError(t, err)
			want, err := dpop.NewProver(key)
			require.NoError(t, err)
			assert.Equal(t, want.Thumbprint(), p.Thumbprint())
		})
	}
}

func TestLoadProverAppliesItsOptions(t *testing.T) {
	p := newProver(t)
	data, err := p.MarshalKey()
	require.NoError(t, err)
	loaded, err := dpop.LoadProver(data, dpop.WithClock(fixedClock(42)))
	require.NoError(t, err)
	proof, err := loaded.Proof("GET", "https://rs.example/", "")
	require.NoError(t, err)
	assert.Equal(t, json.Number("42"), parseProof(t, proof).claims["iat"])
}

func TestLoadProverRefusesWhatIsNotAnAcceptedPrivateKey(t *testing.T) {
	ec, err := dpop.GenerateKey()
	require.NoError(t, err)
	sec1, err := x509.MarshalECPrivateKey(ec)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	require.NoError(t, err)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p384DER, err := x509.MarshalPKCS8PrivateKey(p384)
	require.NoError(t, err)
	publicJWK, err := json.Marshal(jose.JSONWebKey{Key: &ec.PublicKey})
	require.NoError(t, err)
	secretJWK, err := json.Marshal(jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), Algorithm: "HS256"})
	require.NoError(t, err)
	pemOf := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }

	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no PEM block"},
		{"garbage", []byte("not a key"), "no PEM block"},
		{"SEC 1 PEM", pemOf("EC PRIVATE KEY", sec1), "want \"PRIVATE KEY\""},
		{"public key PEM", pemOf("PUBLIC KEY", spki), "want \"PRIVATE KEY\""},
		{"PKCS #8 of garbage", pemOf("PRIVATE KEY", []byte("junk")), "malformed PKCS #8"},
		{"P-384 key", pemOf("PRIVATE KEY", p384DER), "want P-256"},
		{"public JWK", publicJWK, "public key"},
		{"symmetric JWK", secretJWK, "cannot sign"},
		{"malformed JWK", []byte(`{"kty":"EC","d":"SECRET"`), "malformed JWK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := dpop.LoadProver(tc.data)
			require.Error(t, err)
			assert.Nil(t, p)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "SECRET")
			assert.True(t, strings.HasPrefix(err.Error(), "dpop: "), "got %q", err)
		})
	}
}

func TestMarshalKeyRefusesAnOpaqueSigner(t *testing.T) {
	key, err := dpop.GenerateKey()
	require.NoError(t, err)
	p, err := dpop.NewProver(opaqueSigner{key})
	require.NoError(t, err)
	data, err := p.MarshalKey()
	require.Error(t, err)
	assert.Nil(t, data)
	assert.Contains(t, err.Error(), "cannot marshal")
}
