package testserver

import (
	"net/http"
	"testing"
	"time"
)

func TestRefreshRotatesToken(t *testing.T) {
	h := newHarness(t, Config{})
	login := h.password("")
	rt0 := login.str("refresh_token")

	a := h.refresh(rt0)
	if a.status != http.StatusOK {
		t.Fatalf("refresh: got %d %s, want 200", a.status, a.raw)
	}
	rt1 := a.str("refresh_token")
	if rt1 == "" || rt1 == rt0 {
		t.Fatalf("refresh token not rotated: got %q after %q", rt1, rt0)
	}
	if a.str("access_token") == "" || a.str("access_token") == login.str("access_token") {
		t.Fatalf("access token not renewed: %s", a.raw)
	}
	if got := a.str("token_type"); got != "Bearer" {
		t.Errorf("token_type: got %q, want %q", got, "Bearer")
	}
	if got := a.body["expires_in"]; got != float64(600) {
		t.Errorf("expires_in: got %v, want 600", got)
	}
	if got := h.get(PathMe, a.str("access_token")); got.status != http.StatusOK || got.str("user") != DemoUser {
		t.Errorf("new access token on %s: got %d %s", PathMe, got.status, got.raw)
	}
	// The new refresh token rotates in turn.
	if _, rt2 := h.mustRefresh(rt1); rt2 == rt1 || rt2 == rt0 {
		t.Errorf("second rotation returned an old token")
	}
	if st := h.s.Stats(); st.Rotations != 2 || st.Refreshes != 2 || st.Logins != 1 {
		t.Errorf("stats: got %+v, want 2 rotations of 2 refreshes after 1 login", st)
	}
}

func TestReuseOfRotatedTokenRevokesFamily(t *testing.T) {
	h := newHarness(t, Config{})
	rt0 := h.password("").str("refresh_token")
	_, rt1 := h.mustRefresh(rt0)

	wantGrantError(t, h.refresh(rt0), http.StatusBadRequest, "invalid_grant")
	if got := h.s.Stats().ReuseDetections; got != 1 {
		t.Errorf("ReuseDetections: got %d, want 1", got)
	}
	// The current child dies with its family.
	wantGrantError(t, h.refresh(rt1), http.StatusBadRequest, "invalid_grant")

	// Other families are untouched.
	other := h.password("").str("refresh_token")
	h.mustRefresh(other)
}

func TestConcurrentRefreshOfSameTokenRevokesFamily(t *testing.T) {
	// The failure this library exists to prevent: two callers refreshing the
	// same token at once log the user out.
	h := newHarness(t, Config{})
	rt0 := h.password("").str("refresh_token")
	release := h.s.HoldRefreshes()
	const n = 4
	results := make(chan answer, n)
	for range n {
		go func() {
			a, _ := h.try(h.tokenRequest(formRefresh(rt0)))
			results <- a
		}()
	}
	if err := h.s.WaitHeld(testContext(t), n); err != nil {
		t.Fatal(err)
	}
	release()
	var ok []string
	for range n {
		if a := <-results; a.status == http.StatusOK {
			ok = append(ok, a.str("refresh_token"))
		}
	}
	if len(ok) != 1 {
		t.Fatalf("got %d successful refreshes, want exactly 1", len(ok))
	}
	// The first loser revokes the family; the others find it revoked.
	if got := h.s.Stats().ReuseDetections; got != 1 {
		t.Errorf("ReuseDetections: got %d, want 1", got)
	}
	wantGrantError(t, h.refresh(ok[0]), http.StatusBadRequest, "invalid_grant")
}

func TestReuseWithinGraceAcceptedOnce(t *testing.T) {
	h := newHarness(t, Config{ReuseGrace: 30 * time.Second})
	rt0 := h.password("").str("refresh_token")
	_, rt1 := h.mustRefresh(rt0)

	h.clock.Advance(10 * time.Second)
	access2, rt2 := h.mustRefresh(rt0) // the parent, within the grace: accepted
	if rt2 == rt1 || rt2 == rt0 {
		t.Fatalf("graced reuse returned an old refresh token")
	}
	if got := h.get(PathMe, access2); got.status != http.StatusOK {
		t.Fatalf("graced access token: got %d %s", got.status, got.raw)
	}
	if got := h.s.Stats().ReuseDetections; got != 0 {
		t.Fatalf("ReuseDetections after graced reuse: got %d, want 0", got)
	}

	// Only once: the second reuse revokes the family, graced child included.
	wantGrantError(t, h.refresh(rt0), http.StatusBadRequest, "invalid_grant")
	if got := h.s.Stats().ReuseDetections; got != 1 {
		t.Errorf("ReuseDetections: got %d, want 1", got)
	}
	wantGrantError(t, h.refresh(rt2), http.StatusBadRequest, "invalid_grant")
}

func TestReuseGraceLimits(t *testing.T) {
	tests := []struct {
		name string
		// steps run after login (rt0) and a first rotation (rt1); they
		// return the token to present and may advance the clock.
		present func(h *harness, rt0, rt1 string) string
	}{
		{"parent after the grace interval", func(h *harness, rt0, _ string) string {
			h.clock.Advance(31 * time.Second)
			return rt0
		}},
		{"grandparent within the grace interval", func(h *harness, rt0, rt1 string) string {
			h.mustRefresh(rt1) // rt0 is now two generations old
			return rt0
		}},
		{"first child superseded by a graced answer", func(h *harness, rt0, rt1 string) string {
			h.mustRefresh(rt0) // graced: its new child replaces rt1
			return rt1
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{ReuseGrace: 30 * time.Second})
			rt0 := h.password("").str("refresh_token")
			_, rt1 := h.mustRefresh(rt0)
			wantGrantError(t, h.refresh(tc.present(h, rt0, rt1)), http.StatusBadRequest, "invalid_grant")
			if got := h.s.Stats().ReuseDetections; got != 1 {
				t.Errorf("ReuseDetections: got %d, want 1", got)
			}
		})
	}
}

func TestIdleExpiryViaClock(t *testing.T) {
	h := newHarness(t, Config{RefreshIdle: time.Hour})
	rt := h.password("").str("refresh_token")

	// Each use restarts the idle lifetime.
	for range 3 {
		h.clock.Advance(59 * time.Minute)
		_, rt = h.mustRefresh(rt)
	}
	h.clock.Advance(time.Hour)
	wantGrantError(t, h.refresh(rt), http.StatusBadRequest, "invalid_grant")
	if got := h.s.Stats().ReuseDetections; got != 0 {
		t.Errorf("expiry counted as reuse: %d", got)
	}
}

func TestAbsoluteExpiry(t *testing.T) {
	h := newHarness(t, Config{RefreshIdle: time.Hour, RefreshAbsolute: 2 * time.Hour})
	rt := h.password("").str("refresh_token")
	for range 2 {
		h.clock.Advance(50 * time.Minute)
		_, rt = h.mustRefresh(rt) // at 50m and 1h40m: in use, not idle
	}
	h.clock.Advance(20 * time.Minute) // 2h after login
	wantGrantError(t, h.refresh(rt), http.StatusBadRequest, "invalid_grant")
}

func TestNegativeLifetimesDisableExpiry(t *testing.T) {
	h := newHarness(t, Config{RefreshIdle: -1, RefreshAbsolute: -1})
	rt := h.password("").str("refresh_token")
	h.clock.Advance(10 * 365 * 24 * time.Hour)
	h.mustRefresh(rt)
}

func TestUnknownRefreshTokenIsInvalidGrant(t *testing.T) {
	h := newHarness(t, Config{})
	wantGrantError(t, h.refresh("not-a-token"), http.StatusBadRequest, "invalid_grant")
}

func TestRefreshBoundToClient(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token") // issued to the public client
	a := h.do(h.tokenRequest(formWith(formRefresh(rt), "client_id", ConfidentialClientID, "client_secret", ConfidentialClientSecret)))
	wantGrantError(t, a, http.StatusBadRequest, "invalid_grant")
	h.mustRefresh(rt) // refused, not revoked
}

func TestRefreshScopeNarrowing(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("read admin").str("refresh_token")

	wide := h.do(h.tokenRequest(formWith(formRefresh(rt), "scope", "read write")))
	wantGrantError(t, wide, http.StatusBadRequest, "invalid_scope")

	narrow := h.do(h.tokenRequest(formWith(formRefresh(rt), "scope", "read")))
	if narrow.status != http.StatusOK || narrow.str("scope") != "read" {
		t.Fatalf("narrowed refresh: got %d %s, want 200 scope read", narrow.status, narrow.raw)
	}
	if got := h.get(PathAdmin, narrow.str("access_token")); got.status != http.StatusForbidden {
		t.Errorf("narrowed token on %s: got %d, want 403", PathAdmin, got.status)
	}
	// Narrowing a refresh does not shrink the grant.
	full := h.refresh(narrow.str("refresh_token"))
	if full.status != http.StatusOK || full.str("scope") != "read admin" {
		t.Errorf("refresh without scope: got %d %s, want scope %q", full.status, full.raw, "read admin")
	}
}

func TestConcurrentRefreshOfDistinctSessions(t *testing.T) {
	const n = 1000
	h := newHarness(t, Config{})
	tokens := make([]string, n)
	for i := range tokens {
		tok, err := h.s.IssueToken(DemoUser)
		if err != nil {
			t.Fatal(err)
		}
		tokens[i] = tok.RefreshToken
	}
	type result struct {
		i   int
		a   answer
		err error
	}
	results := make(chan result, n)
	for i, rt := range tokens {
		go func() {
			a, err := h.try(h.tokenRequest(formRefresh(rt)))
			results <- result{i, a, err}
		}()
	}
	seen := make(map[string]bool, 2*n)
	for _, rt := range tokens {
		seen[rt] = true
	}
	for range n {
		r := <-results
		if r.err != nil {
			t.Errorf("session %d: %v", r.i, r.err)
			continue
		}
		if r.a.status != http.StatusOK {
			t.Errorf("session %d: got %d %s, want 200", r.i, r.a.status, r.a.raw)
			continue
		}
		rt := r.a.str("refresh_token")
		if seen[rt] {
			t.Errorf("session %d: refresh token %q handed out twice", r.i, rt)
		}
		seen[rt] = true
	}
	st := h.s.Stats()
	if st.Rotations != n || st.ReuseDetections != 0 || st.RefreshFailures != 0 {
		t.Errorf("stats: got %+v, want %d rotations and no failures", st, n)
	}
}

// formRefresh is a refresh_token grant of the public client.
func formRefresh(rt string) map[string][]string {
	return map[string][]string{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {PublicClientID}}
}

// formWith returns f with the given key, value pairs set.
func formWith(f map[string][]string, kv ...string) map[string][]string {
	for i := 0; i+1 < len(kv); i += 2 {
		f[kv[i]] = []string{kv[i+1]}
	}
	return f
}
