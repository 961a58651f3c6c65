package testserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Defaults and bounds of a dpopVerifier.
const (
	dpopDefaultWindow     = 60 * time.Second // iat accepted within ± this of the server's clock
	dpopDefaultNonceEvery = 5 * time.Minute  // the nonce rotates this often
	dpopDefaultMaxReplay  = 1 << 16          // jti remembered at most
	dpopMaxProofBytes     = 8 << 10          // a longer DPoP header is refused unparsed
	dpopMaxJTIBytes       = 256
	dpopMinRSABits        = 2048
)

// dpopAlgs are the JWS algorithms accepted in a proof, and the algs
// parameter of a DPoP challenge.
var dpopAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// dpopSettings configures a dpopVerifier. The zero value takes the defaults
// given in the comments.
type dpopSettings struct {
	// Window bounds the proof's iat: it must lie within ±Window of the
	// server's clock. Zero means dpopDefaultWindow.
	Window time.Duration

	// NonceEvery is how often the server's nonce rotates. Zero means
	// dpopDefaultNonceEvery; a negative value rotates only by NonceUses.
	NonceEvery time.Duration

	// NonceUses, if positive, also rotates the nonce after that many proofs
	// carrying it were accepted.
	NonceUses int

	// NoNonce accepts proofs without a nonce (and any nonce they carry).
	NoNonce bool

	// MaxReplay bounds the jti replay cache. Zero means
	// dpopDefaultMaxReplay. When it is full of proofs still inside their
	// window, new proofs are refused.
	MaxReplay int
}

// dpopCheck names the check of a proof that failed.
type dpopCheck string

const (
	dpopCheckHeader    dpopCheck = "header"    // no DPoP header, several, or too long
	dpopCheckMalformed dpopCheck = "malformed" // not a compact JWS, or claims that do not parse
	dpopCheckAlg       dpopCheck = "alg"       // alg not ES256, RS256 or EdDSA, or not the jwk's
	dpopCheckTyp       dpopCheck = "typ"       // typ not dpop+jwt
	dpopCheckJWK       dpopCheck = "jwk"       // jwk missing, private, or refused (a short RSA key)
	dpopCheckSignature dpopCheck = "signature" // signature does not verify with the jwk
	dpopCheckClaims    dpopCheck = "claims"    // jti, htm, htu or iat missing or malformed
	dpopCheckHTM       dpopCheck = "htm"       // htm is not the request's method
	dpopCheckHTU       dpopCheck = "htu"       // htu is not the request's URL
	dpopCheckIAT       dpopCheck = "iat"       // iat outside the window
	dpopCheckATH       dpopCheck = "ath"       // ath missing or not the hash of the access token
	dpopCheckNonce     dpopCheck = "nonce"     // nonce missing or stale: answer use_dpop_nonce
	dpopCheckReplay    dpopCheck = "jti"       // jti seen before (or the replay cache is full)
)

// OAuth error codes of a refused proof (RFC 9449 §5, §7.1, §8, §9).
const (
	errInvalidDPoPProof = "invalid_dpop_proof"
	errUseDPoPNonce     = "use_dpop_nonce"
)

// dpopError says why a proof was refused.
type dpopError struct {
	check dpopCheck
	desc  string // for error_description: never holds a token
}

func (e *dpopError) Error() string {
	return "testserver: DPoP proof refused (" + string(e.check) + "): " + e.desc
}

// code returns the OAuth error code to answer with: use_dpop_nonce when a
// proof with the server's current nonce would do, else invalid_dpop_proof.
func (e *dpopError) code() string {
	if e.check == dpopCheckNonce {
		return errUseDPoPNonce
	}
	return errInvalidDPoPProof
}

// challenge returns the WWW-Authenticate value of a resource server's 401
// for e (RFC 9449 §7.1, §9).
func (e *dpopError) challenge() string {
	return fmt.Sprintf("DPoP error=%q, error_description=%q, algs=%q", e.code(), e.desc, dpopAlgsParam())
}

// dpopAlgsParam returns the algs parameter of a DPoP challenge.
func dpopAlgsParam() string {
	names := make([]string, len(dpopAlgs))
	for i, a := range dpopAlgs {
		names[i] = string(a)
	}
	return strings.Join(names, " ")
}

func dpopFail(check dpopCheck, format string, args ...any) *dpopError {
	return &dpopError{check: check, desc: fmt.Sprintf(format, args...)}
}

// dpopVerifier checks DPoP proofs (RFC 9449 §4.3) for the token endpoint
// and the resources, issues and rotates the server's nonce, and remembers
// the proofs it accepted so that none is accepted twice. One verifier
// serves the whole server: the token endpoint and the resources share an
// origin, so a client has one nonce for both.
//
// A dpopVerifier is safe for concurrent use by multiple goroutines.
type dpopVerifier struct {
	now  func() time.Time
	set  dpopSettings         // defaults applied
	mu   sync.Mutex           // guards the fields below
	cur  string               // the nonce handed out
	prev string               // the nonce before cur, still accepted
	born time.Time            // when cur was made
	uses int                  // proofs accepted with cur
	seen map[string]time.Time // jkt+" "+jti of accepted proofs → when they can be forgotten
}

// newDPoPVerifier returns a verifier that reads the time from now.
func newDPoPVerifier(now func() time.Time, set dpopSettings) *dpopVerifier {
	if set.Window <= 0 {
		set.Window = dpopDefaultWindow
	}
	if set.NonceEvery == 0 {
		set.NonceEvery = dpopDefaultNonceEvery
	}
	if set.MaxReplay <= 0 {
		set.MaxReplay = dpopDefaultMaxReplay
	}
	return &dpopVerifier{now: now, set: set, seen: make(map[string]time.Time)}
}

// nonce returns the server's current nonce, for the DPoP-Nonce header of a
// response, or "" if the verifier does not demand nonces.
func (v *dpopVerifier) nonce() string {
	if v.set.NoNonce {
		return ""
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rotateLocked(v.now(), false)
	return v.cur
}

// rotateLocked makes a new nonce if there is none, if the current one is
// older than NonceEvery, or if force is set.
func (v *dpopVerifier) rotateLocked(now time.Time, force bool) {
	due := v.cur == "" || force || (v.set.NonceEvery > 0 && now.Sub(v.born) >= v.set.NonceEvery)
	if !due {
		return
	}
	v.prev, v.cur, v.born, v.uses = v.cur, rand.Text(), now, 0
}

// verify checks the DPoP proof of r, a request received by the server:
// to the token endpoint with accessToken "", or to a resource with the
// access token it carries (which the proof's ath must hash). It returns the
// thumbprint of the proof's key (RFC 7638, base64url), for cnf.jkt, or a
// *dpopError.
func (v *dpopVerifier) verify(r *http.Request, accessToken string) (string, error) {
	proofs := r.Header.Values("DPoP")
	if len(proofs) != 1 {
		return "", dpopFail(dpopCheckHeader, "want exactly one DPoP header, got %d", len(proofs))
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	u := &url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath}
	return v.verifyProof(proofs[0], r.Method, u, accessToken)
}

// dpopClaims are the claims of a proof.
type dpopClaims struct {
	JTI   string      `json:"jti"`
	HTM   string      `json:"htm"`
	HTU   string      `json:"htu"`
	IAT   json.Number `json:"iat"`
	ATH   string      `json:"ath"`
	Nonce string      `json:"nonce"`
}

// verifyProof checks proof for a request with method to u (its query and
// fragment are ignored), as verify does.
func (v *dpopVerifier) verifyProof(proof, method string, u *url.URL, accessToken string) (string, error) {
	if len(proof) > dpopMaxProofBytes {
		return "", dpopFail(dpopCheckHeader, "proof longer than %d bytes", dpopMaxProofBytes)
	}
	jws, err := jose.ParseSignedCompact(proof, dpopAlgs)
	if err != nil {
		return "", classifyParseError(proof, err)
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "dpop+jwt") {
		return "", dpopFail(dpopCheckTyp, "typ %q, want dpop+jwt", typ)
	}
	jwk := h.JSONWebKey
	if jwk == nil {
		return "", dpopFail(dpopCheckJWK, "no jwk header")
	}
	if err := keyFitsAlg(jwk, jose.SignatureAlgorithm(h.Algorithm)); err != nil {
		return "", err
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return "", dpopFail(dpopCheckSignature, "signature does not verify with the jwk")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", dpopFail(dpopCheckJWK, "no thumbprint for the jwk")
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)

	var c dpopClaims
	d := json.NewDecoder(strings.NewReader(string(payload)))
	d.UseNumber()
	if err := d.Decode(&c); err != nil || !strings.HasPrefix(strings.TrimSpace(string(payload)), "{") {
		return "", dpopFail(dpopCheckMalformed, "claims are not a JSON object of the expected types")
	}
	if c.JTI == "" || c.HTM == "" || c.HTU == "" || c.IAT == "" {
		return "", dpopFail(dpopCheckClaims, "jti, htm, htu and iat are required")
	}
	if len(c.JTI) > dpopMaxJTIBytes {
		return "", dpopFail(dpopCheckClaims, "jti longer than %d bytes", dpopMaxJTIBytes)
	}
	iatF, err := strconv.ParseFloat(string(c.IAT), 64)
	if err != nil {
		return "", dpopFail(dpopCheckClaims, "iat is not a number")
	}
	if c.HTM != method {
		return "", dpopFail(dpopCheckHTM, "htm %q, want %q", c.HTM, method)
	}
	claimURL, err := url.Parse(c.HTU)
	if err != nil || !isHTTPURL(claimURL) {
		return "", dpopFail(dpopCheckHTU, "htu is not an absolute http(s) URL")
	}
	if got, want := normalizeHTU(claimURL), normalizeHTU(u); got != want {
		return "", dpopFail(dpopCheckHTU, "htu %q, want %q", got, want)
	}
	// Compare in seconds first: an absurd iat would overflow a time.Time.
	now := v.now()
	nowSec, window := float64(now.UnixNano())/1e9, v.set.Window.Seconds()
	if iatF < nowSec-window || iatF > nowSec+window {
		return "", dpopFail(dpopCheckIAT, "iat %s is not within %s of the server's time %d",
			c.IAT, v.set.Window, now.Unix())
	}
	iat := now.Add(time.Duration((iatF - nowSec) * float64(time.Second)))
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		want := base64.RawURLEncoding.EncodeToString(sum[:])
		if c.ATH == "" {
			return "", dpopFail(dpopCheckATH, "ath is required with an access token")
		}
		if subtle.ConstantTimeCompare([]byte(c.ATH), []byte(want)) != 1 {
			return "", dpopFail(dpopCheckATH, "ath is not the hash of the access token")
		}
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.set.NoNonce {
		v.rotateLocked(now, false)
		switch {
		case c.Nonce == "":
			return "", dpopFail(dpopCheckNonce, "a nonce is required")
		case c.Nonce != v.cur && c.Nonce != v.prev:
			return "", dpopFail(dpopCheckNonce, "stale nonce")
		}
	}
	key := jkt + " " + c.JTI
	if forget, ok := v.seen[key]; ok && now.Before(forget) {
		return "", dpopFail(dpopCheckReplay, "jti already used")
	}
	if len(v.seen) >= v.set.MaxReplay {
		v.pruneLocked(now)
		if len(v.seen) >= v.set.MaxReplay {
			return "", dpopFail(dpopCheckReplay, "too many recent proofs")
		}
	}
	// Past iat+Window the proof fails the iat check: no need to remember it.
	v.seen[key] = iat.Add(v.set.Window)
	if !v.set.NoNonce && c.Nonce == v.cur {
		v.uses++
		if v.set.NonceUses > 0 && v.uses >= v.set.NonceUses {
			v.rotateLocked(now, true)
		}
	}
	return jkt, nil
}

// pruneLocked forgets the proofs whose window has passed.
func (v *dpopVerifier) pruneLocked(now time.Time) {
	for k, forget := range v.seen {
		if !now.Before(forget) {
			delete(v.seen, k)
		}
	}
}

// classifyParseError says which check a proof that go-jose could not parse
// failed. The header is read only to name the failure: the proof is
// refused whatever it says.
func classifyParseError(proof string, err error) *dpopError {
	var algErr *jose.ErrUnexpectedSignatureAlgorithm
	if errors.As(err, &algErr) {
		return dpopFail(dpopCheckAlg, "alg %q, want one of %s", algErr.Got, dpopAlgsParam())
	}
	seg, _, _ := strings.Cut(proof, ".")
	var h struct {
		JWK map[string]any `json:"jwk"`
	}
	if b, derr := base64.RawURLEncoding.DecodeString(seg); derr == nil && json.Unmarshal(b, &h) == nil {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := h.JWK[private]; ok {
				return dpopFail(dpopCheckJWK, "jwk holds a private or symmetric key")
			}
		}
		if h.JWK != nil {
			return dpopFail(dpopCheckJWK, "jwk is not a valid public key")
		}
	}
	return dpopFail(dpopCheckMalformed, "not a compact JWS")
}

// keyFitsAlg checks that jwk is a public key alg signs with, of an
// accepted size.
func keyFitsAlg(jwk *jose.JSONWebKey, alg jose.SignatureAlgorithm) *dpopError {
	ok := false
	switch k := jwk.Key.(type) {
	case *ecdsa.PublicKey:
		ok = alg == jose.ES256 && k.Curve == elliptic.P256()
	case *rsa.PublicKey:
		if k.N.BitLen() < dpopMinRSABits {
			return dpopFail(dpopCheckJWK, "RSA key of %d bits, want at least %d", k.N.BitLen(), dpopMinRSABits)
		}
		ok = alg == jose.RS256
	case ed25519.PublicKey:
		ok = alg == jose.EdDSA
	default:
		return dpopFail(dpopCheckJWK, "jwk is not a public key")
	}
	if !ok {
		return dpopFail(dpopCheckAlg, "alg %s does not fit the jwk", alg)
	}
	return nil
}

func isHTTPURL(u *url.URL) bool {
	s := strings.ToLower(u.Scheme)
	return (s == "http" || s == "https") && u.Host != "" && u.Opaque == ""
}

// normalizeHTU returns u's scheme, host and path, without query and
// fragment, after the syntax-based and scheme-based normalisation of
// RFC 3986 §6.2.2 and §6.2.3 that RFC 9449 §4.3 asks of servers: scheme
// and host in lower case, no default port, "/" for an empty path,
// percent-encoded unreserved characters decoded and other escapes in upper
// case, dot segments removed. It is written apart from the client's
// (transport/dpop), so that each checks the other.
func normalizeHTU(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	switch {
	case port != "":
		host = net.JoinHostPort(host, port)
	case strings.Contains(host, ":"):
		host = "[" + host + "]"
	}
	// Path segments: normalise each one's escapes, then resolve . and ..
	segs := strings.Split(u.EscapedPath(), "/")
	var out []string
	for i, s := range segs {
		s = normalizeEscapes(s)
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	path := strings.Join(out, "/")
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return scheme + "://" + host + path
}

// normalizeEscapes decodes the escapes of unreserved characters in s and
// writes the others in upper case.
func normalizeEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				c := byte(n)
				if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
					b.WriteByte(c)
				} else {
					b.WriteString(strings.ToUpper(s[i : i+3]))
				}
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
