package testserver

import (
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
)

// cookieNamed returns the Set-Cookie of resp named name.
func cookieNamed(h http.Header, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func TestExpressLogin(t *testing.T) {
	h := newHarness(t, Config{})
	for _, body := range []map[string]string{
		{"username": DemoUser, "password": DemoPassword},
		{"email": DemoUser + "@example.com", "password": DemoPassword},
	} {
		a := h.postJSON(PathExpressLogin, body)
		if a.status != http.StatusOK {
			t.Fatalf("login %v: got %d %s, want 200", body, a.status, a.raw)
		}
		if a.body["statusCode"] != float64(200) || a.body["success"] != true || a.str("message") != "User logged in successfully" {
			t.Errorf("envelope: got %s", a.raw)
		}
		d := a.data()
		user, _ := d["user"].(map[string]any)
		if user["username"] != DemoUser || user["email"] != DemoUser+"@example.com" || user["_id"] == "" {
			t.Errorf("user: got %v", d["user"])
		}
		if _, leaked := user["password"]; leaked {
			t.Error("user object carries the password")
		}
		for _, name := range []string{"accessToken", "refreshToken"} {
			c := cookieNamed(a.header, name)
			if c == nil {
				t.Fatalf("no %s cookie", name)
			}
			if c.Value != d[name] {
				t.Errorf("%s cookie differs from data.%s", name, name)
			}
			if !c.HttpOnly || c.Path != "/" || c.SameSite != http.SameSiteLaxMode || c.Secure {
				t.Errorf("%s cookie attributes: got %+v", name, c)
			}
		}
	}
	if got := h.s.Stats().Logins; got != 2 {
		t.Errorf("Logins: got %d, want 2", got)
	}
}

func TestExpressLoginFailures(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct {
		name   string
		body   map[string]string
		status int
	}{
		{"wrong password", map[string]string{"username": DemoUser, "password": "nope"}, http.StatusUnauthorized},
		{"unknown user", map[string]string{"username": "nobody", "password": "x"}, http.StatusNotFound},
		{"no identifier", map[string]string{"password": "x"}, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := h.postJSON(PathExpressLogin, tc.body)
			if a.status != tc.status || a.body["success"] != false || a.body["statusCode"] != float64(tc.status) {
				t.Errorf("got %d %s, want a %d envelope", a.status, a.raw, tc.status)
			}
			if got := a.header.Get("WWW-Authenticate"); got != "" {
				t.Errorf("WWW-Authenticate: got %q, want none", got)
			}
		})
	}
}

func TestExpressCookieAndJSONRefresh(t *testing.T) {
	h := newHarness(t, Config{})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	h.client.Jar = jar
	login := h.postJSON(PathExpressLogin, map[string]string{"username": DemoUser, "password": DemoPassword})
	rt0 := login.data()["refreshToken"].(string)

	// By cookie: an empty body, the jar carries refreshToken.
	req := h.newRequest(http.MethodPost, PathExpressRefresh, nil)
	a := h.do(req)
	if a.status != http.StatusOK || a.str("message") != "Access token refreshed" || a.body["success"] != true {
		t.Fatalf("cookie refresh: got %d %s", a.status, a.raw)
	}
	d := a.data()
	rt1, _ := d["refreshToken"].(string)
	if rt1 == "" || rt1 == rt0 || d["accessToken"] == "" {
		t.Fatalf("cookie refresh did not rotate: %s", a.raw)
	}
	for _, k := range []string{"expires_in", "expiresIn"} {
		if _, ok := d[k]; ok {
			t.Errorf("refresh answer carries %s", k)
		}
	}
	if c := cookieNamed(a.header, "refreshToken"); c == nil || c.Value != rt1 {
		t.Errorf("refreshToken cookie not renewed")
	}
	// current-user reads the renewed accessToken cookie.
	if cu := h.do(h.newRequest(http.MethodGet, PathExpressCurrentUser, nil)); cu.status != http.StatusOK || cu.data()["username"] != DemoUser {
		t.Errorf("current-user with the cookie: got %d %s", cu.status, cu.raw)
	}

	// By JSON body, without cookies.
	h.client.Jar = nil
	b := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": rt1})
	if b.status != http.StatusOK {
		t.Fatalf("JSON refresh: got %d %s", b.status, b.raw)
	}
	rt2 := b.data()["refreshToken"].(string)

	// Reuse: 401 envelope, no challenge, family revoked.
	r := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": rt1})
	if r.status != http.StatusUnauthorized || r.body["success"] != false || r.body["statusCode"] != float64(401) || r.str("message") == "" {
		t.Fatalf("reuse: got %d %s, want a 401 envelope", r.status, r.raw)
	}
	if got := r.header.Get("WWW-Authenticate"); got != "" {
		t.Errorf("WWW-Authenticate: got %q, want none", got)
	}
	if got := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": rt2}); got.status != http.StatusUnauthorized {
		t.Errorf("current token after reuse: got %d, want 401", got.status)
	}
	if st := h.s.Stats(); st.ReuseDetections != 1 || st.Rotations != 2 {
		t.Errorf("stats: got %+v", st)
	}
}

func TestExpressRefreshFailures(t *testing.T) {
	h := newHarness(t, Config{})
	for name, body := range map[string]any{
		"missing": map[string]string{},
		"unknown": map[string]string{"refreshToken": "nope"},
	} {
		t.Run(name, func(t *testing.T) {
			a := h.postJSON(PathExpressRefresh, body)
			if a.status != http.StatusUnauthorized || a.body["success"] != false || a.header.Get("WWW-Authenticate") != "" {
				t.Errorf("got %d %q %s, want a 401 envelope without challenge", a.status, a.header.Get("WWW-Authenticate"), a.raw)
			}
		})
	}
}

func TestExpressRefreshTokenFromTheOtherContract(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token") // OAuth2 API login
	a := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": rt})
	if a.status != http.StatusOK {
		t.Fatalf("got %d %s, want 200: one token store", a.status, a.raw)
	}
	h.mustRefresh(a.data()["refreshToken"].(string))
}

func TestCurrentUserCookieBeforeBearer(t *testing.T) {
	h := newHarness(t, Config{})
	good := h.s.mustIssue(t).AccessToken
	tests := []struct {
		name           string
		cookie, bearer string
		status         int
	}{
		{"cookie", good, "", 200},
		{"bearer", "", good, 200},
		{"good cookie, bad bearer", good, "bad", 200},
		{"bad cookie, good bearer", "bad", good, 401},
		{"nothing", "", "", 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := h.newRequest(http.MethodGet, PathExpressCurrentUser, nil)
			if tc.cookie != "" {
				req.AddCookie(&http.Cookie{Name: "accessToken", Value: tc.cookie})
			}
			if tc.bearer != "" {
				req.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			a := h.do(req)
			if a.status != tc.status {
				t.Fatalf("got %d %s, want %d", a.status, a.raw, tc.status)
			}
			if tc.status == 401 && (a.header.Get("WWW-Authenticate") != "" || a.body["success"] != false) {
				t.Errorf("failure: got %q %s, want a 401 envelope without challenge", a.header.Get("WWW-Authenticate"), a.raw)
			}
			if tc.status == 200 && a.data()["username"] != DemoUser {
				t.Errorf("got %s", a.raw)
			}
		})
	}
}

func TestExpressLogoutRevokesFamily(t *testing.T) {
	h := newHarness(t, Config{})

	// By refresh token cookie.
	login := h.postJSON(PathExpressLogin, map[string]string{"username": DemoUser, "password": DemoPassword})
	rt := login.data()["refreshToken"].(string)
	req := h.newRequest(http.MethodPost, PathExpressLogout, nil)
	req.AddCookie(&http.Cookie{Name: "refreshToken", Value: rt})
	a := h.do(req)
	if a.status != http.StatusOK || a.body["success"] != true {
		t.Fatalf("logout: got %d %s", a.status, a.raw)
	}
	for _, name := range []string{"accessToken", "refreshToken"} {
		if c := cookieNamed(a.header, name); c == nil || c.MaxAge >= 0 {
			t.Errorf("%s cookie not cleared: %+v", name, c)
		}
	}
	if got := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": rt}); got.status != http.StatusUnauthorized {
		t.Errorf("refresh after logout: got %d, want 401", got.status)
	}

	// By access token only: its family goes.
	tok := h.s.mustIssue(t)
	req = h.newRequest(http.MethodPost, PathExpressLogout, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if a := h.do(req); a.status != http.StatusOK {
		t.Fatalf("logout by access token: got %d %s", a.status, a.raw)
	}
	wantGrantError(t, h.refresh(tok.RefreshToken), http.StatusBadRequest, "invalid_grant")

	// Nothing presented.
	if a := h.do(h.newRequest(http.MethodPost, PathExpressLogout, nil)); a.status != http.StatusUnauthorized {
		t.Errorf("logout without credentials: got %d, want 401", a.status)
	}
}

func TestExpressFormBody(t *testing.T) {
	h := newHarness(t, Config{})
	req := h.newRequest(http.MethodPost, PathExpressLogin, strings.NewReader("username=demo&password=demo"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if a := h.do(req); a.status != http.StatusOK {
		t.Errorf("form login: got %d %s, want 200", a.status, a.raw)
	}
	bad := h.newRequest(http.MethodPost, PathExpressLogin, strings.NewReader("{not json"))
	bad.Header.Set("Content-Type", "application/json")
	if a := h.do(bad); a.status != http.StatusBadRequest {
		t.Errorf("malformed JSON: got %d, want 400", a.status)
	}
}
