package testserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if commandDir != "" {
			os.RemoveAll(commandDir)
		}
		os.Exit(code)
	}))
}

// epoch is the start of every frozen test clock.
var epoch = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// harness is a started server, its frozen clock and an HTTP client whose
// connections are closed when the test ends.
type harness struct {
	t      *testing.T
	s      *Server
	clock  *Clock
	client *http.Client
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = NewClock(epoch)
	}
	s := NewTest(t, cfg)
	return &harness{t: t, s: s, clock: cfg.Clock, client: newClient(t)}
}

// newClient returns a client of its own transport, closed at cleanup.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// answer is a decoded response.
type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) str(key string) string {
	s, _ := a.body[key].(string)
	return s
}

// data returns the "data" object of an Express API envelope.
func (a answer) data() map[string]any {
	d, _ := a.body["data"].(map[string]any)
	return d
}

// do sends req and decodes the answer; it fails the test on a transport
// error.
func (h *harness) do(req *http.Request) answer {
	h.t.Helper()
	a, err := h.try(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	return a
}

// try sends req and decodes the answer.
func (h *harness) try(req *http.Request) (answer, error) {
	resp, err := h.client.Do(req)
	if err != nil {
		return answer{}, err
	}
	return decode(resp)
}

// decode reads and closes resp.
func decode(resp *http.Response) (answer, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	if len(b) > 0 {
		json.Unmarshal(b, &a.body)
	}
	return a, nil
}

func (h *harness) newRequest(method, path string, body io.Reader) *http.Request {
	h.t.Helper()
	req, err := http.NewRequest(method, h.s.URL()+path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	return req
}

// tokenRequest builds a form POST to the token endpoint.
func (h *harness) tokenRequest(form url.Values) *http.Request {
	req := h.newRequest(http.MethodPost, PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// password runs a password grant for the demo user with the public client.
func (h *harness) password(scope string) answer {
	h.t.Helper()
	a := h.do(h.tokenRequest(url.Values{
		"grant_type": {"password"}, "username": {DemoUser}, "password": {DemoPassword},
		"client_id": {PublicClientID}, "scope": {scope},
	}))
	if a.status != http.StatusOK {
		h.t.Fatalf("password grant: got %d %s, want 200", a.status, a.raw)
	}
	return a
}

// refresh runs a refresh_token grant with the public client.
func (h *harness) refresh(rt string) answer {
	h.t.Helper()
	return h.do(h.tokenRequest(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {PublicClientID},
	}))
}

// mustRefresh refreshes rt and returns the new pair.
func (h *harness) mustRefresh(rt string) (access, refresh string) {
	h.t.Helper()
	a := h.refresh(rt)
	if a.status != http.StatusOK {
		h.t.Fatalf("refresh: got %d %s, want 200", a.status, a.raw)
	}
	return a.str("access_token"), a.str("refresh_token")
}

// wantGrantError checks a §5.2 error answer.
func wantGrantError(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status || a.str("error") != code {
		t.Fatalf("got %d %s, want %d error %q", a.status, a.raw, status, code)
	}
}

// get sends a GET to path with a Bearer token (none if empty).
func (h *harness) get(path, token string) answer {
	h.t.Helper()
	req := h.newRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return h.do(req)
}

// postJSON sends v as JSON to path.
func (h *harness) postJSON(path string, v any) answer {
	h.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		h.t.Fatal(err)
	}
	req := h.newRequest(http.MethodPost, path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	return h.do(req)
}

// ctx returns a context bounded for one test step.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
