package testserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// remote drives a standalone server over HTTP.
type remote struct {
	*harness
	ctx   context.Context
	base  string
	admin string // the admin token
}

func (r *remote) send(method, path, body, auth string) answer {
	r.t.Helper()
	req, err := http.NewRequestWithContext(r.ctx, method, r.base+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	if strings.Contains(body, "grant_type=") {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return r.do(req)
}

// ctl sends a control call with the admin token.
func (r *remote) ctl(method, call, body string) answer {
	r.t.Helper()
	return r.send(method, PathControl+call, body, "Bearer "+r.admin)
}

// login runs a password grant and returns the access and refresh tokens.
func (r *remote) login() (access, refresh string) {
	r.t.Helper()
	a := r.send(http.MethodPost, PathToken, url.Values{
		"grant_type": {"password"}, "username": {DemoUser}, "password": {DemoPassword}, "client_id": {PublicClientID},
	}.Encode(), "")
	wantStatus(r.t, "password grant", a, http.StatusOK)
	return a.str("access_token"), a.str("refresh_token")
}

func (r *remote) refreshBody(rt string) string {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {PublicClientID}}.Encode()
}

func (r *remote) refresh(rt string) answer {
	r.t.Helper()
	return r.send(http.MethodPost, PathToken, r.refreshBody(rt), "")
}

func (r *remote) me(access string) int {
	r.t.Helper()
	return r.send(http.MethodGet, PathMe, "", "Bearer "+access).status
}

// stats reads the counters through the control API.
func (r *remote) stats() Stats {
	r.t.Helper()
	a := r.ctl(http.MethodGet, "stats", "")
	wantStatus(r.t, "stats", a, http.StatusOK)
	var st Stats
	if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
		r.t.Fatal(err)
	}
	return st
}

// state reads the live page's state through the control API.
func (r *remote) state() controlState {
	r.t.Helper()
	a := r.ctl(http.MethodGet, "state", "")
	wantStatus(r.t, "state", a, http.StatusOK)
	var st controlState
	if err := json.Unmarshal([]byte(a.raw), &st); err != nil {
		r.t.Fatal(err)
	}
	return st
}

func TestStandaloneCommandObeysEveryControlCallBehindTheAdminToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const token = "adm1n-t0ken"
	c := startCommand(t, ctx, "-admin-token", token, "-frozen-clock", "-access-ttl", "60s")
	r := &remote{harness: &harness{t: t, client: newClient(t)}, ctx: ctx, base: c.base, admin: token}

	// -admin-token: every control call needs it, the page included.
	for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x"} {
		for _, call := range []string{"expire-access-tokens", "revoke-all"} {
			wantControlError(t, "POST "+call+" with "+strings.TrimSpace(auth+" none"), r.send(http.MethodPost, PathControl+call, "", auth), http.StatusUnauthorized)
		}
		wantStatus(t, "GET page with "+auth, r.send(http.MethodGet, PathControl, "", auth), http.StatusUnauthorized)
	}
	wantStatus(t, "page with the token", r.ctl(http.MethodGet, "", ""), http.StatusOK)
	wantControlError(t, "GET revoke-all", r.ctl(http.MethodGet, "revoke-all", ""), http.StatusMethodNotAllowed)
	wantControlError(t, "bad JSON", r.ctl(http.MethodPost, "fail-refreshes", `{"count":`), http.StatusBadRequest)

	access, rt := r.login()
	if st := r.stats(); st.Logins != 1 {
		t.Errorf("stats after a login: got %+v, want 1 login", st)
	}

	// expire-access-tokens: the token is refused, and counted.
	wantStatus(t, "expire-access-tokens", r.ctl(http.MethodPost, "expire-access-tokens", ""), http.StatusNoContent)
	if got := r.me(access); got != http.StatusUnauthorized {
		t.Errorf("token after expire-access-tokens: got %d, want 401", got)
	}

	// fail-refreshes: 503 with Retry-After, then normal again.
	wantStatus(t, "fail-refreshes", r.ctl(http.MethodPost, "fail-refreshes", `{"count":1,"status":503,"retry_after_seconds":1}`), http.StatusNoContent)
	a := r.refresh(rt)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" {
		t.Errorf("refresh after fail-refreshes: got %d Retry-After %q, want 503 and 1", a.status, a.header.Get("Retry-After"))
	}

	// delay-refreshes: set, seen in the state, then ended.
	wantStatus(t, "delay-refreshes", r.ctl(http.MethodPost, "delay-refreshes", `{"delay_ms":20}`), http.StatusNoContent)
	if got := r.state().Faults.DelayMS; got != 20 {
		t.Errorf("delay after delay-refreshes: got %d ms, want 20", got)
	}
	wantStatus(t, "delayed refresh", r.refresh(rt), http.StatusOK)
	wantStatus(t, "delay 0", r.ctl(http.MethodPost, "delay-refreshes", `{"delay_ms":0}`), http.StatusNoContent)
	if got := r.state().Faults.DelayMS; got != 0 {
		t.Errorf("delay after delay_ms 0: got %d ms, want 0", got)
	}

	// A replayed refresh token is a reuse detection.
	wantGrantError(t, r.refresh(rt), http.StatusBadRequest, "invalid_grant")
	if st := r.stats(); st.Rotations != 1 || st.ReuseDetections != 1 || st.InjectedFailures != 1 || st.Unauthorized != 1 || st.Refreshes != 3 || st.RefreshFailures != 2 {
		t.Errorf("stats: got %+v, want 1 rotation, 1 reuse, 1 injected failure, 1 unauthorized, 3 refreshes, 2 failures", st)
	}
	if fams := r.state().Families; len(fams) != 1 || fams[0].Revoked != revokedByReuse {
		t.Errorf("families after the reuse: got %+v, want one revoked by reuse", fams)
	}

	// hold-refreshes: a refresh waits until release-refreshes.
	_, rt = r.login()
	wantStatus(t, "hold-refreshes", r.ctl(http.MethodPost, "hold-refreshes", ""), http.StatusNoContent)
	held := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.base+PathToken, strings.NewReader(r.refreshBody(rt)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		a, _ := r.try(req)
		held <- a
	}()
	// The server is another process: poll its state, within a deadline.
	for r.state().Faults.Held != 1 {
		if ctx.Err() != nil {
			t.Fatal("the refresh was never held")
		}
		select {
		case a := <-held:
			t.Fatalf("refresh answered while held: %d %s", a.status, a.raw)
		default:
		}
	}
	wantStatus(t, "release-refreshes", r.ctl(http.MethodPost, "release-refreshes", ""), http.StatusNoContent)
	a = <-held
	wantStatus(t, "held refresh after release", a, http.StatusOK)
	rt = a.str("refresh_token")

	// drop-after-rotate: the rotation happens, the answer is lost.
	wantStatus(t, "drop-after-rotate", r.ctl(http.MethodPost, "drop-after-rotate", `{"count":1}`), http.StatusNoContent)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.base+PathToken, strings.NewReader(r.refreshBody(rt)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if a, err := r.try(req); err == nil {
		t.Errorf("refresh after drop-after-rotate: got %d, want the connection closed", a.status)
	}
	if st := r.stats(); st.Drops != 1 || st.Rotations != 3 {
		t.Errorf("stats after the drop: got %+v, want 1 drop, 3 rotations", st)
	}

	// clock/advance: the frozen clock moves past the access token's life.
	access, rt = r.login()
	if got := r.me(access); got != http.StatusOK {
		t.Fatalf("fresh token: got %d, want 200", got)
	}
	before := r.state().Now
	a = r.ctl(http.MethodPost, "clock/advance", `{"seconds":61}`)
	wantStatus(t, "clock/advance", a, http.StatusOK)
	if now := r.state().Now; now.Sub(before) != 61*time.Second {
		t.Errorf("clock moved by %v, want 61s", now.Sub(before))
	}
	if got := r.me(access); got != http.StatusUnauthorized {
		t.Errorf("token after clock/advance: got %d, want 401", got)
	}

	// revoke-all: the live refresh token is refused.
	wantStatus(t, "revoke-all", r.ctl(http.MethodPost, "revoke-all", ""), http.StatusNoContent)
	wantGrantError(t, r.refresh(rt), http.StatusBadRequest, "invalid_grant")

	// log: the requests, without their secrets nor the control calls.
	a = r.ctl(http.MethodGet, "log", "")
	wantStatus(t, "log", a, http.StatusOK)
	var log struct {
		Total    int             `json:"total"`
		Requests []RequestRecord `json:"requests"`
	}
	if err := json.Unmarshal([]byte(a.raw), &log); err != nil {
		t.Fatal(err)
	}
	if log.Total == 0 || len(log.Requests) != log.Total {
		t.Errorf("log: got %d of %d records", len(log.Requests), log.Total)
	}
	for _, rec := range log.Requests {
		if strings.HasPrefix(rec.Path, PathControl) {
			t.Errorf("log holds a control call: %+v", rec)
		}
	}
	if strings.Contains(a.raw, rt) || strings.Contains(a.raw, access) {
		t.Error("log holds a token")
	}
	r.client.CloseIdleConnections()

	banner := c.stop(t, ctx)
	for _, want := range []string{c.base + PathControl + " (needs Authorization: Bearer <admin token>)", "frozen"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
	if strings.Contains(banner, token) {
		t.Error("banner prints the admin token")
	}
}
