package refresher_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// grantSeen is what a hand-made token endpoint saw of one request.
type grantSeen struct {
	basic        bool // client credentials in an Authorization: Basic header
	clientID     string
	secretInBody bool
	grantType    string
	refreshToken string
}

// tokenEndpoint is a hand-made RFC 6749 token endpoint. accept decides,
// from what it saw, whether the client is authenticated; it answers
// invalid_client otherwise.
type tokenEndpoint struct {
	*answerServer
	mu   sync.Mutex // guards seen
	seen []grantSeen
}

func newTokenEndpoint(t *testing.T, accept func(g grantSeen) bool, ok string) *tokenEndpoint {
	te := &tokenEndpoint{}
	te.answerServer = newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		var g grantSeen
		if id, _, found := r.BasicAuth(); found {
			g.basic, g.clientID = true, id
		}
		if err := r.ParseForm(); err == nil {
			if id := r.PostForm.Get("client_id"); id != "" {
				g.clientID = id
			}
			g.secretInBody = r.PostForm.Has("client_secret")
			g.grantType = r.PostForm.Get("grant_type")
			g.refreshToken = r.PostForm.Get("refresh_token")
		}
		te.mu.Lock()
		te.seen = append(te.seen, g)
		te.mu.Unlock()
		if !accept(g) {
			jsonAnswer(401, `{"error":"invalid_client"}`)(n, w, r)
			return
		}
		jsonAnswer(200, ok)(n, w, r)
	})
	return te
}

func (te *tokenEndpoint) requests() []grantSeen {
	te.mu.Lock()
	defer te.mu.Unlock()
	return append([]grantSeen(nil), te.seen...)
}

const rotatedAnswer = `{"access_token":"SECRET-A1","token_type":"Bearer","refresh_token":"SECRET-R1","expires_in":900}`

func oauth2Config(url string, secret string, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{ClientID: "client", ClientSecret: secret,
		Endpoint: oauth2.Endpoint{TokenURL: url, AuthStyle: style}}
}

func TestOAuth2EndpointAuthStyles(t *testing.T) {
	for _, c := range []struct {
		name      string
		secret    string
		style     oauth2.AuthStyle
		wantBasic bool
	}{
		{"confidential in header", "s3", oauth2.AuthStyleInHeader, true},
		{"confidential in params", "s3", oauth2.AuthStyleInParams, false},
		{"confidential auto-detected", "s3", oauth2.AuthStyleAutoDetect, true},
		{"public auto-detected", "", oauth2.AuthStyleAutoDetect, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			te := newTokenEndpoint(t, func(grantSeen) bool { return true }, rotatedAnswer)
			ep := &refresher.OAuth2Endpoint{Config: oauth2Config(te.URL, c.secret, c.style)}
			tok, err := ep.Refresh(context.Background(), staleToken())
			require.NoError(t, err)
			assert.Equal(t, "SECRET-A1", tok.AccessToken)
			assert.Equal(t, "SECRET-R1", tok.RefreshToken)
			assert.Equal(t, "Bearer", tok.TokenType)
			assert.WithinDuration(t, time.Now().Add(15*time.Minute), tok.Expiry, 3*time.Second)
			reqs := te.requests()
			require.Len(t, reqs, 1)
			g := reqs[0]
			assert.Equal(t, c.wantBasic, g.basic, "Basic authentication")
			assert.Equal(t, !c.wantBasic && c.secret != "", g.secretInBody, "client_secret in the body")
			assert.Equal(t, "client", g.clientID)
			assert.Equal(t, "refresh_token", g.grantType)
			assert.Equal(t, staleRefresh, g.refreshToken)
		})
	}
}

func TestOAuth2EndpointAutoDetectResendsOnlyAfterInvalidClient(t *testing.T) {
	// The server wants the credentials in the body and refuses Basic.
	te := newTokenEndpoint(t, func(g grantSeen) bool { return !g.basic && g.secretInBody }, rotatedAnswer)
	ep := &refresher.OAuth2Endpoint{Config: oauth2Config(te.URL, "s3", oauth2.AuthStyleAutoDetect)}

	tok, err := ep.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, int64(2), te.calls.Load(), "Basic refused with invalid_client, then params")

	_, err = ep.Refresh(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, int64(3), te.calls.Load(), "the detected style is remembered")
	reqs := te.requests()
	assert.False(t, reqs[2].basic)
	assert.Equal(t, "SECRET-R1", reqs[2].refreshToken)
}

func TestOAuth2EndpointAutoDetectNeverResendsAProcessedGrant(t *testing.T) {
	// golang.org/x/oauth2 alone would send the grant twice on any error.
	for _, c := range []struct {
		name    string
		handler func(int64, http.ResponseWriter, *http.Request)
		want    outcome
	}{
		{"invalid_grant", jsonAnswer(400, `{"error":"invalid_grant"}`), gotReauth},
		{"unauthorized_client", jsonAnswer(400, `{"error":"unauthorized_client"}`), gotMisconf},
		{"HTML 401", answer(401, "text/html", htmlPage), gotReauth},
		{"200 without access token", jsonAnswer(200, `{}`), gotFatal},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newAnswerServer(t, c.handler)
			ep := &refresher.OAuth2Endpoint{Config: oauth2Config(srv.URL, "s3", oauth2.AuthStyleAutoDetect)}
			tok, err := ep.Refresh(context.Background(), staleToken())
			assert.Equal(t, c.want, outcomeOf(t, tok, err), "error: %v", err)
			assert.Equal(t, int64(1), srv.calls.Load(), "calls that reached the server")
		})
	}
}

func TestOAuth2EndpointKeepsRefreshTokenWhenNoneReturned(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","expires_in":60}`))
	tok, err := endpointKinds[1].new(srv.URL).Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, staleRefresh, tok.RefreshToken)
}

func TestOAuth2EndpointReadsFormEncodedAnswers(t *testing.T) {
	srv := newAnswerServer(t, answer(200, "application/x-www-form-urlencoded",
		"access_token=SECRET-A1&refresh_token=SECRET-R1&expires_in=60&token_type=bearer"))
	tok, err := endpointKinds[1].new(srv.URL).Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "SECRET-A1", tok.AccessToken)
	assert.Equal(t, "SECRET-R1", tok.RefreshToken)
	assert.Equal(t, "bearer", tok.TokenType)
	assert.WithinDuration(t, time.Now().Add(time.Minute), tok.Expiry, 3*time.Second)
}

func TestOAuth2EndpointExposesExtraFields(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","scope":"read write","id_token":"x"}`))
	tok, err := newOAuth2Endpoint(srv.URL, "scope").Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "read write", tok.Extra("scope"))
}

// TestOAuth2EndpointWithAPlainHTTPClient covers a client of the user's own,
// whose answers the endpoint cannot see: golang.org/x/oauth2's results are
// mapped instead.
func TestOAuth2EndpointWithAPlainHTTPClient(t *testing.T) {
	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for _, c := range []struct {
		name    string
		handler func(int64, http.ResponseWriter, *http.Request)
		want    outcome
		check   func(t *testing.T, tok *oauth2.Token)
	}{
		{"token", jsonAnswer(200, `{"access_token":"SECRET-A1","expires_in":60}`), gotToken, func(t *testing.T, tok *oauth2.Token) {
			assert.WithinDuration(t, time.Now().Add(time.Minute), tok.Expiry, 3*time.Second)
			assert.Equal(t, staleRefresh, tok.RefreshToken)
		}},
		{"absurd expires_in", jsonAnswer(200, `{"access_token":"SECRET-A1","expires_in":3600000000000}`), gotToken, func(t *testing.T, tok *oauth2.Token) {
			assert.True(t, tok.Expiry.IsZero(), "got %v", tok.Expiry)
		}},
		{"JWT exp", jsonAnswer(200, `{"access_token":"`+fakeJWT(map[string]any{"exp": time.Now().Add(5 * time.Minute).Unix()})+`"}`), gotToken, func(t *testing.T, tok *oauth2.Token) {
			assert.WithinDuration(t, time.Now().Add(5*time.Minute), tok.Expiry, 3*time.Second)
		}},
		{"invalid_grant as 403", jsonAnswer(403, `{"error":"invalid_grant"}`), gotReauth, nil},
		{"HTML 401", answer(401, "text/html", htmlPage), gotReauth, nil},
		{"503", answer(503, "text/html", "<p>busy</p>"), gotRetry, nil},
		{"truncated JSON", jsonAnswer(200, `{"access_token":"SECRET-A1`), gotFatal, nil},
		{"connection reset", hangUp(true, new(atomic.Int64)), gotRetry, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := newAnswerServer(t, c.handler)
			ep := &refresher.OAuth2Endpoint{Config: oauth2Config(srv.URL, "s3", oauth2.AuthStyleInHeader), HTTPClient: plain}
			tok, err := ep.Refresh(context.Background(), staleToken())
			assert.Equal(t, c.want, outcomeOf(t, tok, err), "error: %v", err)
			assert.Equal(t, int64(1), srv.calls.Load())
			if c.check != nil && tok != nil {
				c.check(t, tok)
			}
		})
	}
}

func TestOAuth2EndpointWithoutConfigFails(t *testing.T) {
	_, err := (&refresher.OAuth2Endpoint{}).Refresh(context.Background(), staleToken())
	assert.Equal(t, gotMisconf, outcomeOf(t, nil, err))
	assert.Contains(t, err.Error(), "OAuth2Endpoint.Config is nil")
	_, err = (&refresher.OAuth2Endpoint{Config: oauth2Config("localhost:8080/token", "", 0)}).Refresh(context.Background(), staleToken())
	assert.Equal(t, gotMisconf, outcomeOf(t, nil, err))
	assert.Contains(t, err.Error(), "TokenURL is not an http or https URL")
}

func TestEndpointsWithoutRefreshTokenNeedReauth(t *testing.T) {
	srv := newAnswerServer(t, answer(200, "application/json", "{}"))
	for _, kind := range endpointKinds {
		_, err := kind.new(srv.URL).Refresh(context.Background(), &oauth2.Token{AccessToken: "SECRET-A0"})
		assert.ErrorIs(t, err, refresher.ErrReauthRequired, kind.name)
	}
	assert.Zero(t, srv.calls.Load())
}
