package testserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// ctl sends a control call; body "" sends none.
func (h *harness) ctl(method, call, body string) answer {
	h.t.Helper()
	req := h.newRequest(method, PathControl+call, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// wantStatus fails the test unless a answered status.
func wantStatus(t *testing.T, what string, a answer, status int) {
	t.Helper()
	if a.status != status {
		t.Fatalf("%s: got %d %s, want %d", what, a.status, a.raw, status)
	}
}

// wantControlError checks a JSON error answer of the control API.
func wantControlError(t *testing.T, what string, a answer, status int) {
	t.Helper()
	wantStatus(t, what, a, status)
	if a.str("error") == "" || !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s: got %q (%s), want a JSON error", what, a.raw, a.header.Get("Content-Type"))
	}
}

func TestControlExpireAccessTokensRefusesTheTokensIssuedBefore(t *testing.T) {
	h := newHarness(t, Config{})
	old := h.password("").str("access_token")
	wantStatus(t, "expire", h.ctl(http.MethodPost, "expire-access-tokens", ""), http.StatusNoContent)
	if a := h.get(PathMe, old); a.status != http.StatusUnauthorized {
		t.Errorf("old token after expire: got %d, want 401", a.status)
	}
	if a := h.get(PathMe, h.password("").str("access_token")); a.status != http.StatusOK {
		t.Errorf("new token after expire: got %d, want 200", a.status)
	}
}

func TestControlFailRefreshesAnswersTheStatusWithRetryAfter(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	wantStatus(t, "fail-refreshes", h.ctl(http.MethodPost, "fail-refreshes", `{"count":1,"status":429,"retry_after_seconds":2}`), http.StatusNoContent)
	a := h.refresh(rt)
	wantGrantError(t, a, http.StatusTooManyRequests, "temporarily_unavailable")
	if got := a.header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After: got %q, want %q", got, "2")
	}
	if a := h.refresh(rt); a.status != http.StatusOK {
		t.Errorf("refresh after the injected failure: got %d %s, want 200", a.status, a.raw)
	}
}

func TestControlFailRefreshesDefaultsToOne503(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	wantStatus(t, "fail-refreshes", h.ctl(http.MethodPost, "fail-refreshes", ""), http.StatusNoContent)
	wantGrantError(t, h.refresh(rt), http.StatusServiceUnavailable, "temporarily_unavailable")
	if a := h.refresh(rt); a.status != http.StatusOK {
		t.Errorf("second refresh: got %d, want 200", a.status)
	}
}

func TestControlDelayRefreshesSetsAndEndsTheDelay(t *testing.T) {
	h := newHarness(t, Config{})
	wantStatus(t, "delay", h.ctl(http.MethodPost, "delay-refreshes", `{"delay_ms":40}`), http.StatusNoContent)
	if got := h.s.faultState().DelayMS; got != 40 {
		t.Fatalf("delay: got %d ms, want 40", got)
	}
	rt := h.password("").str("refresh_token")
	start := time.Now()
	if a := h.refresh(rt); a.status != http.StatusOK {
		t.Fatalf("delayed refresh: got %d", a.status)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("delayed refresh took %v, want at least 40ms", d)
	}
	wantStatus(t, "no delay", h.ctl(http.MethodPost, "delay-refreshes", `{"delay_ms":0}`), http.StatusNoContent)
	if got := h.s.faultState().DelayMS; got != 0 {
		t.Errorf("delay after delay_ms 0: got %d ms, want 0", got)
	}
}

func TestControlHoldRefreshesUntilReleased(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	wantStatus(t, "hold", h.ctl(http.MethodPost, "hold-refreshes", ""), http.StatusNoContent)
	got := make(chan int, 1)
	go func() {
		a, err := h.try(h.tokenRequest(map[string][]string{
			"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {PublicClientID},
		}))
		if err != nil {
			got <- -1
			return
		}
		got <- a.status
	}()
	if err := h.s.WaitHeld(testContext(t), 1); err != nil {
		t.Fatalf("no refresh held: %v", err)
	}
	wantStatus(t, "release", h.ctl(http.MethodPost, "release-refreshes", ""), http.StatusNoContent)
	if status := <-got; status != http.StatusOK {
		t.Errorf("held refresh after release: got %d, want 200", status)
	}
	if st := h.s.faultState(); st.Holds != 0 || st.Held != 0 {
		t.Errorf("after release: %d holds, %d held, want none", st.Holds, st.Held)
	}
}

func TestControlDropAfterRotateClosesTheConnection(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	wantStatus(t, "drop", h.ctl(http.MethodPost, "drop-after-rotate", `{"count":1}`), http.StatusNoContent)
	if _, err := h.try(h.tokenRequest(map[string][]string{
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {PublicClientID},
	})); err == nil {
		t.Fatal("refresh after drop-after-rotate: got an answer, want a closed connection")
	}
	if st := h.s.Stats(); st.Drops != 1 || st.Rotations != 1 {
		t.Errorf("stats: got %d drops, %d rotations, want 1 and 1", st.Drops, st.Rotations)
	}
}

func TestControlRevokeAllRefusesEveryRefreshToken(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	wantStatus(t, "revoke-all", h.ctl(http.MethodPost, "revoke-all", ""), http.StatusNoContent)
	wantGrantError(t, h.refresh(rt), http.StatusBadRequest, "invalid_grant")
}

func TestControlClockAdvanceExpiresAccessTokens(t *testing.T) {
	h := newHarness(t, Config{AccessTTL: time.Minute})
	access := h.password("").str("access_token")
	a := h.ctl(http.MethodPost, "clock/advance", `{"seconds":61}`)
	wantStatus(t, "advance", a, http.StatusOK)
	if want := epoch.Add(61 * time.Second).Format(time.RFC3339); a.str("now") != want {
		t.Errorf("now: got %q, want %q", a.str("now"), want)
	}
	if a := h.get(PathMe, access); a.status != http.StatusUnauthorized {
		t.Errorf("token after the clock passed its expiry: got %d, want 401", a.status)
	}
}

func TestControlClockAdvanceOnARealClockIsAConflict(t *testing.T) {
	h := newHarness(t, Config{Clock: NewRealClock()})
	wantControlError(t, "advance", h.ctl(http.MethodPost, "clock/advance", `{"seconds":30}`), http.StatusConflict)
}

func TestControlStatsAnswersTheCountersInJSON(t *testing.T) {
	h := newHarness(t, Config{})
	rt := h.password("").str("refresh_token")
	h.mustRefresh(rt)
	h.refresh(rt) // reuse
	a := h.ctl(http.MethodGet, "stats", "")
	wantStatus(t, "stats", a, http.StatusOK)
	want := map[string]any{
		"logins": 1.0, "refreshes": 2.0, "rotations": 1.0, "reuse_detections": 1.0,
		"unauthorized": 0.0, "refresh_failures": 1.0, "injected_failures": 0.0, "drops": 0.0,
	}
	if len(a.body) != len(want) {
		t.Errorf("got keys %v, want %v", a.body, want)
	}
	for k, v := range want {
		if a.body[k] != v {
			t.Errorf("%s: got %v, want %v", k, a.body[k], v)
		}
	}
}

func TestControlLogListsRequestsWithoutSecretsNorControlCalls(t *testing.T) {
	h := newHarness(t, Config{})
	tok := h.password("")
	h.get(PathMe, tok.str("access_token"))
	h.ctl(http.MethodGet, "stats", "")
	a := h.ctl(http.MethodGet, "log", "")
	wantStatus(t, "log", a, http.StatusOK)
	var log struct {
		Total    int             `json:"total"`
		Requests []RequestRecord `json:"requests"`
	}
	if err := json.Unmarshal([]byte(a.raw), &log); err != nil {
		t.Fatal(err)
	}
	if log.Total != 2 || len(log.Requests) != 2 {
		t.Fatalf("got %d of %d records, want 2 of 2: %s", len(log.Requests), log.Total, a.raw)
	}
	if r := log.Requests[1]; r.Path != PathMe || r.Credential != CredBearer || r.Status != http.StatusOK {
		t.Errorf("second record: got %+v", r)
	}
	for _, secret := range []string{tok.str("access_token"), tok.str("refresh_token"), DemoPassword + `"`} {
		if strings.Contains(a.raw, secret) {
			t.Errorf("the log holds a secret %q", secret)
		}
	}
	var one struct{ Requests []RequestRecord }
	json.Unmarshal([]byte(h.ctl(http.MethodGet, "log?limit=1", "").raw), &one)
	if len(one.Requests) != 1 || one.Requests[0].Path != PathMe {
		t.Errorf("limit=1: got %+v, want the newest record", one.Requests)
	}
}

func TestControlStateShowsFamiliesAndTheirRotationsAndReuse(t *testing.T) {
	h := newHarness(t, Config{})
	tok := h.password("")
	rt := tok.str("refresh_token")
	_, rt2 := h.mustRefresh(rt)
	h.refresh(rt) // reuse: revokes the family
	a := h.ctl(http.MethodGet, "state", "")
	wantStatus(t, "state", a, http.StatusOK)
	var st controlState
	if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Families) != 1 || st.Families[0].Generation != 2 || st.Families[0].Revoked != revokedByReuse || st.Families[0].User != DemoUser {
		t.Errorf("families: got %+v, want one family of demo at token 2, revoked by reuse", st.Families)
	}
	var kinds []string
	for _, e := range st.Events {
		kinds = append(kinds, e.Kind)
	}
	if want := []string{eventLogin, eventRotation, eventReuse}; !slices.Equal(kinds, want) {
		t.Errorf("events: got %v, want %v", kinds, want)
	}
	for _, secret := range []string{rt, rt2, tok.str("access_token")} {
		if strings.Contains(a.raw, secret) {
			t.Errorf("the state holds a token")
		}
	}
}

func TestControlRejectsBadJSONAndBadValues(t *testing.T) {
	h := newHarness(t, Config{})
	tests := []struct{ call, body string }{
		{"fail-refreshes", `{"count":`},
		{"fail-refreshes", `{"count":"1"}`},
		{"fail-refreshes", `{"cuont":1}`},
		{"fail-refreshes", `{"count":1} {}`},
		{"fail-refreshes", `{"count":-1}`},
		{"fail-refreshes", `{"status":200}`},
		{"fail-refreshes", `{"status":600}`},
		{"fail-refreshes", `{"retry_after_seconds":-1}`},
		{"delay-refreshes", ``},
		{"delay-refreshes", `{"delay_ms":-5}`},
		{"delay-refreshes", `{"delay_ms":1.5}`},
		{"delay-refreshes", `{"delay_ms":600001}`},
		{"drop-after-rotate", `{"count":-1}`},
		{"drop-after-rotate", `[1]`},
		{"clock/advance", `{}`},
		{"clock/advance", `{"seconds":0}`},
		{"clock/advance", `{"seconds":-30}`},
		{"expire-access-tokens", `{"now":true}`},
		{"revoke-all", `nope`},
	}
	for _, tc := range tests {
		t.Run(tc.call+" "+tc.body, func(t *testing.T) {
			wantControlError(t, tc.call, h.ctl(http.MethodPost, tc.call, tc.body), http.StatusBadRequest)
		})
	}
	wantControlError(t, "log?limit=x", h.ctl(http.MethodGet, "log?limit=x", ""), http.StatusBadRequest)
	if st := h.s.faultState(); st != (faultState{}) {
		t.Errorf("rejected calls changed the faults: %+v", st)
	}
}

func TestControlWrongMethodIs405WithAllow(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.ctl(http.MethodGet, "revoke-all", "")
	wantControlError(t, "GET revoke-all", a, http.StatusMethodNotAllowed)
	if got := a.header.Get("Allow"); got != http.MethodPost {
		t.Errorf("Allow: got %q, want POST", got)
	}
	a = h.ctl(http.MethodPost, "stats", "")
	wantControlError(t, "POST stats", a, http.StatusMethodNotAllowed)
	if got := a.header.Get("Allow"); got != "GET, HEAD" {
		t.Errorf("Allow: got %q, want GET, HEAD", got)
	}
}

func TestControlUnknownCallIs404(t *testing.T) {
	h := newHarness(t, Config{})
	wantControlError(t, "POST nope", h.ctl(http.MethodPost, "nope", ""), http.StatusNotFound)
}

func TestControlAdminTokenIsRequiredAsBearerOrBasicPassword(t *testing.T) {
	h := newHarness(t, Config{AdminToken: "s3cret"})
	send := func(auth func(*http.Request)) answer {
		req := h.newRequest(http.MethodGet, PathControl+"stats", nil)
		auth(req)
		return h.do(req)
	}
	for name, auth := range map[string]func(*http.Request){
		"none":         func(*http.Request) {},
		"wrong bearer": func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cre") },
		"wrong basic":  func(r *http.Request) { r.SetBasicAuth("admin", "nope") },
		"other scheme": func(r *http.Request) { r.Header.Set("Authorization", "Token s3cret") },
	} {
		a := send(auth)
		wantControlError(t, name, a, http.StatusUnauthorized)
		if ch := a.header.Values("WWW-Authenticate"); len(ch) != 2 {
			t.Errorf("%s: challenges %q, want Bearer and Basic", name, ch)
		}
	}
	wantStatus(t, "bearer", send(func(r *http.Request) { r.Header.Set("Authorization", "Bearer s3cret") }), http.StatusOK)
	wantStatus(t, "basic", send(func(r *http.Request) { r.SetBasicAuth("", "s3cret") }), http.StatusOK)
	// The page is protected too.
	wantStatus(t, "page", h.ctl(http.MethodGet, "", ""), http.StatusUnauthorized)
}

func TestControlCallsAreNotLoggedNorCounted(t *testing.T) {
	h := newHarness(t, Config{AdminToken: "t"})
	h.ctl(http.MethodGet, "stats", "") // 401
	h.ctl(http.MethodGet, "", "")
	if n := len(h.s.Requests()); n != 0 {
		t.Errorf("request log: got %d records, want 0", n)
	}
	if st := h.s.Stats(); st != (Stats{}) {
		t.Errorf("stats: got %+v, want zero", st)
	}
}

func TestControlPageIsServedAsHTMLFromTheBinary(t *testing.T) {
	h := newHarness(t, Config{})
	a := h.ctl(http.MethodGet, "", "")
	wantStatus(t, "page", a, http.StatusOK)
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type: got %q", ct)
	}
	if !strings.Contains(a.raw, `new EventSource("events")`) || strings.Contains(a.raw, "https://") {
		t.Errorf("page: want the inline script and no external resource")
	}
	// /admin redirects to the page.
	resp, err := h.client.Get(h.s.URL() + "/admin")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != PathControl {
		t.Errorf("/admin: got %d at %s, want 200 at %s", resp.StatusCode, resp.Request.URL.Path, PathControl)
	}
}

func TestControlWorksThroughHandler(t *testing.T) {
	s := New(Config{})
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	t.Cleanup(func() { s.Close() }) // runs first: ends event streams
	resp, err := hs.Client().Post(hs.URL+PathControl+"expire-access-tokens", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("got %d, want 204", resp.StatusCode)
	}
}

// readEvent reads the next server-sent event's data.
func readEvent(r *bufio.Reader) (controlState, error) {
	var st controlState
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return st, err
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			return st, json.Unmarshal([]byte(data), &st)
		}
	}
}

func TestControlEventsStreamTheStateAfterEachChange(t *testing.T) {
	h := newHarness(t, Config{})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	req := h.newRequest(http.MethodGet, PathControl+"events", nil)
	resp, err := h.client.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type: got %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	if _, err := readEvent(r); err != nil {
		t.Fatalf("first event: %v", err)
	}
	h.mustRefresh(h.password("").str("refresh_token"))
	for {
		st, err := readEvent(r)
		if err != nil {
			t.Fatalf("no rotation streamed: %v", err)
		}
		if n := len(st.Events); n > 0 && st.Events[n-1].Kind == eventRotation {
			if st.Stats.Rotations != 1 {
				t.Errorf("rotations: got %d, want 1", st.Stats.Rotations)
			}
			return
		}
	}
}

func TestCloseEndsOpenEventStreams(t *testing.T) {
	s := New(Config{})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	client := newClient(t)
	resp, err := client.Get(s.URL() + PathControl + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := readEvent(bufio.NewReader(resp.Body)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Close: %v", err)
		}
	case <-testContext(t).Done():
		t.Fatal("Close did not return while an event stream was open")
	}
}

func TestShutdownEndsOpenEventStreams(t *testing.T) {
	s := New(Config{})
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	client := newClient(t)
	resp, err := client.Get(s.URL() + PathControl + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := readEvent(bufio.NewReader(resp.Body)); err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(testContext(t)); err != nil {
		t.Errorf("Shutdown with an open event stream: %v", err)
	}
}
