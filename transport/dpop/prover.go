package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
)

// Names used on the wire (RFC 9449).
const (
	HeaderName      = "DPoP"           // request header carrying the proof
	NonceHeaderName = "DPoP-Nonce"     // response header carrying a server's nonce
	TokenType       = "DPoP"           // token_type of a DPoP-bound token, and its Authorization scheme
	ErrorUseNonce   = "use_dpop_nonce" // error code asking for a proof with the server's nonce
	proofType       = "dpop+jwt"       // typ header of a proof
)

// MinRSABits is the smallest RSA key [NewProver] accepts.
const MinRSABits = 2048

// Prover makes DPoP proofs with one private key, and remembers the nonce of
// each server it has heard from. Make one with [NewProver] or [LoadProver].
//
// A Prover is safe for concurrent use by multiple goroutines.
type Prover struct {
	key    crypto.Signer // the private key, never printed
	signer jose.Signer   // signs with key, embeds the public JWK, typ dpop+jwt
	alg    jose.SignatureAlgorithm
	jkt    string // RFC 7638 thumbprint of the public key, base64url
	now    func() time.Time
	nonces *nonceCache
}

// Option configures a [Prover].
type Option func(*Prover)

// WithClock sets the clock that stamps proofs' iat claim (default
// [time.Now]). Tests that move a server's clock forward can share it here.
func WithClock(now func() time.Time) Option {
	return func(p *Prover) {
		if now != nil {
			p.now = now
		}
	}
}

// NewProver returns a Prover that signs with key:
//
//   - an ECDSA key on P-256 signs with ES256 (the default, see [GenerateKey]);
//   - an RSA key of at least [MinRSABits] bits signs with RS256;
//   - an Ed25519 key signs with EdDSA.
//
// Any other key is refused. key may be an [*ecdsa.PrivateKey], an
// [*rsa.PrivateKey], an [ed25519.PrivateKey], or any other [crypto.Signer]
// whose public key is one of the above (a key in hardware, say).
func NewProver(key crypto.Signer, opts ...Option) (*Prover, error) {
	if key == nil {
		return nil, errors.New("dpop: nil key")
	}
	if k, ok := key.(*ed25519.PrivateKey); ok { // a pointer to a slice: use the slice
		if k == nil {
			return nil, errors.New("dpop: nil key")
		}
		key = *k
	}
	pub := key.Public()
	alg, err := algorithm(pub)
	if err != nil {
		return nil, err
	}
	var signingKey any
	switch k := key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey:
		signingKey = k
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return nil, errors.New("dpop: malformed Ed25519 key")
		}
		signingKey = k
	default:
		signingKey = cryptosigner.Opaque(key)
	}
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpop: thumbprint: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: signingKey},
		(&jose.SignerOptions{EmbedJWK: true}).WithType(proofType))
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}
	p := &Prover{
		key:    key,
		signer: signer,
		alg:    alg,
		jkt:    base64.RawURLEncoding.EncodeToString(tp),
		now:    time.Now,
		nonces: newNonceCache(maxOrigins),
	}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// algorithm picks the JWS algorithm for a public key, or says why the key
// is refused.
func algorithm(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("dpop: ECDSA key on %s: want P-256 (ES256)", k.Curve.Params().Name)
		}
		return jose.ES256, nil
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return "", fmt.Errorf("dpop: RSA key of %d bits: want at least %d", k.N.BitLen(), MinRSABits)
		}
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	default:
		return "", fmt.Errorf("dpop: unsupported key type %T: want ECDSA P-256, RSA or Ed25519", pub)
	}
}

// GenerateKey returns a new ECDSA P-256 key, the default key for a [Prover]
// (ES256).
func GenerateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// Algorithm returns the JWS algorithm of p's proofs: "ES256", "RS256" or
// "EdDSA".
func (p *Prover) Algorithm() string { return string(p.alg) }

// Thumbprint returns the JWK SHA-256 thumbprint of p's public key (RFC 7638),
// base64url-encoded without padding: the value an authorization server puts
// in a bound token's cnf.jkt claim, and a client may send as dpop_jkt.
func (p *Prover) Thumbprint() string { return p.jkt }

// Public returns p's public key.
func (p *Prover) Public() crypto.PublicKey { return p.key.Public() }

// claims are the claims of a proof (RFC 9449 §4.2).
type claims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// Proof returns a new proof for a request with method to rawURL (RFC 9449
// §4.2), to be sent as the request's [HeaderName] header. It holds a fresh
// random jti; htu is rawURL without its query and fragment, normalised
// (lower-case scheme and host, no default port, "/" for an empty path,
// percent-encoding and dot segments normalised, RFC 3986 §6.2.2 and §6.2.3);
// an empty method means GET.
//
// accessToken is the token the request carries, if any: the proof then
// holds its hash (ath), as resource servers require. Leave it empty for
// a token request. The proof carries the nonce last seen from rawURL's
// origin by [Prover.ObserveResponse], if any.
func (p *Prover) Proof(method, rawURL, accessToken string) (string, error) {
	u, err := parseHTTPURL(rawURL)
	if err != nil {
		return "", err
	}
	if method == "" {
		method = "GET"
	}
	c := claims{
		JTI:   rand.Text(), // 128 random bits
		HTM:   method,
		HTU:   htu(u),
		IAT:   p.now().Unix(),
		Nonce: p.nonces.get(origin(u)),
	}
	if accessToken != "" {
		c.ATH = AccessTokenHash(accessToken)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("dpop: %w", err)
	}
	jws, err := p.signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("dpop: sign: %w", err)
	}
	return jws.CompactSerialize()
}

// AccessTokenHash returns the ath claim for token: base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// String returns p's algorithm and thumbprint.
//
// String, GoString and Format have value receivers so that a Prover value
// (*p) prints as safely as a pointer.
func (p Prover) String() string {
	return fmt.Sprintf("dpop.Prover{alg: %s, jkt: %s}", p.alg, p.jkt)
}

// GoString is [Prover.String], so that %#v does not print the key either.
func (p Prover) GoString() string { return p.String() }

// Format prints p as [Prover.String] does, whatever the verb: fmt would
// otherwise print the private key behind p's fields.
func (p Prover) Format(f fmt.State, _ rune) {
	io.WriteString(f, p.String())
}
