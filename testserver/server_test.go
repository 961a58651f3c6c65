package testserver

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

// mustIssue issues a token pair to the demo user.
func (s *Server) mustIssue(t *testing.T) *oauth2.Token {
	t.Helper()
	tok, err := s.IssueToken(DemoUser)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestIssueToken(t *testing.T) {
	h := newHarness(t, Config{AccessTTL: 5 * time.Minute})
	tok, err := h.s.IssueToken(DemoUser, "read", "admin")
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("got %+v, want a Bearer pair", tok)
	}
	if want := epoch.Add(5 * time.Minute); !tok.Expiry.Equal(want) {
		t.Errorf("Expiry: got %v, want %v (server clock)", tok.Expiry, want)
	}
	if got := tok.Extra("scope"); got != "read admin" {
		t.Errorf("scope: got %v, want %q", got, "read admin")
	}
	c, err := h.s.ParseAccessToken(tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != DemoUser || c.ID == "" || c.IssuedAt == nil || c.Scope != "read admin" || c.SessionID == "" {
		t.Errorf("claims: got %+v", c)
	}
	if got := h.s.Stats().Logins; got != 1 {
		t.Errorf("Logins: got %d, want 1", got)
	}
	// Not bound to a client: both contracts refresh it.
	_, rt := h.mustRefresh(tok.RefreshToken)
	if a := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": rt}); a.status != http.StatusOK {
		t.Errorf("Express API refresh of an issued token: got %d %s", a.status, a.raw)
	}
	if _, err := h.s.IssueToken("nobody"); err == nil {
		t.Error("IssueToken of an unknown user: got nil error")
	}
}

func TestAccessTokensAreUnique(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := h.s.mustIssue(t), h.s.mustIssue(t)
	if a.AccessToken == b.AccessToken {
		t.Error("two logins in the same instant got the same access token")
	}
}

func TestHandlerOnOwnServer(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	defer ts.Client().CloseIdleConnections()
	tok := s.mustIssue(t)
	req, _ := http.NewRequest(http.MethodGet, ts.URL+PathMe, nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("got %d, want 200", resp.StatusCode)
	}
	if s.URL() != "" {
		t.Errorf("URL of a server never started: got %q, want empty", s.URL())
	}
}

func TestStartTwiceFails(t *testing.T) {
	s := NewTest(t, Config{})
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start: got nil error")
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL: got %q", s.URL())
	}
	s.Close()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := New(Config{}).Close(); err != nil {
		t.Errorf("Close of a server never started: %v", err)
	}
}

func TestStartAfterCloseFails(t *testing.T) {
	s := New(Config{})
	s.Close()
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("Start after Close: got nil error")
	}
}

func TestDefaultClockIsReal(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	before := time.Now()
	now := s.Clock().Now()
	if now.Before(before) || now.After(time.Now()) {
		t.Errorf("Clock().Now() = %v, want the real time", now)
	}
}

func TestConfigIsCopied(t *testing.T) {
	users := map[string]string{"alice": "pw"}
	s := New(Config{Users: users, Clock: NewClock(epoch)})
	defer s.Close()
	users["mallory"] = "pw"
	if _, err := s.IssueToken("mallory"); err == nil {
		t.Error("a user added to the caller's map after New was accepted")
	}
	if _, err := s.IssueToken("alice"); err != nil {
		t.Error(err)
	}
}

func TestClientReachesTheServerAndCloseClosesItsConnections(t *testing.T) {
	before := goleak.IgnoreCurrent()
	s := New(Config{})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	if c != s.Client() {
		t.Error("Client: got a new client on the second call, want the same")
	}
	resp, err := c.Get(s.URL() + PathMe)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s without a token: got %d, want 401", PathMe, resp.StatusCode)
	}
	s.Close()
	// The client's idle connection and the serving goroutine are gone.
	goleak.VerifyNone(t, before)
}

func TestCloseWaitsForTheServingGoroutine(t *testing.T) {
	// goroutines returns the stacks of the goroutines started by Start,
	// keeping only those that are in Serve if inServe.
	goroutines := func(inServe bool) []string {
		buf := make([]byte, 1<<20)
		var out []string
		for g := range strings.SplitSeq(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "testserver.(*Server).Start.func") && (!inServe || strings.Contains(g, "net/http.(*Server).Serve(")) {
				out = append(out, g)
			}
		}
		return out
	}
	s := New(Config{})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if len(goroutines(false)) == 0 {
		t.Fatal("no serving goroutine after Start")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Checked once, without retry: the goroutine is gone when Close returns.
	if g := goroutines(true); len(g) > 0 {
		t.Errorf("the serving goroutine is still in Serve after Close:\n%s", g[0])
	}
}

// TestAccessTokenLivesAtLeastItsTTL: "exp" has whole seconds; issued just
// before a second ends, a 1 s token must still be valid 1 s later (it was
// truncated to expire within a millisecond).
func TestAccessTokenLivesAtLeastItsTTL(t *testing.T) {
	clock := NewClock(time.Date(2026, 1, 1, 0, 0, 0, 999_000_000, time.UTC))
	s := NewTest(t, Config{AccessTTL: time.Second, Clock: clock})
	tok, err := s.IssueToken(DemoUser)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second - time.Nanosecond)
	if _, err := s.ParseAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("a 1 s token, 1 s minus 1 ns after it was issued: %v", err)
	}
	clock.Advance(time.Second + time.Nanosecond)
	if _, err := s.ParseAccessToken(tok.AccessToken); err == nil {
		t.Fatal("the token outlived its TTL by more than the second that exp rounds to")
	}
}
