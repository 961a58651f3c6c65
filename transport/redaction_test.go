package transport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/autorefresh/autorefresh/internal/safebuf"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// secrets collects every token value that exists during a test: issued,
// presented, answered or stored.
type secrets struct {
	mu  sync.Mutex // guards set
	set map[string]bool
}

func (s *secrets) add(vs ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		s.set = map[string]bool{}
	}
	for _, v := range vs {
		if len(v) >= 8 {
			s.set[v] = true
		}
		// A JWT's signature alone identifies it.
		if parts := strings.Split(v, "."); len(parts) == 3 && len(parts[2]) >= 16 {
			s.set[parts[2]] = true
		}
	}
}

func (s *secrets) addToken(t *oauth2.Token) {
	if t != nil {
		s.add(t.AccessToken, t.RefreshToken)
	}
}

func (s *secrets) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.set))
	for v := range s.set {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// sniffer is the refresh client's base RoundTripper: it records every token
// value in the refresh requests and in their answers (JSON fields whose
// name mentions a token, and Set-Cookie values), then passes them on.
type sniffer struct {
	base    http.RoundTripper
	secrets *secrets
}

func (f *sniffer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.GetBody != nil {
		if b, err := r.GetBody(); err == nil {
			f.collect(b)
		}
	}
	for _, c := range r.Cookies() {
		f.secrets.add(c.Value)
	}
	resp, err := f.base.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	f.collect(io.NopCloser(bytes.NewReader(body)))
	for _, c := range resp.Cookies() {
		f.secrets.add(c.Value)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// collect records token-like values of a JSON or form body.
func (f *sniffer) collect(rc io.ReadCloser) {
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	var v any
	if json.Unmarshal(b, &v) == nil {
		f.walk("", v)
		return
	}
	if q, err := url.ParseQuery(string(b)); err == nil {
		for k, vs := range q {
			if strings.Contains(strings.ToLower(k), "token") {
				f.secrets.add(vs...)
			}
		}
	}
}

func (f *sniffer) walk(key string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			f.walk(k, e)
		}
	case []any:
		for _, e := range v {
			f.walk(key, e)
		}
	case string:
		if strings.Contains(strings.ToLower(key), "token") {
			f.secrets.add(v)
		}
	}
}

// TestNoTokenInLogsErrorsOrRequestLog runs sessions of both test server
// contracts through successful refreshes, injected failures, retries,
// reuse detection and a revoked session, with every logger at Debug, and
// then looks for every token value that existed in everything printed: the
// log lines (text and JSON), the errors (%v, %+v, %#v), the fmt of the
// library's values, and the test server's request log.
func TestNoTokenInLogsErrorsOrRequestLog(t *testing.T) {
	var (
		logs      safebuf.Buffer
		printedMu sync.Mutex // guards printed
		printed   []string   // errors and values, formatted
		sec       = &secrets{}
	)
	log := slog.New(slog.NewMultiHandler(
		slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
		slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}),
	))
	record := func(vs ...any) {
		printedMu.Lock()
		defer printedMu.Unlock()
		for _, v := range vs {
			printed = append(printed, fmt.Sprintf("%v|%+v|%#v", v, v, v))
		}
	}
	recordErr := func(err error) {
		if err != nil {
			record(err, err.Error())
			for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
				record(e)
			}
		}
	}
	srv := testserver.NewTest(t, testserver.Config{})
	refreshClient := func(jar http.CookieJar) *http.Client {
		base := &http.Transport{}
		t.Cleanup(base.CloseIdleConnections)
		return refresher.NewHTTPClient(refresher.ClientConfig{
			Base: &sniffer{base: base, secrets: sec}, Jar: jar, Logger: log,
			RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
			MaxRetryAfter: time.Second,
		})
	}
	// skew moves the Sources' clock ahead, past a Retry-After.
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	newSource := func(ep refresher.Endpoint, tok *oauth2.Token) *refresher.Source {
		sec.addToken(tok)
		return refresher.NewSource(ep,
			refresher.WithToken(tok),
			refresher.WithClock(clock),
			refresher.WithStore(refresher.NewMemoryStore(nil)),
			refresher.WithLogger(log),
			refresher.WithRefreshHook(func(old, nt *oauth2.Token) {
				sec.addToken(old)
				sec.addToken(nt)
			}),
			refresher.WithFailureHook(func(old *oauth2.Token, err error) {
				sec.addToken(old)
				recordErr(err)
			}),
		)
	}
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	get := func(c *http.Client, path string) (int, error) {
		resp, err := c.Get(srv.URL() + path)
		recordErr(err)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	issue := func() *oauth2.Token {
		tok, err := srv.IssueToken(testserver.DemoUser)
		require.NoError(t, err)
		return tok
	}

	t.Run("contract A", func(t *testing.T) {
		ep := &refresher.OAuth2Endpoint{
			Config: &oauth2.Config{ClientID: testserver.PublicClientID,
				Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams}},
			HTTPClient: refreshClient(nil),
			Logger:     log,
		}
		first := issue()
		src := newSource(ep, first)
		c := transport.NewClient(src, transport.WithBase(base), transport.WithLogger(log))

		// Success, then a reactive refresh with a replay.
		status, err := get(c, testserver.PathMe)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		srv.ExpireAccessTokens()
		status, err = get(c, testserver.PathMe)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)

		// Transient failures: retried once and healed; then too many; then
		// a Retry-After longer than the client waits.
		srv.FailRefreshes(1, http.StatusServiceUnavailable, 0)
		srv.ExpireAccessTokens()
		status, err = get(c, testserver.PathMe)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		srv.FailRefreshes(3, http.StatusServiceUnavailable, 0)
		srv.ExpireAccessTokens()
		_, err = get(c, testserver.PathMe)
		require.Error(t, err)
		srv.FailRefreshes(1, http.StatusTooManyRequests, time.Hour)
		_, err = get(c, testserver.PathMe)
		require.Error(t, err)
		_, err = get(c, testserver.PathMe) // waits for the Retry-After: fails fast
		require.Error(t, err)
		skew.Store(int64(2 * time.Hour))
		srv.FailRefreshes(1, http.StatusBadRequest, 0)
		_, err = get(c, testserver.PathMe)
		require.Error(t, err)
		status, err = get(c, testserver.PathMe)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)

		// Reuse detection: a second holder presents the first, long
		// rotated, refresh token; the family is revoked and both
		// sessions end.
		thief := transport.NewClient(newSource(ep, first), transport.WithBase(base), transport.WithLogger(log))
		srv.ExpireAccessTokens()
		_, err = get(thief, testserver.PathMe)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
		_, err = get(c, testserver.PathMe)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
		_, err = get(c, testserver.PathMe) // fails fast
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
		record(src, c.Transport, ep)

		// A new login, then every session revoked.
		require.NoError(t, src.SetToken(context.Background(), issue()))
		status, err = get(c, testserver.PathMe)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		srv.RevokeAll()
		srv.ExpireAccessTokens()
		_, err = get(c, testserver.PathMe)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
	})

	t.Run("contract B", func(t *testing.T) {
		jar, err := cookiejar.New(nil)
		require.NoError(t, err)
		ep := refresher.SeedEndpoint(srv.URL())
		ep.HTTPClient = refreshClient(jar)
		ep.Logger = log
		first := issue()
		src := newSource(ep, first)
		c := transport.NewClient(src, transport.WithBase(base), transport.WithLogger(log))

		srv.ExpireAccessTokens()
		status, err := get(c, testserver.PathCurrentUser)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, status)
		srv.FailRefreshes(3, http.StatusBadGateway, 0)
		srv.ExpireAccessTokens()
		_, err = get(c, testserver.PathCurrentUser)
		require.Error(t, err)

		// Reuse detection through contract B, with a fresh jar so that the
		// rotated refresh token is the one presented.
		ep2 := refresher.SeedEndpoint(srv.URL())
		ep2.HTTPClient = refreshClient(nil)
		ep2.Logger = log
		thief := transport.NewClient(newSource(ep2, first), transport.WithBase(base), transport.WithLogger(log))
		_, err = get(thief, testserver.PathCurrentUser)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
		_, err = get(c, testserver.PathCurrentUser)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
		record(src, c.Transport, ep)
	})

	stats := srv.Stats()
	require.Positive(t, stats.Rotations, "rotations")
	require.Positive(t, stats.ReuseDetections, "reuse detections")
	require.Positive(t, stats.InjectedFailures, "injected failures")
	record(srv.Requests(), stats)

	out := logs.String()
	for _, want := range []string{"token rejected; refreshing", "replaying", "token refreshed", "refresh failed",
		"retrying request", "reauth_required=true", "level=DEBUG", `"level":"WARN"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the run logged no %q", want)
		}
	}
	all := sec.list()
	require.GreaterOrEqual(t, len(all), 10, "token values seen")
	printedMu.Lock()
	everything := out + "\n" + strings.Join(printed, "\n")
	printedMu.Unlock()
	for _, s := range all {
		if i := strings.Index(everything, s); i >= 0 {
			t.Errorf("token value %.12s… printed: …%s…", s, everything[max(i-200, 0):min(i+len(s)+40, len(everything))])
		}
	}
	t.Logf("%d token values, %d bytes of logs, %d printed values and errors, %d request records: no token found",
		len(all), len(out), len(printed), len(srv.Requests()))
}

// TestFormatNeverPrintsTokens prints the library's values that hold or
// carry a token, and its errors, with every fmt verb. Without their Format
// methods, %s and %q would print the token behind a Source's pointers.
func TestFormatNeverPrintsTokens(t *testing.T) {
	const access, refresh = "access-token-value-0123456789", "refresh-token-value-0123456789"
	tok := &oauth2.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	store := refresher.NewMemoryStore(tok)
	src := refresher.NewSource(noEndpoint(t), refresher.WithToken(tok), refresher.WithStore(store))
	rt := transport.New(src, transport.WithAllowedHosts("api.example.com"))
	_, insecure := transport.NewClient(src, transport.WithBase(&fakeNet{})).Get("http://api.example.com/")
	values := []any{
		src, store, rt, refresher.NewFileStore(t.TempDir() + "/token.json"),
		&refresher.RefreshError{StatusCode: 400, Code: "invalid_grant", Description: "reused", Err: refresher.ErrReauthRequired},
		&refresher.BodyTooLargeError{StatusCode: 200, Limit: 1 << 20},
		refresher.ErrNoToken, insecure,
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
			got := fmt.Sprintf(verb, v)
			for _, secret := range []string{access, refresh, fmt.Sprintf("%x", access), fmt.Sprintf("%x", refresh)} {
				if strings.Contains(strings.ToLower(got), secret) {
					t.Errorf("fmt.Sprintf(%q, %T) = %q: contains a token", verb, v, got)
				}
			}
		}
	}
	assert.Equal(t, "refresher.Source{token: [redacted], expiry: 2030-01-01T00:00:00Z}", fmt.Sprintf("%s", src))
	assert.Equal(t, "refresher.MemoryStore{token: [redacted]}", fmt.Sprintf("%v", store))
}
