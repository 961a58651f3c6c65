package testserver

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestFailRefreshesWithRetryAfter(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	h.s.FailRefreshes(2, http.StatusServiceUnavailable, 1500*time.Millisecond)
	for i := range 2 {
		a := h.refresh(rt)
		wantGrantError(t, a, http.StatusServiceUnavailable, "temporarily_unavailable")
		if got := a.header.Get("Retry-After"); got != "2" {
			t.Errorf("attempt %d: Retry-After: got %q, want %q", i, got, "2")
		}
	}
	// The token was not touched: it still rotates.
	h.mustRefresh(rt)
	st := h.s.Stats()
	if st.InjectedFailures != 2 || st.RefreshFailures != 2 || st.Refreshes != 3 || st.Rotations != 1 {
		t.Errorf("stats: got %+v", st)
	}
}

func TestFailRefreshesContractB(t *testing.T) {
	h := newHarness(t, Config{})
	tok, err := h.s.IssueToken(DemoUser)
	if err != nil {
		t.Fatal(err)
	}
	h.s.FailRefreshes(1, http.StatusTooManyRequests, 0)
	a := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": tok.RefreshToken})
	if a.status != http.StatusTooManyRequests || a.body["success"] != false || a.body["statusCode"] != float64(429) {
		t.Fatalf("got %d %s, want a 429 envelope", a.status, a.raw)
	}
	if got := a.header.Get("Retry-After"); got != "" {
		t.Errorf("Retry-After: got %q, want none", got)
	}
	if a := h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": tok.RefreshToken}); a.status != http.StatusOK {
		t.Errorf("after the failure: got %d %s, want 200", a.status, a.raw)
	}
}

func TestFailRefreshesStatusCodes(t *testing.T) {
	tests := []struct {
		status int
		code   string
	}{
		{0, "temporarily_unavailable"}, // 0 means 503
		{http.StatusInternalServerError, "temporarily_unavailable"},
		{http.StatusTooManyRequests, "temporarily_unavailable"},
		{http.StatusUnauthorized, "invalid_client"},
		{http.StatusBadRequest, "invalid_request"},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			h := newHarness(t, Config{})
			h.s.FailRefreshes(1, tc.status, 0)
			want := tc.status
			if want == 0 {
				want = http.StatusServiceUnavailable
			}
			wantGrantError(t, h.refresh("whatever"), want, tc.code)
		})
	}
}

func TestDropAfterRotate(t *testing.T) {
	h := newHarness(t, Config{})
	rt0 := h.password("").str("refresh_token")
	h.s.DropAfterRotate(1)
	if a, err := h.try(h.tokenRequest(formRefresh(rt0))); err == nil {
		t.Fatalf("got an answer %d %s, want the connection dropped", a.status, a.raw)
	}
	st := h.s.Stats()
	if st.Rotations != 1 || st.Drops != 1 {
		t.Fatalf("stats: got %+v, want 1 rotation and 1 drop", st)
	}
	// The client may see the closed connection before the handler returns.
	if err := h.s.WaitRequests(testContext(t), 2); err != nil {
		t.Fatal(err)
	}
	if last := h.s.Requests()[1]; last.Status != 0 || last.Path != PathToken {
		t.Errorf("log of the dropped request: got %+v, want status 0", last)
	}
	// The rotation happened: retrying with the token the client still holds
	// is a reuse.
	wantGrantError(t, h.refresh(rt0), http.StatusBadRequest, "invalid_grant")
	if got := h.s.Stats().ReuseDetections; got != 1 {
		t.Errorf("ReuseDetections: got %d, want 1", got)
	}
}

func TestDropAfterRotateThenRetryWithinGrace(t *testing.T) {
	h := newHarness(t, Config{ReuseGrace: 10 * time.Second})
	rt0 := h.password("").str("refresh_token")
	h.s.DropAfterRotate(1)
	if _, err := h.try(h.tokenRequest(formRefresh(rt0))); err == nil {
		t.Fatal("got an answer, want the connection dropped")
	}
	_, rt2 := h.mustRefresh(rt0) // the retry is the graced reuse
	h.mustRefresh(rt2)
}

func TestDropAfterRotateContractB(t *testing.T) {
	h := newHarness(t, Config{})
	tok, _ := h.s.IssueToken(DemoUser)
	h.s.DropAfterRotate(1)
	req := h.newRequest(http.MethodPost, PathExpressRefresh, strings.NewReader(`{"refreshToken":"`+tok.RefreshToken+`"}`))
	req.Header.Set("Content-Type", "application/json")
	if _, err := h.try(req); err == nil {
		t.Fatal("got an answer, want the connection dropped")
	}
	if got := h.s.Stats().Rotations; got != 1 {
		t.Errorf("Rotations: got %d, want 1", got)
	}
}

func TestHoldRefreshes(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	release := h.s.HoldRefreshes()
	done := make(chan answer, 1)
	go func() {
		a, _ := h.try(h.tokenRequest(formRefresh(rt)))
		done <- a
	}()
	if err := h.s.WaitHeld(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-done:
		t.Fatalf("held refresh answered %d before release", a.status)
	default:
	}
	if st := h.s.Stats(); st.Refreshes != 1 || st.Rotations != 0 {
		t.Fatalf("stats while held: got %+v, want 1 refresh, 0 rotations", st)
	}
	release()
	release() // idempotent
	a := <-done
	if a.status != http.StatusOK {
		t.Fatalf("after release: got %d %s, want 200", a.status, a.raw)
	}
	if got := h.s.Held(); got != 0 {
		t.Errorf("Held after release: got %d, want 0", got)
	}
	// Released holds no longer apply.
	h.mustRefresh(a.str("refresh_token"))
}

func TestHoldRefreshesContractB(t *testing.T) {
	h := newHarness(t, Config{})
	tok, _ := h.s.IssueToken(DemoUser)
	release := h.s.HoldRefreshes()
	defer release()
	done := make(chan answer, 1)
	go func() {
		req := h.newRequest(http.MethodPost, PathExpressRefresh, strings.NewReader(`{"refreshToken":"`+tok.RefreshToken+`"}`))
		req.Header.Set("Content-Type", "application/json")
		a, _ := h.try(req)
		done <- a
	}()
	if err := h.s.WaitHeld(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	release()
	if a := <-done; a.status != http.StatusOK {
		t.Fatalf("after release: got %d %s, want 200", a.status, a.raw)
	}
}

func TestCloseEndsHeldRefreshes(t *testing.T) {
	s := New(Config{})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, s: s, client: newClient(t)}
	tok, _ := s.IssueToken(DemoUser)
	s.HoldRefreshes() // never released
	done := make(chan error, 1)
	go func() {
		_, err := h.try(h.tokenRequest(formRefresh(tok.RefreshToken)))
		done <- err
	}()
	if err := s.WaitHeld(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	<-done // the client sees an error or a 503; either way it returns
}

func TestWaitHeldHonoursContext(t *testing.T) {
	s := New(Config{})
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.WaitHeld(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestDelayRefreshes(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	const d = 100 * time.Millisecond
	h.s.DelayRefreshes(d)
	start := time.Now()
	h.mustRefresh(rt)
	if elapsed := time.Since(start); elapsed < d {
		t.Errorf("refresh answered after %v, want at least %v", elapsed, d)
	}
}

func TestDelayedRefreshEndsWhenClientGoesAway(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")

	// Hold first, so the delay is known to apply to a request the server
	// already has.
	release := h.s.HoldRefreshes()
	defer release()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := h.try(h.tokenRequest(formRefresh(rt)).WithContext(ctx))
		errc <- err
	}()
	if err := h.s.WaitHeld(testContext(t), 1); err != nil {
		t.Fatal(err)
	}
	h.s.DelayRefreshes(time.Hour)
	release()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("client: got %v, want context.Canceled", err)
	}
	// The handler returns long before the hour is over.
	if err := h.s.WaitRequests(testContext(t), 2); err != nil {
		t.Fatal(err)
	}
	h.s.DelayRefreshes(0)
	// The abandoned refresh never rotated: the token still works.
	h.mustRefresh(rt)
}

func TestRevokeAll(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.password("")
	b, _ := h.s.IssueToken(DemoUser)
	h.s.RevokeAll()
	wantGrantError(t, h.refresh(a.str("refresh_token")), http.StatusBadRequest, "invalid_grant")
	wantGrantError(t, h.refresh(b.RefreshToken), http.StatusBadRequest, "invalid_grant")
	// Access tokens live on until they expire; new logins are fine.
	if got := h.get(PathMe, a.str("access_token")); got.status != http.StatusOK {
		t.Errorf("access token after RevokeAll: got %d, want 200", got.status)
	}
	h.mustRefresh(h.password("").str("refresh_token"))
}

func TestExpireAccessTokens(t *testing.T) {
	h := newHarness(t, Config{})
	old := h.password("")
	h.s.ExpireAccessTokens()
	a := h.get(PathMe, old.str("access_token"))
	if a.status != http.StatusUnauthorized || a.header.Get("WWW-Authenticate") != challengeInvalid {
		t.Fatalf("old access token: got %d %q, want 401 %q", a.status, a.header.Get("WWW-Authenticate"), challengeInvalid)
	}
	// Refresh tokens are not affected, and new access tokens are accepted,
	// even within the same second.
	access, _ := h.mustRefresh(old.str("refresh_token"))
	if got := h.get(PathMe, access); got.status != http.StatusOK {
		t.Errorf("new access token: got %d %s, want 200", got.status, got.raw)
	}
}
