package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"
)

// Spec says where the tokens are in an answer of a refresh endpoint. A path
// is dotted ("data.accessToken"; a number indexes an array); an empty path
// or cookie name is not read.
type Spec struct {
	Access, Refresh, ExpiresIn, TokenType string
	AccessCookie, RefreshCookie           string

	// Keep names the fields of the answer, besides the tokens, that the
	// token keeps (see [oauth2.Token.Extra]); the others are dropped.
	Keep []string
}

// OAuthSpec is the answer of RFC 6749 §5.1.
var OAuthSpec = Spec{
	Access:    "access_token",
	Refresh:   "refresh_token",
	ExpiresIn: "expires_in",
	TokenType: "token_type",
}

// Answer is an answer of a refresh endpoint, its body read.
type Answer struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

// Parse turns an answer into a token, or into a Failure that says what was
// wrong with it (see Classify). It never panics, and no Failure it returns
// quotes a value read from the body other than the server's own error code
// and description, redacted; nor anything at all from a body it could not
// parse. note, if not empty, tells about an expiry that was ignored.
//
// A token value that is no token ("undefined", "null", "[object
// Object]", "deleted", one with spaces or control characters) is never
// adopted: the answer fails.
func Parse(spec Spec, a Answer, secrets *Secrets, now time.Time) (tok *oauth2.Token, note string, f *Failure) {
	if a.Header == nil {
		a.Header = http.Header{}
	}
	if f := Classify(a.StatusCode, a.Header, a.Body, secrets); f != nil {
		return nil, "", f
	}
	fail := func(kind error, format string, args ...any) (*oauth2.Token, string, *Failure) {
		return nil, "", &Failure{StatusCode: a.StatusCode, Err: newCause(kind, nil, fmt.Sprintf(format, args...))}
	}
	var (
		fields  func(path string) (any, bool)
		extra   any
		trimmed = bytes.TrimSpace(a.Body)
		mt      = secrets.Quote(mediaType(a.Header.Get("Content-Type")), 64)
		cookies = answerCookies(a.Header, spec)
	)
	switch {
	case len(trimmed) == 0 && spec.AccessCookie != "":
		fields = func(string) (any, bool) { return nil, false }
	case len(trimmed) == 0:
		return fail(nil, "the answer has an empty body (Content-Type %q)", mt)
	case isMarkup(a.Header, a.Body):
		return fail(ErrBlocked, "the answer is an %s page, not JSON (Content-Type %q, %d bytes): a login page or a proxy answered instead of the refresh endpoint; check what stands in front of it",
			markupName(a.Header, a.Body), mt, len(a.Body))
	case (mt == "application/x-www-form-urlencoded" || mt == "text/plain") && trimmed[0] != '{':
		vals, err := url.ParseQuery(string(trimmed))
		if err != nil || !bytes.Contains(trimmed, []byte("=")) {
			return fail(nil, "the answer is neither JSON nor a form (Content-Type %q, %d bytes)", mt, len(a.Body))
		}
		fields = func(path string) (any, bool) {
			if !vals.Has(path) {
				return nil, false
			}
			return vals.Get(path), true
		}
		extra = vals
	case trimmed[0] != '{' && trimmed[0] != '[':
		return fail(nil, "the answer is not JSON (Content-Type %q, %d bytes, starting with %s)", mt, len(a.Body), describeStart(trimmed))
	default:
		d := json.NewDecoder(bytes.NewReader(trimmed))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return fail(nil, "the answer is not valid JSON (%d bytes, Content-Type %q): %s", len(a.Body), mt, jsonProblem(err))
		}
		if d.More() {
			return fail(nil, "the answer has data after its JSON value")
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return fail(nil, "the answer is JSON but not an object")
		}
		fields = func(path string) (any, bool) { return lookup(obj, path) }
		extra = obj
	}

	tok = &oauth2.Token{}
	read := func(path, cookie, what string) (string, error) {
		s, err := stringField(fields, path, what)
		if err != nil || s != "" {
			return s, err
		}
		if c := cookies[cookie]; c != "" {
			if err := checkToken(c, fmt.Sprintf("the %s in cookie %q", what, cookie)); err != nil {
				return "", err
			}
			return c, nil
		}
		return "", nil
	}
	var err error
	if tok.AccessToken, err = read(spec.Access, spec.AccessCookie, "access token"); err != nil {
		return fail(nil, "%v", err)
	}
	if tok.AccessToken == "" {
		return fail(nil, "the answer has no access token: %s", missing(spec, extra, secrets))
	}
	if tok.RefreshToken, err = read(spec.Refresh, spec.RefreshCookie, "refresh token"); err != nil {
		return fail(nil, "%v", err)
	}
	if tok.TokenType, err = stringField(fields, spec.TokenType, "token type"); err != nil {
		return fail(nil, "%v", err)
	}
	var expiresIn any
	if spec.ExpiresIn != "" {
		if v, ok := fields(spec.ExpiresIn); ok && v != nil && v != "" {
			expiresIn = v
		}
	}
	tok.Expiry, tok.ExpiresIn, note = InferExpiry(now, expiresIn, tok.AccessToken, a.Header.Get("Date"))
	if k := kept(extra, spec.Keep); k != nil {
		tok = tok.WithExtra(k)
	}
	return tok, note, nil
}

// kept returns the top-level fields of extra (a JSON object or a form)
// named in names, in extra's own form, or nil if there are none: a token
// holds only the fields its caller asked for, not the whole answer.
func kept(extra any, names []string) any {
	if len(names) == 0 {
		return nil
	}
	switch x := extra.(type) {
	case map[string]any:
		m := make(map[string]any, len(names))
		for _, n := range names {
			if v, ok := x[n]; ok {
				m[n] = v
			}
		}
		if len(m) > 0 {
			return m
		}
	case url.Values:
		v := make(url.Values, len(names))
		for _, n := range names {
			if vs, ok := x[n]; ok {
				v[n] = vs
			}
		}
		if len(v) > 0 {
			return v
		}
	}
	return nil
}

// junk are the values that servers and front ends write where a token
// should be, lower-cased: JavaScript's renderings of a missing value, and
// the placeholder of a cookie being cleared.
var junk = map[string]bool{
	"undefined": true, "null": true, "nil": true, "none": true, "nan": true,
	"false": true, "true": true, "0": true, "-": true, `""`: true, "''": true,
	"deleted": true, "[object object]": true, "invalid": true, "expired": true,
}

// checkToken reports a value that is no token; what names it.
func checkToken(s, what string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return fmt.Errorf("%s is blank", what)
	case junk[strings.ToLower(s)]:
		return fmt.Errorf("%s is %q, which is no token", what, s)
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("%s holds spaces or control characters, which no token does", what)
	}
	return nil
}

// stringField reads the token at path; absent, null or "" gives "" (the
// answer holds none), any other value that is no token an error.
func stringField(fields func(string) (any, bool), path, what string) (string, error) {
	if path == "" {
		return "", nil
	}
	v, ok := fields(path)
	if !ok || v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("the %s at %q is %s, not a string", what, path, kind(v))
	}
	if s == "" {
		return "", nil
	}
	if err := checkToken(s, fmt.Sprintf("the %s at %q", what, path)); err != nil {
		return "", err
	}
	return s, nil
}

// lookup follows a dotted path through decoded JSON.
func lookup(v any, path string) (any, bool) {
	for part := range strings.SplitSeq(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = x[part]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// answerCookies returns the values of the token cookies set by the answer.
// A cookie that deletes itself, or is empty, is ignored.
func answerCookies(h http.Header, spec Spec) map[string]string {
	if spec.AccessCookie == "" && spec.RefreshCookie == "" || len(h["Set-Cookie"]) == 0 {
		return nil
	}
	m := make(map[string]string)
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name != spec.AccessCookie && c.Name != spec.RefreshCookie {
			continue
		}
		if c.Value == "" || c.MaxAge < 0 || !c.Expires.IsZero() && c.Expires.Before(time.Now()) {
			continue
		}
		m[c.Name] = c.Value
	}
	return m
}

// missing says where an access token was looked for, and what the answer
// holds instead: the names of a JSON object's keys that look like names
// (never values, never a key that might be a token), or the number of a
// form's fields.
func missing(spec Spec, extra any, secrets *Secrets) string {
	var where []string
	if spec.Access != "" {
		where = append(where, fmt.Sprintf("nothing at %q", spec.Access))
	}
	if spec.AccessCookie != "" {
		where = append(where, fmt.Sprintf("no cookie %q", spec.AccessCookie))
	}
	if len(where) == 0 {
		return "no place to read it from is configured"
	}
	s := strings.Join(where, " and ")
	switch x := extra.(type) {
	case map[string]any:
		s += "; " + describeKeys(x, secrets)
	case url.Values:
		s += fmt.Sprintf("; the form has %d fields", len(x))
	}
	return s
}

// describeKeys names the keys of a JSON object that look like field names;
// the others are only counted.
func describeKeys(m map[string]any, secrets *Secrets) string {
	if len(m) == 0 {
		return "the answer is empty"
	}
	var names []string
	others := 0
	for k := range m {
		if q := secrets.Redact(k); q == k && looksLikeName(k) {
			names = append(names, strconv.Quote(k))
		} else {
			others++
		}
	}
	slices.Sort(names)
	if len(names) > 10 {
		others += len(names) - 10
		names = names[:10]
	}
	s := "its keys are " + strings.Join(names, ", ")
	switch {
	case len(names) == 0:
		s = fmt.Sprintf("it has %d keys that do not look like names", others)
	case others > 0:
		s += fmt.Sprintf(" and %d more", others)
	}
	return s
}

// looksLikeName reports whether a key is short and made of the characters
// of a field name, so that quoting it cannot leak a token.
func looksLikeName(k string) bool {
	if k == "" || len(k) > 32 {
		return false
	}
	for i, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_' || r == '$' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// describeStart names the start of a non-JSON body without quoting it.
func describeStart(b []byte) string {
	switch {
	case b[0] < 0x20 || b[0] >= 0x7f:
		return fmt.Sprintf("byte 0x%02x", b[0])
	case unicode.IsLetter(rune(b[0])) || unicode.IsDigit(rune(b[0])):
		return "a letter or digit"
	default:
		return "a punctuation mark"
	}
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "it is truncated"
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	return "it cannot be decoded"
}

func kind(v any) string {
	switch v.(type) {
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}
