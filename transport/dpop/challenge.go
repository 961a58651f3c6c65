package dpop

import (
	"net/http"
	"strings"
)

// IsNonceChallenge reports whether resp is a resource server's demand for a
// proof with its nonce (RFC 9449 §9): a 401 with a challenge
// `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a DPoP-Nonce header.
// The request may then be sent once more, with a new proof made after
// [Prover.ObserveResponse] has seen resp; no new access token is needed.
func IsNonceChallenge(resp *http.Response) bool {
	if resp == nil || resp.StatusCode != http.StatusUnauthorized || !validNonce(resp.Header.Get(NonceHeaderName)) {
		return false
	}
	return dpopChallengeError(resp.Header.Values("Www-Authenticate")) == ErrorUseNonce
}

// IsNonceError reports whether a token endpoint's error answer asks for a
// proof with its nonce (RFC 9449 §8): a 400 whose OAuth error code (the
// "error" member of its JSON body, which the caller has read) is
// use_dpop_nonce, with a DPoP-Nonce header. The server did not process the
// request, so it may be sent once more, with a new proof made after
// [Prover.ObserveResponse] has seen the response: even a refresh request,
// whose refresh token has not been used.
func IsNonceError(status int, header http.Header, errorCode string) bool {
	return status == http.StatusBadRequest && errorCode == ErrorUseNonce &&
		validNonce(header.Get(NonceHeaderName))
}

// maxChallengeBytes bounds how much of the WWW-Authenticate fields is read.
const maxChallengeBytes = 8 << 10

// dpopChallengeError returns the error parameter of the first DPoP
// challenge in the WWW-Authenticate field values, or "". The parse is
// lenient and small: the values are split into comma-separated elements
// (outside quoted strings); an element "scheme" or "scheme name=value"
// starts a challenge, an element "name=value" is a parameter of the
// current one (RFC 9110 §11.6.1). A token68 challenge has no parameters.
func dpopChallengeError(values []string) string {
	budget := maxChallengeBytes
	for _, v := range values {
		if len(v) > budget {
			v = v[:budget]
		}
		budget -= len(v)
		inDPoP := false
		for _, elem := range splitList(v) {
			elem = strings.TrimSpace(elem)
			if elem == "" {
				continue
			}
			name, rest := leadingToken(elem)
			rest = strings.TrimLeft(rest, " \t")
			if !strings.HasPrefix(rest, "=") { // a scheme, maybe with a first parameter
				inDPoP = strings.EqualFold(name, TokenType)
				name, rest = leadingToken(rest)
				rest = strings.TrimLeft(rest, " \t")
			}
			if !inDPoP || !strings.EqualFold(name, "error") || !strings.HasPrefix(rest, "=") {
				continue
			}
			value := rest[1:]
			return unquote(strings.TrimSpace(value))
		}
		if budget <= 0 {
			break
		}
	}
	return ""
}

// leadingToken splits s after its leading token characters (RFC 9110 §5.6.2).
func leadingToken(s string) (token, rest string) {
	i := 0
	for i < len(s) && (isUnreserved(s[i]) || strings.IndexByte("!#$%&'*+^`|", s[i]) >= 0) {
		i++
	}
	return s[:i], s[i:]
}

// splitList splits s at the commas that are not inside a quoted string.
func splitList(s string) []string {
	var elems []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				elems = append(elems, s[start:i])
				start = i + 1
			}
		}
	}
	return append(elems, s[start:])
}

// unquote returns the content of a quoted string, without its
// backslashes, or s itself if it is a token.
func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
