package refresher

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/autorefresh/autorefresh/internal/wire"
	"golang.org/x/oauth2"
)

// SendMode says how a [JSONEndpoint] presents the refresh token.
type SendMode int

const (
	// SendJSON posts {"<RefreshTokenField>": "<refresh token>"} as
	// application/json. It is the default.
	SendJSON SendMode = iota
	// SendForm posts <RefreshTokenField>=<refresh token> as
	// application/x-www-form-urlencoded.
	SendForm
	// SendCookie posts no body and sends the refresh token in the cookie
	// named RefreshCookie.
	SendCookie
)

// JSONEndpoint is an [Endpoint] for refresh APIs of their own, outside
// RFC 6749: it posts the refresh token as a JSON field (or a form field, or a
// cookie) and reads the new tokens from dotted paths of the JSON answer
// and/or from the cookies it sets.
//
// Its zero value but URL works against a plain
// {"access_token","refresh_token","expires_in"} API:
//
//	ep := &refresher.JSONEndpoint{URL: "https://api.example.com/auth/refresh"}
//
// A JSONEndpoint must not be copied after first use. Its methods are safe for
// concurrent use by multiple goroutines.
type JSONEndpoint struct {
	// URL is where the refresh request is posted.
	URL string

	// Method is the HTTP method of the refresh request. If empty, POST.
	Method string

	// SendAs says how the refresh token is sent: [SendJSON] (the
	// default), [SendForm] or [SendCookie].
	SendAs SendMode

	// RefreshTokenField is the name of the request's field holding the
	// refresh token (SendJSON, SendForm). If empty, "refresh_token".
	RefreshTokenField string

	// RefreshCookie is the name of the request cookie holding the refresh
	// token (SendCookie). If empty, RefreshTokenField's value is used.
	RefreshCookie string

	// Fields are sent with the refresh token, as further JSON or form
	// fields (not with SendCookie).
	Fields map[string]string

	// AccessTokenPath is the dotted path of the access token in the JSON
	// answer ("data.accessToken"; a number indexes an array). If empty,
	// "access_token"; "-" reads none (the token then comes from
	// AccessCookieName).
	AccessTokenPath string

	// RefreshTokenPath is the dotted path of the new refresh token. If
	// empty, "refresh_token"; "-" reads none. An answer without one keeps
	// the current refresh token (RFC 6749 §6).
	RefreshTokenPath string

	// ExpiresInPath is the dotted path of the access token's lifetime in
	// seconds. If empty, "expires_in"; "-" reads none. Without it (or when
	// it is implausible: not positive, or over 10 years), the expiry comes
	// from the access token's JWT "exp" claim, if it is a JWT, and is
	// unknown otherwise.
	ExpiresInPath string

	// TokenTypePath is the dotted path of the token type ("Bearer"). If
	// empty, "token_type"; "-" reads none. An absent type means Bearer.
	TokenTypePath string

	// AccessCookieName and RefreshCookieName, if set, name the cookies of
	// the answer (Set-Cookie) that carry the tokens. A token found in the
	// JSON answer takes precedence over its cookie.
	AccessCookieName, RefreshCookieName string

	// KeepExtra names the fields of the JSON answer (top-level keys),
	// besides the tokens, that the returned token keeps for
	// [oauth2.Token.Extra], such as "data" or "user". The others are
	// dropped, so that a session does not hold the whole decoded answer.
	KeepExtra []string

	// Header holds extra headers sent with every refresh request, such as
	// an API key or an Origin.
	Header http.Header

	// Jar, if not nil, makes this a cookie session: the refresh call sends
	// the jar's cookies (the refresh token cookie, say) and keeps the
	// cookies of its answer in it. It is the one place to name the jar: a
	// Transport built by the transport package on a [Source] of this
	// endpoint carries the session in the same jar (re-applying its
	// current cookies to every attempt, the replay included), and
	// transport.NewClient sets it as the [http.Client]'s Jar. With an
	// HTTPClient of one's own, that client's Jar must be nil (the refresh
	// call then uses a copy of it with Jar) or this same jar.
	Jar http.CookieJar

	// HTTPClient sends the refresh request. If nil, a client from
	// [NewHTTPClient] with the default [ClientConfig], Jar and Logger is
	// used.
	// It must not be a client that adds tokens itself, such as one from
	// this module's transport package. A client of one's own gets no
	// retries unless it comes from NewHTTPClient; answers are read at
	// most 1 MiB whatever the client.
	HTTPClient *http.Client

	// Logger receives a warning when the answer's expiry is implausible
	// (once per endpoint) and, with the default HTTPClient, the retries.
	// If nil, nothing is logged. Nothing logged contains a token.
	Logger *slog.Logger

	defaults defaultClient
	noted    wire.NoteOnce

	// LogoutURL, if set, is where [Source.Logout] posts the refresh token,
	// the same way as a refresh (field, form or cookie, with Fields and
	// Headers), to end the session at the server: for an Express-style API,
	// its POST /api/v1/users/logout. A 2xx answer means revoked.
	LogoutURL string
}

// ExpressEndpoint returns a [JSONEndpoint] for the refresh API common to
// Node.js/Express backends, reached at baseURL (the Express API of the
// bundled test server): it posts {"refreshToken": "..."} to
// baseURL+"/api/v1/users/refresh-token" and reads the answer
// {"data":{"accessToken","refreshToken"}}, falling back to the cookies
// accessToken and refreshToken. Such an API sends no expires_in; the
// expiry comes from the access token's JWT "exp" claim. For a session kept
// in httpOnly cookies, set the returned endpoint's Jar.
func ExpressEndpoint(baseURL string) *JSONEndpoint {
	return &JSONEndpoint{
		URL:               strings.TrimSuffix(baseURL, "/") + "/api/v1/users/refresh-token",
		LogoutURL:         strings.TrimSuffix(baseURL, "/") + "/api/v1/users/logout",
		RefreshTokenField: "refreshToken",
		AccessTokenPath:   "data.accessToken",
		RefreshTokenPath:  "data.refreshToken",
		ExpiresInPath:     "-",
		AccessCookieName:  "accessToken",
		RefreshCookieName: "refreshToken",
	}
}

// SeedEndpoint is [ExpressEndpoint], under its former name.
//
// Deprecated: use [ExpressEndpoint].
func SeedEndpoint(baseURL string) *JSONEndpoint {
	return ExpressEndpoint(baseURL)
}

// Refresh posts current.RefreshToken to e.URL and returns the tokens of the
// answer. When the answer holds no refresh token, the returned token keeps
// current's. Failures are [*RefreshError]s; see [RefreshError.Kind].
func (e *JSONEndpoint) Refresh(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	if current == nil || current.RefreshToken == "" {
		return nil, sessionOver("there is no refresh token")
	}
	req, err := e.newRequest(ctx, current.RefreshToken)
	if err != nil {
		return nil, refreshError(wire.Fail(err))
	}
	client, err := e.httpClient()
	if err != nil {
		return nil, refreshError(wire.Fail(err))
	}
	tok, note, f := wire.Exchange(client, req, e.spec(), e.secrets(current.RefreshToken))
	if f != nil {
		return nil, refreshError(f)
	}
	e.noted.Log(e.Logger, note, wire.LogURL(e.URL))
	if tok.RefreshToken == "" {
		tok.RefreshToken = current.RefreshToken
	}
	return tok, nil
}

// checksFence marks an endpoint whose HTTP client confirms the Source's
// lock right before each attempt is written.
func (e *JSONEndpoint) checksFence() {}

// ParseResponse reads a token from an answer of the API as Refresh does:
// the status is classified (see [RefreshError]), the body is read at most
// 1 MiB and closed, and the tokens are looked for at the configured paths
// and cookies. It also suits the answer of the API's login call, when that
// has the same shape. A returned token may lack a refresh token.
func (e *JSONEndpoint) ParseResponse(resp *http.Response) (*oauth2.Token, error) {
	tok, note, f := wire.ParseResponse(resp, e.spec(), e.secrets())
	if f != nil {
		return nil, refreshError(f)
	}
	e.noted.Log(e.Logger, note, wire.LogURL(e.URL))
	return tok, nil
}

// secrets returns what a request of e carries that no error may show: the
// given tokens, the values of Fields and of Header.
func (e *JSONEndpoint) secrets(tokens ...string) *wire.Secrets {
	s := wire.NewSecrets(tokens...)
	for _, v := range e.Fields {
		s.Add(v)
	}
	for _, vs := range e.Header {
		s.Add(vs...)
	}
	return s
}

// newRequest builds the refresh request. Its errors are misconfigurations.
func (e *JSONEndpoint) newRequest(ctx context.Context, refresh string) (*http.Request, error) {
	if err := wire.CheckURL("JSONEndpoint.URL", e.URL); err != nil {
		return nil, err
	}
	field := orDefault(e.RefreshTokenField, "refresh_token")
	var (
		body        io.Reader
		contentType string
	)
	switch e.SendAs {
	case SendJSON:
		m := make(map[string]string, len(e.Fields)+1)
		for k, v := range e.Fields {
			m[k] = v
		}
		m[field] = refresh
		b, err := json.Marshal(m)
		if err != nil {
			return nil, wire.Misconfigured("JSONEndpoint.Fields cannot be encoded as JSON")
		}
		body, contentType = bytes.NewReader(b), "application/json"
	case SendForm:
		v := make(url.Values, len(e.Fields)+1)
		for k, s := range e.Fields {
			v.Set(k, s)
		}
		v.Set(field, refresh)
		body, contentType = strings.NewReader(v.Encode()), "application/x-www-form-urlencoded"
	case SendCookie:
	default:
		return nil, wire.Misconfigured("JSONEndpoint.SendAs is not SendJSON, SendForm or SendCookie")
	}
	req, err := http.NewRequestWithContext(ctx, orDefault(e.Method, http.MethodPost), e.URL, body)
	if err != nil {
		return nil, wire.Misconfigured("JSONEndpoint.Method is not a valid HTTP method")
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	if e.SendAs == SendCookie {
		c := &http.Cookie{Name: orDefault(e.RefreshCookie, field), Value: refresh}
		if err := c.Valid(); err != nil {
			return nil, wire.Misconfigured("the refresh token cannot be sent as a cookie (invalid cookie name or value); check JSONEndpoint.RefreshCookie")
		}
		req.AddCookie(c)
	}
	return req, nil
}

// spec translates e's fields into a wire.Spec.
func (e *JSONEndpoint) spec() wire.Spec {
	path := func(p, def string) string {
		switch p {
		case "":
			return def
		case "-":
			return ""
		}
		return p
	}
	return wire.Spec{
		Access:        path(e.AccessTokenPath, "access_token"),
		Refresh:       path(e.RefreshTokenPath, "refresh_token"),
		ExpiresIn:     path(e.ExpiresInPath, "expires_in"),
		TokenType:     path(e.TokenTypePath, "token_type"),
		AccessCookie:  e.AccessCookieName,
		RefreshCookie: e.RefreshCookieName,
		Keep:          e.KeepExtra,
	}
}

// httpClient returns the client of the refresh call: HTTPClient, with Jar
// if it has none, or the default client.
func (e *JSONEndpoint) httpClient() (*http.Client, error) {
	c := e.defaults.get(e.HTTPClient, e.Logger)
	switch {
	case e.Jar == nil || sameJar(c.Jar, e.Jar):
		return c, nil
	case c.Jar == nil:
		withJar := *c
		withJar.Jar = e.Jar
		return &withJar, nil
	}
	return nil, wire.Misconfigured("JSONEndpoint.Jar and JSONEndpoint.HTTPClient.Jar are different cookie jars, so the refresh call would not see the session's cookies: leave HTTPClient.Jar nil, or set it to Jar")
}

// orDefault returns s, or def if s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
