package testserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestMissingTokenBareChallenge(t *testing.T) {
	h := newHarness(t, Config{})
	for _, path := range []string{PathMe, PathEcho, PathAdmin} {
		a := h.get(path, "")
		if a.status != http.StatusUnauthorized {
			t.Errorf("%s: got %d, want 401", path, a.status)
		}
		if got := a.header.Get("WWW-Authenticate"); got != challengeMissing {
			t.Errorf("%s: WWW-Authenticate: got %q, want %q", path, got, challengeMissing)
		}
	}
	// A non-Bearer Authorization is no access token either.
	req := h.newRequest(http.MethodGet, PathMe, nil)
	req.SetBasicAuth(DemoUser, DemoPassword)
	if got := h.do(req).header.Get("WWW-Authenticate"); got != challengeMissing {
		t.Errorf("Basic: WWW-Authenticate: got %q, want %q", got, challengeMissing)
	}
}

func TestInvalidTokenChallenge(t *testing.T) {
	h := newHarness(t, Config{})
	forged, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": DemoUser, "iss": Issuer, "exp": epoch.Add(time.Hour).Unix(),
	}).SignedString([]byte("another key"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"sub": DemoUser, "iss": Issuer, "exp": epoch.Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	tests := []struct{ name, token string }{
		{"garbage", "garbage"},
		{"foreign key", forged},
		{"alg none", none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := h.get(PathMe, tc.token)
			if a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != challengeInvalid {
				t.Errorf("got %d %q, want 401 %q", a.status, a.header.Get("WWW-Authenticate"), challengeInvalid)
			}
		})
	}
}

func TestAccessTokenExpiresWithClock(t *testing.T) {
	h := newHarness(t, Config{AccessTTL: time.Minute})
	tok := h.password("")
	if got := tok.body["expires_in"]; got != float64(60) {
		t.Errorf("expires_in: got %v, want 60", got)
	}
	access := tok.str("access_token")
	h.clock.Advance(59 * time.Second)
	if a := h.get(PathMe, access); a.status != http.StatusOK {
		t.Fatalf("before expiry: got %d %s, want 200", a.status, a.raw)
	}
	h.clock.Advance(time.Second)
	a := h.get(PathMe, access)
	if a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != challengeInvalid {
		t.Fatalf("at expiry: got %d %q, want 401 %q", a.status, a.header.Get("WWW-Authenticate"), challengeInvalid)
	}
	if got := h.s.Stats().Unauthorized; got != 1 {
		t.Errorf("Unauthorized: got %d, want 1", got)
	}
}

func TestInsufficientScopeIs403(t *testing.T) {
	h := newHarness(t, Config{})
	plain := h.password("read").str("access_token")
	a := h.get(PathAdmin, plain)
	if a.status != http.StatusForbidden {
		t.Fatalf("got %d %s, want 403", a.status, a.raw)
	}
	if got, want := a.header.Get("WWW-Authenticate"), `Bearer error="insufficient_scope", scope="admin"`; got != want {
		t.Errorf("WWW-Authenticate: got %q, want %q", got, want)
	}
	admin := h.password("read admin").str("access_token")
	if a := h.get(PathAdmin, admin); a.status != http.StatusOK || a.str("user") != DemoUser {
		t.Errorf("with scope admin: got %d %s, want 200", a.status, a.raw)
	}
	issued, err := h.s.IssueToken(DemoUser, ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if a := h.get(PathAdmin, issued.AccessToken); a.status != http.StatusOK {
		t.Errorf("IssueToken with scope admin: got %d %s, want 200", a.status, a.raw)
	}
}

func TestEchoReportsBody(t *testing.T) {
	h := newHarness(t, Config{})
	access := h.password("").str("access_token")
	body := []byte(`{"hello":"world"}`)
	sum := sha256.Sum256(body)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			req := h.newRequest(method, PathEcho+"/sub?x=1", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+access)
			a := h.do(req)
			if a.status != http.StatusOK {
				t.Fatalf("got %d %s, want 200", a.status, a.raw)
			}
			want := map[string]any{
				"method": method, "path": PathEcho + "/sub", "query": "x=1",
				"length": float64(len(body)), "sha256": hex.EncodeToString(sum[:]), "user": DemoUser,
			}
			for k, v := range want {
				if a.body[k] != v {
					t.Errorf("%s: got %v, want %v", k, a.body[k], v)
				}
			}
		})
	}
}

func TestBodyOver64KiBIs413(t *testing.T) {
	h := newHarness(t, Config{})
	access := h.password("").str("access_token")
	echo := func(n int) answer {
		req := h.newRequest(http.MethodPost, PathEcho, bytes.NewReader(make([]byte, n)))
		req.Header.Set("Authorization", "Bearer "+access)
		return h.do(req)
	}
	if a := echo(64 << 10); a.status != http.StatusOK || a.body["length"] != float64(64<<10) {
		t.Errorf("64 KiB: got %d %s, want 200", a.status, a.raw)
	}
	if a := echo(64<<10 + 1); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("64 KiB + 1 to %s: got %d, want 413", PathEcho, a.status)
	}

	big := strings.Repeat("x", 64<<10)
	form := h.tokenRequest(map[string][]string{"grant_type": {"password"}, "username": {big}})
	if a := h.do(form); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("%s: got %d, want 413", PathToken, a.status)
	}
	if a := h.postJSON(PathExpressLogin, map[string]string{"username": big}); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("%s: got %d, want 413", PathExpressLogin, a.status)
	}
	if a := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": big}); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("%s: got %d, want 413", PathExpressRefresh, a.status)
	}
}

func TestMaxBodyBytesConfigurable(t *testing.T) {
	h := newHarness(t, Config{MaxBodyBytes: 10})
	access := h.s.mustIssue(t).AccessToken
	req := h.newRequest(http.MethodPost, PathEcho, strings.NewReader("01234567890"))
	req.Header.Set("Authorization", "Bearer "+access)
	if a := h.do(req); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("11 bytes over a 10-byte cap: got %d, want 413", a.status)
	}
}

func TestResourceMethods(t *testing.T) {
	h := newHarness(t, Config{})
	for _, path := range []string{PathMe, PathAdmin, PathExpressCurrentUser} {
		req := h.newRequest(http.MethodPost, path, nil)
		if a := h.do(req); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") == "" {
			t.Errorf("POST %s: got %d, want 405 with Allow", path, a.status)
		}
	}
}

func TestResourceAcceptsAccessTokenCookie(t *testing.T) {
	h := newHarness(t, Config{})
	req := h.newRequest(http.MethodGet, PathMe, nil)
	req.AddCookie(&http.Cookie{Name: "accessToken", Value: h.s.mustIssue(t).AccessToken})
	if a := h.do(req); a.status != http.StatusOK {
		t.Errorf("got %d %s, want 200", a.status, a.raw)
	}
}
