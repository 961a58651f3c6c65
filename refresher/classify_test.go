package refresher_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// Every token value in these tests contains "SECRET", so that a test can
// check that no error message carries one.
const (
	secretMark   = "SECRET"
	staleRefresh = "SECRET-R0"
)

// answerServer is a hand-made refresh endpoint on 127.0.0.1 that counts the
// calls reaching it. Its handler gets the 1-based number of the call.
type answerServer struct {
	*httptest.Server
	calls atomic.Int64
}

func newAnswerServer(t *testing.T, h func(n int64, w http.ResponseWriter, r *http.Request)) *answerServer {
	t.Helper()
	s := &answerServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(s.calls.Add(1), w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// endpointKind builds one of the package's endpoints for a URL.
type endpointKind struct {
	name string
	new  func(url string) refresher.Endpoint
}

var endpointKinds = []endpointKind{
	{"JSONEndpoint", func(u string) refresher.Endpoint { return &refresher.JSONEndpoint{URL: u} }},
	{"OAuth2Endpoint", func(u string) refresher.Endpoint {
		return &refresher.OAuth2Endpoint{Config: &oauth2.Config{
			ClientID: "client", ClientSecret: "client-secret",
			Endpoint: oauth2.Endpoint{TokenURL: u, AuthStyle: oauth2.AuthStyleInHeader},
		}}
	}},
}

// outcome is what a refresh ended with.
type outcome int

const (
	gotToken   outcome = iota // a token
	gotReauth                 // errors.Is(err, ErrReauthRequired)
	gotRetry                  // a transient *RefreshError
	gotFatal                  // a *RefreshError of no other kind
	gotMisconf                // errors.Is(err, ErrMisconfigured)
	gotBlocked                // errors.Is(err, ErrBlocked)
)

func (o outcome) String() string {
	return [...]string{"token", "ErrReauthRequired", "transient error", "permanent error", "ErrMisconfigured", "ErrBlocked"}[o]
}

// outcomeOf classifies the result of a refresh; it fails t if err is not a
// *RefreshError or if it carries a token value.
func outcomeOf(t *testing.T, tok *oauth2.Token, err error) outcome {
	t.Helper()
	if err == nil {
		require.NotNil(t, tok)
		require.NotEmpty(t, tok.AccessToken)
		return gotToken
	}
	assert.Nil(t, tok)
	assert.NotContains(t, err.Error(), secretMark, "the error message carries a token")
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	kinds := 0
	for _, k := range []error{refresher.ErrReauthRequired, refresher.ErrMisconfigured, refresher.ErrBlocked} {
		if errors.Is(err, k) {
			kinds++
		}
	}
	assert.LessOrEqual(t, kinds, 1, "an error of several kinds: %v", err)
	switch re.Kind() {
	case refresher.KindSessionOver:
		assert.False(t, re.Temporary(), "a dead session is not temporary")
		return gotReauth
	case refresher.KindMisconfigured:
		assert.False(t, re.Temporary(), "a misconfiguration is not temporary")
		return gotMisconf
	case refresher.KindBlocked:
		assert.False(t, re.Temporary(), "a blocked refresh is not temporary")
		return gotBlocked
	case refresher.KindTransient:
		return gotRetry
	}
	return gotFatal
}

// answer writes a fixed answer.
func answer(status int, contentType, body string) func(int64, http.ResponseWriter, *http.Request) {
	return func(_ int64, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

func jsonAnswer(status int, body string) func(int64, http.ResponseWriter, *http.Request) {
	return answer(status, "application/json", body)
}

const htmlPage = "<!DOCTYPE html><html><body><h1>Unauthorized</h1></body></html>"

// hangUp rotates (in the server's mind), then closes the connection without
// answering; with reset, the close sends a TCP RST.
func hangUp(reset bool, rotated *atomic.Int64) func(int64, http.ResponseWriter, *http.Request) {
	return func(_ int64, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		rotated.Add(1)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err) // the handler runs on the server's goroutine: no t.Fatal
		}
		if tc, ok := conn.(*net.TCPConn); ok && reset {
			tc.SetLinger(0)
		}
		conn.Close()
	}
}

// fakeJWT returns an unsigned-looking JWT whose payload holds claims.
func fakeJWT(claims map[string]any) string {
	b, _ := json.Marshal(claims)
	return "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + base64.RawURLEncoding.EncodeToString(b) + ".SECRET-signature"
}

func staleToken() *oauth2.Token {
	return &oauth2.Token{AccessToken: "SECRET-A0", RefreshToken: staleRefresh, TokenType: "Bearer"}
}

// TestBadAnswersHaveExactOutcomes runs the table of hand-made answers
// against both endpoints: each gives exactly one outcome, after exactly
// the given number of calls reached the server.
func TestBadAnswersHaveExactOutcomes(t *testing.T) {
	type tc struct {
		name    string
		handler func(n int64, w http.ResponseWriter, r *http.Request)
		want    outcome
		calls   int64
		msg     string                                // a part of the error message
		check   func(t *testing.T, tok *oauth2.Token) // more checks of a token
		wantErr func(t *testing.T, re *refresher.RefreshError)
	}
	var rotatedClose, rotatedReset atomic.Int64
	cases := func() []tc {
		return []tc{
			{name: "HTML 401", handler: answer(401, "text/html; charset=utf-8", htmlPage),
				want: gotReauth, calls: 1, msg: "status 401"},
			{name: "HTML 200", handler: answer(200, "text/html", htmlPage),
				want: gotBlocked, calls: 1, msg: `an HTML page, not JSON (Content-Type "text/html"`},
			{name: "200 with {}", handler: jsonAnswer(200, `{}`),
				want: gotFatal, calls: 1, msg: `no access token: nothing at "access_token"; the answer is empty`},
			{name: "200 without access token", handler: jsonAnswer(200, `{"data":{"token":"SECRET-A1"},"ok":true}`),
				want: gotFatal, calls: 1, msg: `its keys are "data", "ok"`},
			{name: "access token not a string", handler: jsonAnswer(200, `{"access_token":12345}`),
				want: gotFatal, calls: 1, msg: `the access token at "access_token" is a number, not a string`},
			{name: "truncated JSON", handler: jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R`),
				want: gotFatal, calls: 1, msg: "not valid JSON (53 bytes, Content-Type \"application/json\"): it is truncated"},
			{name: "1 GiB streamed body", handler: streamGiB(),
				want: gotFatal, calls: 1, msg: "answer exceeds 1 MiB; reading stopped there",
				wantErr: func(t *testing.T, re *refresher.RefreshError) {
					var tl *refresher.BodyTooLargeError
					require.ErrorAs(t, re, &tl)
					assert.Equal(t, int64(1<<20), tl.Limit)
					assert.Equal(t, 200, re.StatusCode)
				}},
			{name: "expires_in of 3.6e12", handler: jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1","expires_in":3.6e12}`),
				want: gotToken, calls: 1, check: func(t *testing.T, tok *oauth2.Token) {
					assert.True(t, tok.Expiry.IsZero(), "an absurd expires_in means unknown, got %v", tok.Expiry)
					assert.Equal(t, "SECRET-R1", tok.RefreshToken)
				}},
			{name: "expires_in of 3600000000000", handler: jsonAnswer(200, `{"access_token":"SECRET-A1","expires_in":3600000000000}`),
				want: gotToken, calls: 1, check: func(t *testing.T, tok *oauth2.Token) {
					assert.True(t, tok.Expiry.IsZero(), "an absurd expires_in means unknown, got %v", tok.Expiry)
					assert.Equal(t, staleRefresh, tok.RefreshToken, "no refresh token in the answer keeps the old one")
				}},
			{name: "invalid_grant as 400", handler: jsonAnswer(400, `{"error":"invalid_grant","error_description":"token revoked"}`),
				want: gotReauth, calls: 1, msg: "status 400: invalid_grant: token revoked"},
			{name: "invalid_grant as 401", handler: jsonAnswer(401, `{"error":"invalid_grant"}`),
				want: gotReauth, calls: 1, msg: "status 401: invalid_grant"},
			{name: "invalid_grant as 403", handler: jsonAnswer(403, `{"error":"invalid_grant"}`),
				want: gotReauth, calls: 1, msg: "status 403: invalid_grant"},
			{name: "invalid_grant as 200", handler: jsonAnswer(200, `{"error":"invalid_grant"}`),
				want: gotReauth, calls: 1, msg: "status 200: invalid_grant"},
			{name: "description echoing the refresh token", handler: jsonAnswer(400, `{"error":"invalid_grant","error_description":"SECRET-R0 was revoked"}`),
				want: gotReauth, calls: 1, msg: "[redacted] was revoked"},
			{name: "non-OAuth 400", handler: jsonAnswer(400, `{"statusCode":400,"message":"Refresh token is required","success":false}`),
				want: gotReauth, calls: 1, msg: "Refresh token is required"},
			{name: "OAuth invalid_request", handler: jsonAnswer(400, `{"error":"invalid_request"}`),
				want: gotMisconf, calls: 1, msg: "invalid_request"},
			{name: "404", handler: answer(404, "text/plain", "404 page not found"),
				want: gotMisconf, calls: 1, msg: "no refresh endpoint there"},
			{name: "redirect not followed", handler: func(_ int64, w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://elsewhere.example/token", http.StatusTemporaryRedirect)
			}, want: gotMisconf, calls: 1, msg: `redirects (307 Temporary Redirect) to "elsewhere.example"`},
			{name: "503 with Retry-After then success", handler: func(n int64, w http.ResponseWriter, r *http.Request) {
				if n == 1 {
					w.Header().Set("Retry-After", "1")
					jsonAnswer(503, `{"error":"temporarily_unavailable"}`)(n, w, r)
					return
				}
				jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1","expires_in":60}`)(n, w, r)
			}, want: gotToken, calls: 2, check: func(t *testing.T, tok *oauth2.Token) {
				assert.Equal(t, "SECRET-A1", tok.AccessToken)
				assert.WithinDuration(t, time.Now().Add(time.Minute), tok.Expiry, 5*time.Second)
			}},
			{name: "HTML 500 retried, then given up", handler: answer(500, "text/html", "<h1>oops</h1>"),
				want: gotRetry, calls: 3, msg: "status 500"},
			{name: "429 asking for an hour", handler: func(n int64, w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "3600")
				jsonAnswer(429, `{"message":"slow down"}`)(n, w, r)
			}, want: gotRetry, calls: 1, msg: "status 429", wantErr: func(t *testing.T, re *refresher.RefreshError) {
				assert.Equal(t, time.Hour, re.RetryAfter)
			}},
			{name: "connection closed after the server rotated", handler: hangUp(false, &rotatedClose),
				want: gotRetry, calls: 1},
			{name: "connection reset after the server rotated", handler: hangUp(true, &rotatedReset),
				want: gotRetry, calls: 1},
		}
	}
	t.Run("group", func(t *testing.T) {
		for _, kind := range endpointKinds {
			t.Run(kind.name, func(t *testing.T) {
				t.Parallel()
				for _, c := range cases() {
					t.Run(c.name, func(t *testing.T) {
						t.Parallel()
						srv := newAnswerServer(t, c.handler)
						tok, err := kind.new(srv.URL).Refresh(context.Background(), staleToken())
						got := outcomeOf(t, tok, err)
						require.Equal(t, c.want, got, "error: %v", err)
						assert.Equal(t, c.calls, srv.calls.Load(), "calls that reached the server")
						if c.msg != "" {
							require.Error(t, err)
							assert.Contains(t, err.Error(), c.msg)
						}
						if c.check != nil {
							c.check(t, tok)
						}
						if c.wantErr != nil {
							var re *refresher.RefreshError
							require.ErrorAs(t, err, &re)
							c.wantErr(t, re)
						}
					})
				}
			})
		}
	})
	// Each endpoint's two hang-ups rotated once each: never retried.
	assert.Equal(t, int64(len(endpointKinds)), rotatedClose.Load())
	assert.Equal(t, int64(len(endpointKinds)), rotatedReset.Load())
}

// streamGiB answers 200 and streams up to 1 GiB without allocating it,
// stopping as soon as the client stops reading.
func streamGiB() func(int64, http.ResponseWriter, *http.Request) {
	chunk := []byte(`{"access_token":"` + strings.Repeat("x", 64<<10))
	return func(_ int64, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		for written := 0; written < 1<<30; written += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			chunk[0] = 'x'
		}
	}
}

// TestGiantBodyIsNotReadPastTheLimit checks, on the server side, that the
// client stopped reading a 1 GiB answer early.
func TestGiantBodyIsNotReadPastTheLimit(t *testing.T) {
	var written atomic.Int64
	done := make(chan struct{})
	chunk := make([]byte, 64<<10)
	srv := newAnswerServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		defer close(done)
		w.Header().Set("Content-Type", "application/json")
		for written.Load() < 1<<30 {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	start := time.Now()
	_, err := (&refresher.JSONEndpoint{URL: srv.URL}).Refresh(context.Background(), staleToken())
	var tl *refresher.BodyTooLargeError
	require.ErrorAs(t, err, &tl)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the server is still writing: the client did not hang up")
	}
	assert.Less(t, written.Load(), int64(64<<20), "bytes the server managed to write")
	t.Logf("the server wrote %d MiB before the client hung up, in %v", written.Load()>>20, time.Since(start).Round(time.Millisecond))
}

// TestTransportErrorsAreTransientAndNamed checks that a failure without
// an answer names what happened, is transient, and does not end the session.
func TestTransportErrorsAreTransientAndNamed(t *testing.T) {
	var rotated atomic.Int64
	srv := newAnswerServer(t, hangUp(false, &rotated))
	_, err := (&refresher.JSONEndpoint{URL: srv.URL}).Refresh(context.Background(), staleToken())
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Temporary())
	assert.Zero(t, re.StatusCode)
	assert.ErrorIs(t, err, io.EOF)
	assert.Contains(t, err.Error(), fmt.Sprintf("%q", srv.URL), "the message names the URL")
}

// fastKinds are the endpoints with a client whose retries do not slow a
// test down.
var fastKinds = []endpointKind{
	{"JSONEndpoint", func(u string) refresher.Endpoint {
		return &refresher.JSONEndpoint{URL: u, HTTPClient: refresher.NewHTTPClient(fastRetries(nil))}
	}},
	{"OAuth2Endpoint", func(u string) refresher.Endpoint {
		return &refresher.OAuth2Endpoint{HTTPClient: refresher.NewHTTPClient(fastRetries(nil)), Config: &oauth2.Config{
			ClientID: "client", ClientSecret: "client-secret",
			Endpoint: oauth2.Endpoint{TokenURL: u, AuthStyle: oauth2.AuthStyleInHeader},
		}}
	}},
}

// TestEveryStatusAndBodyShapeHasItsOutcome lists, for each status a refresh
// endpoint (or what stands in front of it) may answer with, the outcome of
// each shape of body: only a rejected refresh token ends the session; a
// client the server refuses is misconfigured; a page from something in
// front of the endpoint is blocked; 408, 429 and 5xx are transient.
func TestEveryStatusAndBodyShapeHasItsOutcome(t *testing.T) {
	type shape struct {
		name, contentType, body string
	}
	shapes := []shape{
		{"invalid_grant", "application/json", `{"error":"invalid_grant"}`},
		{"invalid_client", "application/json", `{"error":"invalid_client"}`},
		{"unauthorized_client", "application/json", `{"error":"unauthorized_client"}`},
		{"unsupported_grant_type", "application/json", `{"error":"unsupported_grant_type"}`},
		{"invalid_request", "application/json", `{"error":"invalid_request"}`},
		{"API JSON", "application/json", `{"success":false,"message":"Invalid refresh token"}`},
		{"HTML", "text/html", htmlPage},
		{"text", "text/plain", "Forbidden"},
		{"empty", "", ""},
	}
	const (
		R = gotReauth
		M = gotMisconf
		B = gotBlocked
		T = gotRetry
		F = gotFatal
	)
	table := []struct {
		status int
		header string // WWW-Authenticate, if any
		want   [9]outcome
	}{
		//                                  grant client unauth unsupp request API  HTML text empty
		{status: 200, want: [9]outcome{R, M, M, M, F, F, B, F, F}},
		{status: 400, want: [9]outcome{R, M, M, M, M, R, B, R, R}},
		{status: 401, want: [9]outcome{R, M, M, M, M, R, R, R, R}},
		{status: 401, header: `Basic realm="token"`, want: [9]outcome{R, M, M, M, M, M, M, M, M}},
		{status: 401, header: `Bearer error="invalid_token"`, want: [9]outcome{R, M, M, M, M, R, R, R, R}},
		{status: 403, want: [9]outcome{R, M, M, M, M, R, B, R, R}},
		{status: 404, want: [9]outcome{R, M, M, M, M, M, M, M, M}},
		{status: 405, want: [9]outcome{R, M, M, M, M, M, M, M, M}},
		{status: 409, want: [9]outcome{R, M, M, M, M, R, B, R, R}},
		{status: 408, want: [9]outcome{R, M, M, M, T, T, T, T, T}},
		{status: 429, want: [9]outcome{R, M, M, M, T, T, T, T, T}},
		{status: 500, want: [9]outcome{R, M, M, M, T, T, T, T, T}},
		{status: 503, want: [9]outcome{R, M, M, M, T, T, T, T, T}},
		{status: 501, want: [9]outcome{R, M, M, M, T, T, T, T, T}},
	}
	for _, kind := range fastKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			for _, row := range table {
				for i, sh := range shapes {
					name := fmt.Sprintf("%d %s %s", row.status, row.header, sh.name)
					t.Run(name, func(t *testing.T) {
						t.Parallel()
						srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
							if row.header != "" {
								w.Header().Set("WWW-Authenticate", row.header)
							}
							answer(row.status, sh.contentType, sh.body)(n, w, r)
						})
						tok, err := kind.new(srv.URL).Refresh(context.Background(), staleToken())
						got := outcomeOf(t, tok, err)
						assert.Equal(t, row.want[i], got, "error: %v", err)
						if err != nil {
							assert.Equal(t, 1, strings.Count(err.Error(), "refresher:"), "one prefix: %v", err)
						}
					})
				}
			}
		})
	}
}

func TestMisconfiguredAndBlockedErrorsSayWhatToCheck(t *testing.T) {
	for _, c := range []struct {
		name    string
		handler func(int64, http.ResponseWriter, *http.Request)
		want    error
		msg     string
	}{
		{"wrong client secret", jsonAnswer(401, `{"error":"invalid_client"}`), refresher.ErrMisconfigured,
			"check the client ID and secret"},
		{"grant not allowed", jsonAnswer(400, `{"error":"unauthorized_client"}`), refresher.ErrMisconfigured,
			"may not use the refresh_token grant"},
		{"basic challenge", func(n int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
			answer(401, "", "")(n, w, r)
		}, refresher.ErrMisconfigured, "asks for the client's own credentials"},
		{"firewall page", answer(403, "text/html; charset=utf-8", "<html><body>Access denied by policy</body></html>"),
			refresher.ErrBlocked, "not the refresh endpoint's own answer; check what stands in front of it"},
		{"login page instead of a token", answer(200, "text/html", "<html><form action=/login></form></html>"),
			refresher.ErrBlocked, "a login page or a proxy answered"},
	} {
		for _, kind := range endpointKinds {
			t.Run(c.name+"/"+kind.name, func(t *testing.T) {
				srv := newAnswerServer(t, c.handler)
				_, err := kind.new(srv.URL).Refresh(context.Background(), staleToken())
				require.ErrorIs(t, err, c.want)
				assert.NotErrorIs(t, err, refresher.ErrReauthRequired, "the session is not over")
				assert.Contains(t, err.Error(), c.msg)
				var re *refresher.RefreshError
				require.ErrorAs(t, err, &re)
				assert.False(t, re.Temporary())
			})
		}
	}
}

// TestSourceWithMisconfiguredClientDoesNotAskForALogin checks the point of
// the distinction: a login callback cannot fix a wrong client secret.
func TestSourceWithMisconfiguredClientDoesNotEndTheSession(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(401, `{"error":"invalid_client","error_description":"bad secret"}`))
	src := refresher.NewSource(endpointKinds[1].new(srv.URL), refresher.WithToken(staleToken()))
	_, err := src.Refresh(context.Background(), staleToken())
	require.ErrorIs(t, err, refresher.ErrMisconfigured)
	assert.NotErrorIs(t, err, refresher.ErrReauthRequired)
}

// echoAnswer answers 400 invalid_grant with a description that quotes
// everything the request carried: its body, its headers, its cookies.
func echoAnswer(status int) func(int64, http.ResponseWriter, *http.Request) {
	return func(_ int64, w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b strings.Builder
		fmt.Fprintf(&b, "bad request %s", body)
		for k, vs := range r.Header {
			fmt.Fprintf(&b, " %s=%s", k, strings.Join(vs, ","))
		}
		desc, _ := json.Marshal(b.String())
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%s,"error_uri":%s}`, desc, desc)
	}
}

func TestRedactionComesBeforeTruncation(t *testing.T) {
	// A 300-character refresh token echoed in a description that is cut
	// at 200 characters: cutting first would leave most of it in clear.
	long := "SECRET-" + strings.Repeat("x9", 150)
	srv := newAnswerServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		desc, _ := json.Marshal("the refresh token " + long + " was revoked")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%s}`, desc)
	})
	for _, kind := range endpointKinds {
		t.Run(kind.name, func(t *testing.T) {
			_, err := kind.new(srv.URL).Refresh(context.Background(), &oauth2.Token{AccessToken: "a", RefreshToken: long})
			require.Error(t, err)
			assert.NotContains(t, err.Error(), "x9x9", "a part of the refresh token is in the error")
			assert.Contains(t, err.Error(), "the refresh token [redacted] was revoked")
		})
	}
}

func TestEverySecretTheRequestCarriedIsRedacted(t *testing.T) {
	srv := newAnswerServer(t, echoAnswer(400))
	const (
		refresh = "SECRET-R0/with+chars="
		secret  = "SECRET-client/secret+1"
		apiKey  = "SECRET-api-key-42"
		field   = "SECRET-field-value"
	)
	cur := &oauth2.Token{AccessToken: "a", RefreshToken: refresh}
	jar := newJar(t)
	u, _ := url.Parse(srv.URL)
	jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "SECRET-cookie-value"}})
	eps := map[string]refresher.Endpoint{
		"JSON": &refresher.JSONEndpoint{URL: srv.URL, Fields: map[string]string{"client_secret": secret, "other": field},
			Header:     http.Header{"X-Api-Key": {apiKey}, "Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("id:"+secret))}},
			HTTPClient: refresher.NewHTTPClient(refresher.ClientConfig{Jar: jar})},
		"form": &refresher.JSONEndpoint{URL: srv.URL, SendAs: refresher.SendForm, Fields: map[string]string{"client_secret": secret}},
		"cookie": &refresher.JSONEndpoint{URL: srv.URL, SendAs: refresher.SendCookie, RefreshCookie: "rt",
			Header: http.Header{"X-Api-Key": {apiKey}}},
		"OAuth2 in header": &refresher.OAuth2Endpoint{Config: oauth2Config(srv.URL, secret, oauth2.AuthStyleInHeader)},
		"OAuth2 in params": &refresher.OAuth2Endpoint{Config: oauth2Config(srv.URL, secret, oauth2.AuthStyleInParams)},
	}
	for name, ep := range eps {
		t.Run(name, func(t *testing.T) {
			_, err := ep.Refresh(context.Background(), cur)
			require.ErrorIs(t, err, refresher.ErrReauthRequired)
			assert.NotContains(t, err.Error(), secretMark)
			assert.NotContains(t, err.Error(), "with%2Bchars", "the form-encoded refresh token")
			assert.Contains(t, err.Error(), "[redacted]")
			var re *oauth2.RetrieveError
			require.ErrorAs(t, err, &re)
			assert.NotContains(t, string(re.Body), secretMark)
			assert.NotContains(t, re.ErrorDescription, secretMark)
			assert.NotContains(t, re.ErrorURI, secretMark)
			assert.Nil(t, re.Response.Request, "the request holds the client's credentials")
		})
	}
}

func TestUnparseableBodyIsNeverQuoted(t *testing.T) {
	for _, c := range []struct {
		name, contentType, body string
	}{
		{"raw token as text", "text/plain", "SECRET-rawtoken"},
		{"raw token with padding as text", "text/plain", "SECRET-rawtoken=="},
		{"raw token as a form without =", "application/x-www-form-urlencoded", "SECRET-rawtoken"},
		{"form whose key is a token", "application/x-www-form-urlencoded", "SECRET-rawtoken=1"},
		{"JSON whose key is a token", "application/json", `{"SECRET-rawtoken":true}`},
		{"raw token without type", "", "SECRET-rawtoken"},
		{"JWT as text", "text/plain", "eyJhbGciOiJIUzI1NiJ9.eyJTRUNSRVQiOjF9.SECRET"},
	} {
		for _, kind := range endpointKinds {
			t.Run(c.name+"/"+kind.name, func(t *testing.T) {
				srv := newAnswerServer(t, answer(200, c.contentType, c.body))
				tok, err := kind.new(srv.URL).Refresh(context.Background(), staleToken())
				assert.Equal(t, gotFatal, outcomeOf(t, tok, err)) // checks that no SECRET is quoted
				assert.NotContains(t, err.Error(), "rawtoken")
			})
		}
	}
}

func TestQuotedHeaderValuesAreBounded(t *testing.T) {
	long := strings.Repeat("a", 20<<10)
	for _, c := range []struct {
		name    string
		handler func(int64, http.ResponseWriter, *http.Request)
	}{
		{"20 KiB Content-Type", answer(200, "application/"+long, "junk")},
		{"20 KiB Content-Type with parameters", answer(200, "text/"+long+"; charset=utf-8", "")},
		{"20 KiB Location", func(_ int64, w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", "https://"+long+"/token")
			w.WriteHeader(http.StatusFound)
		}},
	} {
		for _, kind := range endpointKinds {
			t.Run(c.name+"/"+kind.name, func(t *testing.T) {
				srv := newAnswerServer(t, c.handler)
				_, err := kind.new(srv.URL).Refresh(context.Background(), staleToken())
				require.Error(t, err)
				assert.Less(t, len(err.Error()), 600, "error: %.300s…", err)
			})
		}
	}
}

func TestJunkIsNeverAdoptedAsAToken(t *testing.T) {
	seed := func(u string) refresher.Endpoint {
		return refresher.SeedEndpoint(strings.TrimSuffix(u, "/api/v1/users/refresh-token"))
	}
	cookieAnswer := func(cookies ...string) func(int64, http.ResponseWriter, *http.Request) {
		return func(n int64, w http.ResponseWriter, r *http.Request) {
			for _, c := range cookies {
				w.Header().Add("Set-Cookie", c)
			}
			jsonAnswer(200, `{"statusCode":200,"data":{},"success":true}`)(n, w, r)
		}
	}
	for _, c := range []struct {
		name    string
		new     func(string) refresher.Endpoint
		handler func(int64, http.ResponseWriter, *http.Request)
		msg     string
	}{
		{"access token undefined", endpointKinds[0].new, jsonAnswer(200, `{"access_token":"undefined","refresh_token":"SECRET-R1"}`), `"undefined", which is no token`},
		{"access token null string", endpointKinds[1].new, jsonAnswer(200, `{"access_token":"null"}`), `"null", which is no token`},
		{"access token [object Object]", endpointKinds[0].new, jsonAnswer(200, `{"access_token":"[object Object]"}`), `"[object Object]", which is no token`},
		{"refresh token undefined", endpointKinds[1].new, jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"undefined"}`), `refresh token at "refresh_token" is "undefined"`},
		{"refresh token blank", endpointKinds[0].new, jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"  "}`), "is blank"},
		{"refresh cookie undefined", seed, cookieAnswer("accessToken=SECRET-A1; HttpOnly", "refreshToken=undefined; HttpOnly"), `refresh token in cookie "refreshToken" is "undefined"`},
		{"access cookie deleted", seed, cookieAnswer("accessToken=deleted; HttpOnly", "refreshToken=SECRET-R1"), `access token in cookie "accessToken" is "deleted"`},
		{"access token with spaces", endpointKinds[0].new, jsonAnswer(200, `{"access_token":"SECRET A1"}`), "spaces or control characters"},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newAnswerServer(t, c.handler)
			tok, err := c.new(srv.URL).Refresh(context.Background(), staleToken())
			require.Equal(t, gotFatal, outcomeOf(t, tok, err), "error: %v", err)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestRefreshErrorUnwrapsToRetrieveError(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(400, `{"error":"invalid_grant","error_description":"revoked","error_uri":"https://as.example/e"}`))
	for _, kind := range endpointKinds {
		t.Run(kind.name, func(t *testing.T) {
			_, err := kind.new(srv.URL).Refresh(context.Background(), staleToken())
			var re *oauth2.RetrieveError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, "invalid_grant", re.ErrorCode)
			assert.Equal(t, "revoked", re.ErrorDescription)
			assert.Equal(t, "https://as.example/e", re.ErrorURI)
			assert.Equal(t, 400, re.Response.StatusCode)
			assert.ErrorIs(t, err, refresher.ErrReauthRequired)
		})
	}
	t.Run("not for an answer without an OAuth error", func(t *testing.T) {
		srv := newAnswerServer(t, answer(503, "text/html", htmlPage))
		_, err := endpointKinds[0].new(srv.URL).Refresh(context.Background(), staleToken())
		var re *oauth2.RetrieveError
		assert.False(t, errors.As(err, &re))
	})
}

func TestErrorMessagesHaveOnePrefixAndOneSpellingOfSessionOver(t *testing.T) {
	_, err := (&refresher.JSONEndpoint{}).Refresh(context.Background(), staleToken())
	assert.Equal(t, "refresher: refresh failed: client misconfigured: JSONEndpoint.URL is empty; set the refresh URL", err.Error())
	_, err = (&refresher.JSONEndpoint{URL: "http://127.0.0.1:1"}).Refresh(context.Background(), &oauth2.Token{AccessToken: "a"})
	assert.Equal(t, "refresher: refresh failed: session over: there is no refresh token", err.Error())
	srv := newAnswerServer(t, jsonAnswer(401, `{"message":"jwt expired"}`))
	_, err = endpointKinds[0].new(srv.URL).Refresh(context.Background(), staleToken())
	assert.Equal(t, "refresher: refresh failed: status 401: jwt expired: session over: the refresh endpoint rejected the refresh token", err.Error())
}

func newJar(t *testing.T) http.CookieJar {
	t.Helper()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return jar
}
