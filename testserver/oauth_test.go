package testserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestPasswordGrantResponse(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.password("read")
	for _, k := range []string{"access_token", "refresh_token"} {
		if a.str(k) == "" {
			t.Errorf("%s missing in %s", k, a.raw)
		}
	}
	if a.str("token_type") != "Bearer" || a.body["expires_in"] != float64(600) || a.str("scope") != "read" {
		t.Errorf("got %s", a.raw)
	}
	if got := a.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store", got)
	}
	if got := a.header.Get("Pragma"); got != "no-cache" {
		t.Errorf("Pragma: got %q, want no-cache", got)
	}
	if got := a.header.Get("Content-Type"); !strings.HasPrefix(got, "application/json") {
		t.Errorf("Content-Type: got %q", got)
	}
	if got := h.s.Stats().Logins; got != 1 {
		t.Errorf("Logins: got %d, want 1", got)
	}
}

func TestTokenEndpointErrors(t *testing.T) {
	h := newHarness(t, Config{})
	form := func(kv ...string) url.Values {
		v := url.Values{"client_id": {PublicClientID}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"missing grant_type", func() *http.Request { return h.tokenRequest(form()) }, 400, "invalid_request"},
		{"unsupported grant_type", func() *http.Request {
			return h.tokenRequest(form("grant_type", "client_credentials"))
		}, 400, "unsupported_grant_type"},
		{"wrong password", func() *http.Request {
			return h.tokenRequest(form("grant_type", "password", "username", DemoUser, "password", "nope"))
		}, 400, "invalid_grant"},
		{"unknown user", func() *http.Request {
			return h.tokenRequest(form("grant_type", "password", "username", "nobody", "password", DemoPassword))
		}, 400, "invalid_grant"},
		{"missing password", func() *http.Request {
			return h.tokenRequest(form("grant_type", "password", "username", DemoUser))
		}, 400, "invalid_request"},
		{"missing refresh_token", func() *http.Request {
			return h.tokenRequest(form("grant_type", "refresh_token"))
		}, 400, "invalid_request"},
		{"JSON body", func() *http.Request {
			r := h.newRequest(http.MethodPost, PathToken, strings.NewReader(`{"grant_type":"password"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, 400, "invalid_request"},
		{"GET", func() *http.Request { return h.newRequest(http.MethodGet, PathToken, nil) }, 405, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := h.do(tc.req())
			wantGrantError(t, a, tc.status, tc.code)
			if a.str("error_description") == "" {
				t.Errorf("no error_description in %s", a.raw)
			}
			if got := a.header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control: got %q, want no-store", got)
			}
		})
	}
}

func TestConfidentialClientBasicAndForm(t *testing.T) {
	h := newHarness(t, Config{})
	type auth struct {
		basic        bool
		user, secret string // Basic credentials
		form         url.Values
	}
	tests := []struct {
		name      string
		auth      auth
		status    int
		code      string
		challenge bool
	}{
		{"basic, right secret", auth{basic: true, user: ConfidentialClientID, secret: ConfidentialClientSecret}, 200, "", false},
		{"form, right secret", auth{form: url.Values{"client_id": {ConfidentialClientID}, "client_secret": {ConfidentialClientSecret}}}, 200, "", false},
		{"basic, wrong secret", auth{basic: true, user: ConfidentialClientID, secret: "wrong"}, 401, "invalid_client", true},
		{"form, wrong secret", auth{form: url.Values{"client_id": {ConfidentialClientID}, "client_secret": {"wrong"}}}, 401, "invalid_client", false},
		{"form, no secret", auth{form: url.Values{"client_id": {ConfidentialClientID}}}, 401, "invalid_client", false},
		{"basic and form secret", auth{basic: true, user: ConfidentialClientID, secret: ConfidentialClientSecret,
			form: url.Values{"client_secret": {ConfidentialClientSecret}}}, 400, "invalid_request", false},
		{"basic and another form client_id", auth{basic: true, user: ConfidentialClientID, secret: ConfidentialClientSecret,
			form: url.Values{"client_id": {PublicClientID}}}, 400, "invalid_request", false},
		{"unknown client", auth{form: url.Values{"client_id": {"stranger"}}}, 401, "invalid_client", false},
		{"no client", auth{}, 401, "invalid_client", false},
		{"public client, form", auth{form: url.Values{"client_id": {PublicClientID}}}, 200, "", false},
		{"public client, basic without secret", auth{basic: true, user: PublicClientID}, 200, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"grant_type": {"password"}, "username": {DemoUser}, "password": {DemoPassword}}
			for k, v := range tc.auth.form {
				form[k] = v
			}
			req := h.tokenRequest(form)
			if tc.auth.basic {
				req.SetBasicAuth(url.QueryEscape(tc.auth.user), url.QueryEscape(tc.auth.secret))
			}
			a := h.do(req)
			if tc.status == 200 {
				if a.status != 200 {
					t.Fatalf("got %d %s, want 200", a.status, a.raw)
				}
			} else {
				wantGrantError(t, a, tc.status, tc.code)
			}
			got := a.header.Get("WWW-Authenticate")
			if tc.challenge && !strings.HasPrefix(got, "Basic ") {
				t.Errorf("WWW-Authenticate: got %q, want a Basic challenge", got)
			}
			if !tc.challenge && got != "" {
				t.Errorf("WWW-Authenticate: got %q, want none", got)
			}
		})
	}

	// The same rules apply to refreshes.
	login := h.do(h.tokenRequest(url.Values{"grant_type": {"password"}, "username": {DemoUser}, "password": {DemoPassword},
		"client_id": {ConfidentialClientID}, "client_secret": {ConfidentialClientSecret}}))
	bad := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login.str("refresh_token")}})
	bad.SetBasicAuth(ConfidentialClientID, "wrong")
	wantGrantError(t, h.do(bad), http.StatusUnauthorized, "invalid_client")
	good := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login.str("refresh_token")}})
	good.SetBasicAuth(ConfidentialClientID, ConfidentialClientSecret)
	if a := h.do(good); a.status != http.StatusOK {
		t.Errorf("refresh with Basic: got %d %s, want 200", a.status, a.raw)
	}
}

func TestPasswordGrantViaOAuth2Config(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.WithValue(testContext(t), oauth2.HTTPClient, h.client)
	for _, tc := range []struct {
		name string
		cfg  oauth2.Config
	}{
		{"public client in params", oauth2.Config{ClientID: PublicClientID,
			Endpoint: oauth2.Endpoint{TokenURL: h.s.URL() + PathToken, AuthStyle: oauth2.AuthStyleInParams}}},
		{"confidential client in header", oauth2.Config{ClientID: ConfidentialClientID, ClientSecret: ConfidentialClientSecret,
			Endpoint: oauth2.Endpoint{TokenURL: h.s.URL() + PathToken, AuthStyle: oauth2.AuthStyleInHeader}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Scopes = []string{"read", "admin"}
			tok, err := cfg.PasswordCredentialsToken(ctx, DemoUser, DemoPassword)
			if err != nil {
				t.Fatal(err)
			}
			if !tok.Valid() || tok.TokenType != "Bearer" || tok.RefreshToken == "" {
				t.Fatalf("got %+v, want a valid Bearer token with a refresh token", tok)
			}
			if d := time.Until(tok.Expiry); d < 9*time.Minute || d > 10*time.Minute {
				t.Errorf("expires in %v, want about 10m", d)
			}

			// Force a refresh through the TokenSource.
			stale := *tok
			stale.Expiry = time.Now().Add(-time.Minute)
			fresh, err := cfg.TokenSource(ctx, &stale).Token()
			if err != nil {
				t.Fatal(err)
			}
			if fresh.RefreshToken == tok.RefreshToken || fresh.AccessToken == tok.AccessToken {
				t.Fatal("TokenSource refresh did not rotate the pair")
			}
			resp, err := oauth2.NewClient(ctx, oauth2.StaticTokenSource(fresh)).Get(h.s.URL() + PathAdmin)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s with the refreshed token: got %d, want 200", PathAdmin, resp.StatusCode)
			}

			// The rotated-out token is now a reuse: invalid_grant.
			_, err = cfg.TokenSource(ctx, &stale).Token()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Errorf("reuse: got %v, want a RetrieveError invalid_grant", err)
			}
		})
	}
	if _, err := (&oauth2.Config{ClientID: PublicClientID, Endpoint: oauth2.Endpoint{
		TokenURL: h.s.URL() + PathToken, AuthStyle: oauth2.AuthStyleInParams,
	}}).PasswordCredentialsToken(ctx, DemoUser, "wrong"); err == nil {
		t.Error("wrong password: got nil error")
	}
}

func TestRevocationEndpoint(t *testing.T) {
	h := newHarness(t, Config{})
	revoke := func(token string) answer {
		req := h.newRequest(http.MethodPost, PathRevoke, strings.NewReader(url.Values{
			"token": {token}, "client_id": {PublicClientID},
		}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return h.do(req)
	}

	// A refresh token revokes its family.
	rt0 := h.password("").str("refresh_token")
	_, rt1 := h.mustRefresh(rt0)
	if a := revoke(rt1); a.status != http.StatusOK {
		t.Fatalf("revoke refresh token: got %d %s, want 200", a.status, a.raw)
	}
	wantGrantError(t, h.refresh(rt1), http.StatusBadRequest, "invalid_grant")

	// An access token is refused afterwards.
	access := h.password("").str("access_token")
	if a := revoke(access); a.status != http.StatusOK {
		t.Fatalf("revoke access token: got %d, want 200", a.status)
	}
	if a := h.get(PathMe, access); a.status != http.StatusUnauthorized {
		t.Errorf("revoked access token: got %d, want 401", a.status)
	}

	// Unknown tokens are fine (RFC 7009 §2.2); a missing one is not.
	if a := revoke("unknown"); a.status != http.StatusOK {
		t.Errorf("unknown token: got %d, want 200", a.status)
	}
	wantGrantError(t, revoke(""), http.StatusBadRequest, "invalid_request")
}
