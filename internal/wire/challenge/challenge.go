// Package challenge reads the WWW-Authenticate header of an answer (RFC 9110
// §11.6.1, RFC 6750 §3), leniently and within fixed bounds, for the two
// questions this module asks of it: may a new token heal this answer (the
// transport), and does the answer ask for credentials other than a token
// (the refresh endpoints).
package challenge

import (
	"net/http"
	"strings"
)

// Bounds of the WWW-Authenticate parser. A server's header is read up to
// maxChallengeBytes (all fields together); what lies beyond is ignored, as
// are challenges beyond maxChallenges and parameters beyond maxParams.
const (
	maxChallengeBytes = 8 << 10
	maxChallenges     = 16
	maxParams         = 16
)

// challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 9110 §11.6.1, RFC 6750 §3):
//
//	challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
type challenge struct {
	scheme  string  // as sent; compare with strings.EqualFold
	token68 string  // set instead of params, e.g. "Negotiate abc=="
	params  []param // names in lower case, values unquoted, in order
}

type param struct{ name, value string }

// param returns the value of the first parameter called name (lower case).
func (c challenge) param(name string) (string, bool) {
	for _, p := range c.params {
		if p.name == name {
			return p.value, true
		}
	}
	return "", false
}

// hasParam reports whether ps has a parameter called name, in any case.
func hasParam(ps []param, name string) bool {
	for _, p := range ps {
		if strings.EqualFold(p.name, name) {
			return true
		}
	}
	return false
}

// String formats c as a challenge that parses back to c.
func (c challenge) String() string {
	var b strings.Builder
	b.WriteString(c.scheme)
	if c.token68 != "" {
		b.WriteByte(' ')
		b.WriteString(c.token68)
	}
	for i, p := range c.params {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(p.name)
		b.WriteString(`="`)
		for j := 0; j < len(p.value); j++ {
			if p.value[j] == '"' || p.value[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(p.value[j])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// RefreshMayHelp reports whether a refresh may heal an answer carrying
// header, to a request authenticated with scheme; see refreshMayHelp.
func RefreshMayHelp(header http.Header, scheme string) bool { return refreshMayHelp(header, scheme) }

// OtherSchemesOnly reports whether header holds readable challenges and none
// of them is for scheme: the server asks for credentials of another kind
// (Basic, Digest, ...), such as a client's own, not for a token.
func OtherSchemesOnly(header http.Header, scheme string) bool {
	cs := parseChallenges(header.Values("Www-Authenticate"))
	for _, c := range cs {
		if strings.EqualFold(c.scheme, scheme) {
			return false
		}
	}
	return len(cs) > 0
}

// refreshMayHelp reports whether a refresh may heal a response carrying
// header, to a request authenticated with scheme (the token type):
//
//   - no WWW-Authenticate challenge that can be read: yes (servers such as
//     cookie-session APIs send none);
//   - a challenge for scheme whose error is insufficient_scope or
//     invalid_request: no, a new token does not change the token's scope or
//     fix the request (RFC 6750 §3.1);
//   - another challenge for scheme: yes;
//   - challenges only for other schemes (Basic, Digest, ...): no, the
//     server asks for credentials this Transport does not manage.
func refreshMayHelp(header http.Header, scheme string) bool {
	cs := parseChallenges(header.Values("Www-Authenticate"))
	if len(cs) == 0 {
		return true
	}
	ours := false
	for _, c := range cs {
		if !strings.EqualFold(c.scheme, scheme) {
			continue
		}
		ours = true
		if e, _ := c.param("error"); e == "insufficient_scope" || e == "invalid_request" {
			return false
		}
	}
	return ours
}

// parseChallenges parses the values of WWW-Authenticate header fields,
// leniently: an element that does not parse is skipped up to the next comma.
// It reads at most maxChallengeBytes and returns at most maxChallenges
// challenges of at most maxParams parameters each.
func parseChallenges(values []string) []challenge {
	var cs []challenge
	budget := maxChallengeBytes
	for _, v := range values {
		if budget <= 0 || len(cs) == maxChallenges {
			break
		}
		if len(v) > budget {
			v = v[:budget]
		}
		budget -= len(v)
		p := &challengeParser{s: v}
		cs = p.parse(cs)
	}
	return cs
}

type challengeParser struct {
	s string
	i int
}

func (p *challengeParser) parse(cs []challenge) []challenge {
	for len(cs) < maxChallenges {
		p.skipListSeparators()
		if p.eof() {
			break
		}
		scheme := p.token()
		if scheme == "" || !(p.eof() || p.s[p.i] == ',' || p.s[p.i] == ' ' || p.s[p.i] == '\t') {
			p.skipElement()
			continue
		}
		c := challenge{scheme: scheme}
		if p.sp() {
			if t68, ok := p.token68(); ok {
				c.token68 = t68
			} else {
				c.params = p.params()
			}
		}
		p.ows()
		if !p.eof() && p.s[p.i] != ',' {
			// Junk after the challenge: keep what was read, resync.
			p.skipElement()
		}
		cs = append(cs, c)
	}
	return cs
}

// params reads a comma-separated list of auth-params. It stops at the comma
// before an element that is not an auth-param (the next challenge), or at
// the start of an auth-param that does not parse.
func (p *challengeParser) params() []param {
	var ps []param
	for {
		start := p.i
		name := p.token()
		p.ows()
		if name == "" || p.eof() || p.s[p.i] != '=' {
			p.i = start
			return ps
		}
		p.i++
		p.ows()
		value, quoted := p.quoted()
		if !quoted {
			value = p.token()
		}
		if value == "" && !quoted {
			p.i = start
			return ps
		}
		if len(ps) < maxParams && !hasParam(ps, name) {
			if quoted {
				value = unescape(value)
			}
			ps = append(ps, param{strings.ToLower(name), value})
		}
		p.ows()
		if p.eof() || p.s[p.i] != ',' {
			return ps
		}
		// A comma: more params of this challenge, or the next challenge.
		save := p.i
		p.skipListSeparators()
		if p.eof() {
			return ps
		}
		next := p.i
		p.token()
		p.ows()
		isParam := !p.eof() && p.s[p.i] == '='
		if !isParam {
			p.i = save
			return ps
		}
		p.i = next
	}
}

// token68 reads a token68 that forms the whole rest of the challenge
// (followed by the end or a comma). Otherwise it reads nothing.
func (p *challengeParser) token68() (string, bool) {
	start, i := p.i, p.i
	for i < len(p.s) && isToken68Char(p.s[i]) {
		i++
	}
	if i == start {
		return "", false
	}
	for i < len(p.s) && p.s[i] == '=' {
		i++
	}
	end := i
	for i < len(p.s) && (p.s[i] == ' ' || p.s[i] == '\t') {
		i++
	}
	if i < len(p.s) && p.s[i] != ',' {
		return "", false
	}
	p.i = end
	return p.s[start:end], true
}

// quoted reads a quoted-string and returns its content, still escaped.
func (p *challengeParser) quoted() (string, bool) {
	if p.eof() || p.s[p.i] != '"' {
		return "", false
	}
	for i := p.i + 1; i < len(p.s); i++ {
		switch c := p.s[i]; {
		case c == '"':
			raw := p.s[p.i+1 : i]
			p.i = i + 1
			return raw, true
		case c == '\\' && i+1 < len(p.s) && isQuotedPairChar(p.s[i+1]):
			i++
		case !isQdtext(c):
			return "", false
		}
	}
	return "", false // unterminated
}

// unescape removes the backslashes of the quoted-pairs of a quoted
// string's content.
func unescape(raw string) string {
	if strings.IndexByte(raw, '\\') < 0 {
		return raw
	}
	b := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] == '\\' {
			i++
		}
		b = append(b, raw[i])
	}
	return string(b)
}

func (p *challengeParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *challengeParser) eof() bool { return p.i >= len(p.s) }

// sp skips one or more spaces, and reports whether there was one.
func (p *challengeParser) sp() bool {
	start := p.i
	p.ows()
	return p.i > start
}

func (p *challengeParser) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *challengeParser) skipListSeparators() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
}

// skipElement skips to the next comma outside a quoted string.
func (p *challengeParser) skipElement() {
	quoted := false
	for ; p.i < len(p.s); p.i++ {
		switch c := p.s[p.i]; {
		case quoted && c == '\\':
			p.i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return
		}
	}
}

// isTokenChar reports whether c is a tchar (RFC 9110 §5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}

// isQdtext reports whether c may appear unescaped in a quoted-string.
func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (0x23 <= c && c <= 0x5b) || (0x5d <= c && c <= 0x7e) || c >= 0x80
}

func isQuotedPairChar(c byte) bool {
	return c == '\t' || (0x20 <= c && c <= 0x7e) || c >= 0x80
}
