package refresher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// seenRequest is what a hand-made endpoint saw of a request.
type seenRequest struct {
	method, contentType string
	body                string
	header              http.Header
	cookies             []*http.Cookie
}

// recordingServer answers every request with the given handler after
// recording it.
type recordingServer struct {
	*answerServer
	mu   sync.Mutex // guards seen
	seen []seenRequest
}

func newRecordingServer(t *testing.T, h func(int64, http.ResponseWriter, *http.Request)) *recordingServer {
	rs := &recordingServer{}
	rs.answerServer = newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		rs.seen = append(rs.seen, seenRequest{method: r.Method, contentType: r.Header.Get("Content-Type"),
			body: string(b), header: r.Header.Clone(), cookies: r.Cookies()})
		rs.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		h(n, w, r)
	})
	return rs
}

func (rs *recordingServer) last(t *testing.T) seenRequest {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	require.NotEmpty(t, rs.seen)
	return rs.seen[len(rs.seen)-1]
}

func TestJSONEndpointDefaultsWorkWithAPlainAPI(t *testing.T) {
	rs := newRecordingServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1","expires_in":300,"token_type":"Bearer"}`))
	tok, err := (&refresher.JSONEndpoint{URL: rs.URL}).Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, "SECRET-R1", tok.RefreshToken)
	assert.Equal(t, "Bearer", tok.TokenType)
	assert.WithinDuration(t, time.Now().Add(5*time.Minute), tok.Expiry, 3*time.Second)

	req := rs.last(t)
	assert.Equal(t, http.MethodPost, req.method)
	assert.Equal(t, "application/json", req.contentType)
	assert.JSONEq(t, `{"refresh_token":"SECRET-R0"}`, req.body)
	assert.Equal(t, "application/json", req.header.Get("Accept"))
	assert.Equal(t, int64(1), rs.calls.Load())
}

func TestJSONEndpointReadsDottedPaths(t *testing.T) {
	rs := newRecordingServer(t, jsonAnswer(200,
		`{"result":{"tokens":[{"access":"SECRET-A1","refresh":"SECRET-R1","ttl":"90","kind":"DPoP"}]}}`))
	ep := &refresher.JSONEndpoint{
		URL:               rs.URL,
		RefreshTokenField: "token",
		AccessTokenPath:   "result.tokens.0.access",
		RefreshTokenPath:  "result.tokens.0.refresh",
		ExpiresInPath:     "result.tokens.0.ttl",
		TokenTypePath:     "result.tokens.0.kind",
	}
	tok, err := ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, "SECRET-R1", tok.RefreshToken)
	assert.Equal(t, "DPoP", tok.TokenType)
	assert.WithinDuration(t, time.Now().Add(90*time.Second), tok.Expiry, 3*time.Second)
	assert.JSONEq(t, `{"token":"SECRET-R0"}`, rs.last(t).body)
}

func TestJSONEndpointSendsFormFieldsAndHeaders(t *testing.T) {
	rs := newRecordingServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1"}`))
	ep := &refresher.JSONEndpoint{
		URL:    rs.URL,
		SendAs: refresher.SendForm,
		Fields: map[string]string{"client": "web"},
		Header: http.Header{"X-Api-Key": {"k1"}, "Origin": {"https://app.example"}},
	}
	tok, err := ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, staleRefresh, tok.RefreshToken, "no refresh token in the answer keeps the old one")
	req := rs.last(t)
	assert.Equal(t, "application/x-www-form-urlencoded", req.contentType)
	form, err := url.ParseQuery(req.body)
	require.NoError(t, err)
	assert.Equal(t, url.Values{"refresh_token": {staleRefresh}, "client": {"web"}}, form)
	assert.Equal(t, "k1", req.header.Get("X-Api-Key"))
	assert.Equal(t, "https://app.example", req.header.Get("Origin"))
}

func TestJSONEndpointSendsTheRefreshTokenAsACookie(t *testing.T) {
	rs := newRecordingServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1"}`))
	ep := &refresher.JSONEndpoint{URL: rs.URL, SendAs: refresher.SendCookie, RefreshCookie: "rt"}
	_, err := ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	req := rs.last(t)
	assert.Empty(t, req.body)
	require.Len(t, req.cookies, 1)
	assert.Equal(t, "rt", req.cookies[0].Name)
	assert.Equal(t, staleRefresh, req.cookies[0].Value)
}

func TestJSONEndpointReadsTokensFromCookies(t *testing.T) {
	srv := newAnswerServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "other", Value: "x"})
		http.SetCookie(w, &http.Cookie{Name: "accessToken", Value: "SECRET-A1", HttpOnly: true})
		http.SetCookie(w, &http.Cookie{Name: "refreshToken", Value: "SECRET-R1", HttpOnly: true})
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"success":true}`)
	})
	ep := &refresher.JSONEndpoint{URL: srv.URL, AccessTokenPath: "-", RefreshTokenPath: "-",
		AccessCookieName: "accessToken", RefreshCookieName: "refreshToken"}
	tok, err := ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, "SECRET-R1", tok.RefreshToken)
}

func TestJSONEndpointIgnoresCookiesThatDeleteThemselves(t *testing.T) {
	srv := newAnswerServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "accessToken", Value: "SECRET-A1", MaxAge: -1})
		w.WriteHeader(http.StatusOK)
	})
	ep := &refresher.JSONEndpoint{URL: srv.URL, AccessCookieName: "accessToken"}
	tok, err := ep.Refresh(context.Background(), staleToken())
	assert.Equal(t, gotFatal, outcomeOf(t, tok, err))
	assert.Contains(t, err.Error(), `no cookie "accessToken"`)
}

func TestJSONEndpointWithACookieJarKeepsTheAnswersCookies(t *testing.T) {
	srv := newAnswerServer(t, func(_ int64, w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "accessToken", Value: "SECRET-A1", Path: "/"})
		jsonAnswer(200, `{"data":{"accessToken":"SECRET-A1","refreshToken":"SECRET-R1"}}`)(0, w, r)
	})
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	ep := refresher.SeedEndpoint(srv.URL)
	ep.HTTPClient = refresher.NewHTTPClient(refresher.ClientConfig{Jar: jar})
	_, err = ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	u, _ := url.Parse(srv.URL)
	cookies := jar.Cookies(u)
	require.Len(t, cookies, 1)
	assert.Equal(t, "SECRET-A1", cookies[0].Value)
}

func TestSeedEndpointPostsAndReadsTheSeedContract(t *testing.T) {
	rs := newRecordingServer(t, jsonAnswer(200,
		`{"statusCode":200,"data":{"accessToken":"SECRET-A1","refreshToken":"SECRET-R1"},"message":"Access token refreshed","success":true}`))
	ep := refresher.SeedEndpoint(rs.URL + "/")
	assert.Equal(t, rs.URL+"/api/v1/users/refresh-token", ep.URL)
	tok, err := ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, "SECRET-R1", tok.RefreshToken)
	assert.True(t, tok.Expiry.IsZero(), "an opaque token without expires_in has no known expiry")
	assert.JSONEq(t, `{"refreshToken":"SECRET-R0"}`, rs.last(t).body)
}

func TestJSONEndpointParseResponseReadsALoginAnswer(t *testing.T) {
	exp := time.Now().Add(15 * time.Minute)
	body, _ := json.Marshal(map[string]any{"statusCode": 200, "success": true, "data": map[string]any{
		"user":        map[string]any{"username": "demo"},
		"accessToken": fakeJWT(map[string]any{"sub": "demo", "exp": exp.Unix()}), "refreshToken": "SECRET-R1",
	}})
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(body))}
	ep := refresher.SeedEndpoint("http://unused")
	ep.KeepExtra = []string{"data"}
	tok, err := ep.ParseResponse(resp)
	require.NoError(t, err)
	assert.Equal(t, "SECRET-R1", tok.RefreshToken)
	assert.WithinDuration(t, exp, tok.Expiry, 2*time.Second)
	data, ok := tok.Extra("data").(map[string]any)
	require.True(t, ok, "a field named in KeepExtra is available through Extra")
	assert.Contains(t, data, "user")
}

func TestJSONEndpointMisconfigurationFailsClearly(t *testing.T) {
	for _, c := range []struct {
		name string
		ep   *refresher.JSONEndpoint
		msg  string
	}{
		{"no URL", &refresher.JSONEndpoint{}, "JSONEndpoint.URL is empty"},
		{"bad URL", &refresher.JSONEndpoint{URL: "http://[::1"}, "not a valid URL"},
		{"not HTTP", &refresher.JSONEndpoint{URL: "ftp://127.0.0.1/refresh"}, "not an http or https URL"},
		{"bad method", &refresher.JSONEndpoint{URL: "http://127.0.0.1:1", Method: "BAD METHOD"}, "JSONEndpoint.Method is not a valid HTTP method"},
		{"unknown SendAs", &refresher.JSONEndpoint{URL: "http://127.0.0.1:1", SendAs: 42}, "JSONEndpoint.SendAs is not SendJSON, SendForm or SendCookie"},
		{"bad cookie name", &refresher.JSONEndpoint{URL: "http://127.0.0.1:1", SendAs: refresher.SendCookie, RefreshCookie: "a b"}, "cannot be sent as a cookie"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok, err := c.ep.Refresh(context.Background(), staleToken())
			assert.Equal(t, gotMisconf, outcomeOf(t, tok, err))
			assert.Contains(t, err.Error(), c.msg)
			assert.Equal(t, 1, strings.Count(err.Error(), "refresher:"), "one prefix: %v", err)
		})
	}
}

func TestJSONEndpointIsSafeForConcurrentUse(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","expires_in":3.6e12}`))
	ep := &refresher.JSONEndpoint{URL: srv.URL}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			tok, err := ep.Refresh(context.Background(), &oauth2.Token{RefreshToken: strings.Repeat("SECRET", 2)})
			assert.NoError(t, err)
			assert.NotNil(t, tok)
		})
	}
	wg.Wait()
	assert.Equal(t, int64(8), srv.calls.Load())
}
