package testserver

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRequestLogNeverHoldsSecrets(t *testing.T) {
	const password = "correct-horse-battery-staple"
	const clientSecret = "client-secret-value"
	h := newHarness(t, Config{
		Users:   map[string]string{"alice": password},
		Clients: map[string]string{"app": clientSecret},
	})
	var secrets []string
	keep := func(s ...string) { secrets = append(secrets, s...) }
	keep(password, clientSecret)

	// OAuth2 API: password grant with a form secret, refresh with Basic.
	login := h.do(h.tokenRequest(url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {password},
		"client_id": {"app"}, "client_secret": {clientSecret}}))
	if login.status != http.StatusOK {
		t.Fatalf("login: %d %s", login.status, login.raw)
	}
	keep(login.str("access_token"), login.str("refresh_token"))
	req := h.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {login.str("refresh_token")}})
	req.SetBasicAuth("app", clientSecret)
	ref := h.do(req)
	keep(ref.str("access_token"), ref.str("refresh_token"))
	h.get(PathMe, ref.str("access_token"))
	h.refresh(login.str("refresh_token")) // a reuse, still logged without the token

	// Express API: login, cookie refresh, current-user.
	b := h.postJSON(PathExpressLogin, map[string]string{"username": "alice", "password": password})
	keep(b.data()["accessToken"].(string), b.data()["refreshToken"].(string))
	req = h.newRequest(http.MethodPost, PathExpressRefresh, nil)
	req.AddCookie(&http.Cookie{Name: "refreshToken", Value: b.data()["refreshToken"].(string)})
	br := h.do(req)
	keep(br.data()["accessToken"].(string), br.data()["refreshToken"].(string))
	req = h.newRequest(http.MethodGet, PathExpressCurrentUser, nil)
	req.AddCookie(&http.Cookie{Name: "accessToken", Value: br.data()["accessToken"].(string)})
	h.do(req)

	recs := h.s.Requests()
	dump := fmt.Sprintf("%+v", recs)
	for _, s := range secrets {
		if s == "" {
			t.Fatal("a secret of the scenario is empty")
		}
		if strings.Contains(dump, s) {
			t.Errorf("request log holds a secret: %q", s)
		}
	}

	want := []struct{ path, cred string }{
		{PathToken, CredPassword + "+" + CredFormClient},
		{PathToken, CredBasicClient + "+" + CredRefreshToken},
		{PathMe, CredBearer},
		{PathToken, CredRefreshToken + "+" + CredClientID},
		{PathExpressLogin, CredPassword},
		{PathExpressRefresh, CredRefreshCookie},
		{PathExpressCurrentUser, CredCookie},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d: %+v", len(recs), len(want), recs)
	}
	for i, w := range want {
		if recs[i].Path != w.path || recs[i].Credential != w.cred {
			t.Errorf("record %d: got %s %q, want %s %q", i, recs[i].Path, recs[i].Credential, w.path, w.cred)
		}
		if recs[i].Time.IsZero() || recs[i].Method == "" || recs[i].Status == 0 {
			t.Errorf("record %d incomplete: %+v", i, recs[i])
		}
	}
	if h.get(PathMe, "").status != http.StatusUnauthorized {
		t.Fatal("want 401")
	}
	if last := h.s.Requests()[len(recs)]; last.Credential != CredNone || last.Status != http.StatusUnauthorized {
		t.Errorf("anonymous request: got %+v", last)
	}
}

func TestStatsCountUnauthorized(t *testing.T) {
	h := newHarness(t, Config{})
	h.get(PathMe, "")                                                         // resource
	h.get(PathExpressCurrentUser, "")                                         // Express API resource
	h.postJSON(PathExpressRefresh, map[string]string{"refreshToken": "nope"}) // Express API refresh
	h.do(h.tokenRequest(url.Values{"grant_type": {"password"}}))              // no client: invalid_client
	st := h.s.Stats()
	if st.Unauthorized != 4 {
		t.Errorf("Unauthorized: got %d, want 4", st.Unauthorized)
	}
	if st.Refreshes != 1 || st.RefreshFailures != 1 {
		t.Errorf("refresh counters: got %+v, want 1 refresh, 1 failure", st)
	}
}
