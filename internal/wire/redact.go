package wire

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
	"unicode"
)

// minSecret is the shortest value redacted: shorter ones would blank out
// ordinary words of a message and are no secret worth the name.
const minSecret = 4

// redacted replaces a secret in a text derived from an answer.
const redacted = "[redacted]"

// Secrets are the values a refresh request carried that must never appear
// in an error or a log line: the refresh token, the client secret, the
// configured fields and header values, the cookies. Every text derived from
// the answer passes through Redact before it is cut to length, so that no
// part of a secret survives the cut.
//
// The zero value redacts nothing. Secrets is not safe for concurrent
// mutation; it is built once per request.
type Secrets struct {
	list []string // longest first
}

// NewSecrets returns the Secrets holding values.
func NewSecrets(values ...string) *Secrets {
	s := &Secrets{}
	s.Add(values...)
	return s
}

// Add adds values, each also in the encodings in which a request carries
// it (form-encoded; and, for an Authorization value "<scheme>
// <credentials>", the credentials and what they decode to).
func (s *Secrets) Add(values ...string) {
	for _, v := range values {
		s.add(v)
		s.add(url.QueryEscape(v))
		if scheme, cred, ok := strings.Cut(v, " "); ok && isSchemeName(scheme) {
			s.add(cred)
			if b, err := base64.StdEncoding.DecodeString(cred); err == nil {
				user, pass, _ := strings.Cut(string(b), ":")
				s.add(string(b))
				s.add(pass)
				if u, err := url.QueryUnescape(pass); err == nil {
					s.add(u)
				}
				_ = user // a client ID is not a secret
			}
		}
	}
	slices.SortFunc(s.list, func(a, b string) int { return len(b) - len(a) })
	s.list = slices.Compact(s.list)
}

func (s *Secrets) add(v string) {
	if len(v) >= minSecret && !slices.Contains(s.list, v) {
		s.list = append(s.list, v)
	}
}

// Redact returns text without any of the secrets.
func (s *Secrets) Redact(text string) string {
	if s == nil {
		return text
	}
	for _, v := range s.list {
		if strings.Contains(text, v) {
			text = strings.ReplaceAll(text, v, redacted)
		}
	}
	return text
}

// RedactBytes returns b without any of the secrets, as a new slice when
// one was found.
func (s *Secrets) RedactBytes(b []byte) []byte {
	if s == nil {
		return b
	}
	for _, v := range s.list {
		if bytes.Contains(b, []byte(v)) {
			b = bytes.ReplaceAll(b, []byte(v), []byte(redacted))
		}
	}
	return b
}

// Quote returns text fit to be quoted in an error message: redacted first,
// then printable, at most n runes.
func (s *Secrets) Quote(text string, n int) string {
	return clip(s.Redact(text), n)
}

// clip makes s printable and at most n runes long. It must only be given
// redacted text.
func clip(s string, n int) string {
	if len(s) > 4*n+4 {
		s = s[:4*n+4] // no rune is longer than 4 bytes
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsPrint(r) {
			return r
		}
		return ' '
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return strings.TrimSpace(s)
}

func isSchemeName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
