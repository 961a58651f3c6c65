package refresher

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

	"golang.org/x/oauth2"
)

// answerSpec says where the tokens are in an answer of a refresh endpoint.
// A path is dotted ("data.accessToken"; a number indexes an array); an empty
// path or cookie name is not read.
type answerSpec struct {
	access, refresh, expiresIn, tokenType string
	accessCookie, refreshCookie           string
}

// oauthSpec is the answer of RFC 6749 §5.1.
var oauthSpec = answerSpec{
	access:    "access_token",
	refresh:   "refresh_token",
	expiresIn: "expires_in",
	tokenType: "token_type",
}

// parseAnswer turns an answer into a token, or into a *RefreshError that
// says what was wrong with it. It never panics, and no error it returns
// contains a value read from the body other than the server's own error
// code and description. note, if not empty, tells about an expiry that was
// ignored.
func parseAnswer(spec answerSpec, status int, header http.Header, body []byte, now time.Time) (tok *oauth2.Token, note string, rerr *RefreshError) {
	if e := classifyAnswer(status, header, body); e != nil {
		return nil, "", e
	}
	var (
		fields  func(path string) (any, bool)
		extra   any
		trimmed = bytes.TrimSpace(body)
		mt      = mediaType(header.Get("Content-Type"))
		cookies = answerCookies(header, spec)
	)
	switch {
	case len(trimmed) == 0 && spec.accessCookie != "":
		fields = func(string) (any, bool) { return nil, false }
	case len(trimmed) == 0:
		return nil, "", parseFailure(status, "the answer has an empty body (Content-Type %q)", mt)
	case (mt == "application/x-www-form-urlencoded" || mt == "text/plain") && trimmed[0] != '{':
		vals, err := url.ParseQuery(string(trimmed))
		if err != nil {
			return nil, "", parseFailure(status, "the %s answer cannot be parsed as a form", mt)
		}
		fields = func(path string) (any, bool) {
			if !vals.Has(path) {
				return nil, false
			}
			return vals.Get(path), true
		}
		extra = vals
	case trimmed[0] != '{' && trimmed[0] != '[':
		return nil, "", parseFailure(status, "the answer is not JSON (Content-Type %q, %d bytes, starting with %s)",
			mt, len(body), describeStart(trimmed))
	default:
		d := json.NewDecoder(bytes.NewReader(trimmed))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			return nil, "", parseFailure(status, "the answer is not valid JSON (%d bytes, Content-Type %q): %s",
				len(body), mt, jsonProblem(err))
		}
		if d.More() {
			return nil, "", parseFailure(status, "the answer has data after its JSON value")
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, "", parseFailure(status, "the answer is JSON but not an object")
		}
		fields = func(path string) (any, bool) { return lookup(obj, path) }
		extra = obj
	}

	tok = &oauth2.Token{}
	var err error
	if tok.AccessToken, err = stringField(fields, spec.access, "access token"); err != nil {
		return nil, "", parseFailure(status, "%v", err)
	}
	if tok.AccessToken == "" {
		tok.AccessToken = cookies[spec.accessCookie]
	}
	if tok.AccessToken == "" {
		return nil, "", parseFailure(status, "the answer has no access token: %s", missing(spec, extra))
	}
	if tok.RefreshToken, err = stringField(fields, spec.refresh, "refresh token"); err != nil {
		return nil, "", parseFailure(status, "%v", err)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = cookies[spec.refreshCookie]
	}
	if tok.TokenType, err = stringField(fields, spec.tokenType, "token type"); err != nil {
		return nil, "", parseFailure(status, "%v", err)
	}
	var expiresIn any
	if spec.expiresIn != "" {
		if v, ok := fields(spec.expiresIn); ok && v != nil && v != "" {
			expiresIn = v
		}
	}
	tok.Expiry, tok.ExpiresIn, note = inferExpiry(now, expiresIn, tok.AccessToken, header.Get("Date"))
	if extra != nil {
		tok = tok.WithExtra(extra)
	}
	return tok, note, nil
}

// stringField reads the string at path; absent or null gives "".
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
// A cookie that deletes itself is ignored.
func answerCookies(h http.Header, spec answerSpec) map[string]string {
	if spec.accessCookie == "" && spec.refreshCookie == "" || len(h["Set-Cookie"]) == 0 {
		return nil
	}
	m := make(map[string]string)
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name != spec.accessCookie && c.Name != spec.refreshCookie {
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
// holds instead (its keys, never its values).
func missing(spec answerSpec, extra any) string {
	var where []string
	if spec.access != "" {
		where = append(where, fmt.Sprintf("nothing at %q", spec.access))
	}
	if spec.accessCookie != "" {
		where = append(where, fmt.Sprintf("no cookie %q", spec.accessCookie))
	}
	if len(where) == 0 {
		return "no place to read it from is configured"
	}
	s := strings.Join(where, " and ")
	switch x := extra.(type) {
	case map[string]any:
		s += "; " + describeKeys(keysOf(x))
	case url.Values:
		s += "; " + describeKeys(keysOf(x))
	}
	return s
}

func keysOf[M ~map[string]V, V any](m M) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func describeKeys(keys []string) string {
	if len(keys) == 0 {
		return "the answer is empty"
	}
	for i, k := range keys {
		keys[i] = strconv.Quote(cleanText(k, 40))
	}
	if len(keys) > 10 {
		keys = append(keys[:10], "…")
	}
	return "its keys are " + strings.Join(keys, ", ")
}

// describeStart names the start of a non-JSON body without quoting it.
func describeStart(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("<")):
		return "'<' (HTML or XML)"
	case b[0] < 0x20 || b[0] >= 0x7f:
		return fmt.Sprintf("byte 0x%02x", b[0])
	default:
		return fmt.Sprintf("%q", b[:1])
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
