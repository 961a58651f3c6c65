// Command frontend behaves like a single-page app talking to a Node.js/Express
// backend (the Express API of the bundled test server): it logs in
// with a username and a password, keeps its tokens the way a browser does
// (httpOnly cookies in a cookie jar) or as bearer tokens, and works through
// a scripted session while its access tokens expire, including bursts of
// concurrent calls right after an expiry. It prints a timeline of every
// request, 401, refresh and replay, then a summary line, and exits non-zero
// if any request failed.
//
// With no flags it starts the bundled test server in-process:
//
//	go run ./examples/frontend
//	go run ./examples/frontend -mode bearer
//
// or talks to a running server whose access tokens are short-lived:
//
//	go run ./testserver/cmd/testserver -addr 127.0.0.1:8080 -access-ttl 2s
//	go run ./examples/frontend -server http://127.0.0.1:8080
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"golang.org/x/oauth2"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config is what the flags set.
type config struct {
	server, mode, user, password string
	ttl                          time.Duration
	rounds, burst                int
	insecureHTTP                 bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("frontend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.server, "server", "", "base URL of a running test server (default: start one in-process)")
	fs.StringVar(&cfg.mode, "mode", "cookie", `how tokens are kept: "cookie" (httpOnly cookies in a jar, like a browser) or "bearer"`)
	fs.StringVar(&cfg.user, "user", testserver.DemoUser, "username")
	fs.StringVar(&cfg.password, "password", testserver.DemoPassword, "password")
	fs.DurationVar(&cfg.ttl, "ttl", 2*time.Second, "access token lifetime of the in-process server")
	fs.IntVar(&cfg.rounds, "rounds", 2, "how many access token expiries to live through")
	fs.IntVar(&cfg.burst, "burst", 20, "concurrent calls in the burst after each expiry")
	fs.BoolVar(&cfg.insecureHTTP, "insecure-http", false, "allow tokens over plain http to a server that is not on loopback")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.mode != "cookie" && cfg.mode != "bearer" {
		fmt.Fprintf(stderr, "frontend: -mode must be cookie or bearer, not %q\n", cfg.mode)
		return 2
	}
	if cfg.rounds < 1 || cfg.burst < 1 {
		fmt.Fprintln(stderr, "frontend: -rounds and -burst must be at least 1")
		return 2
	}
	if cfg.server == "" {
		srv := testserver.New(testserver.Config{AccessTTL: cfg.ttl})
		if err := srv.Start("127.0.0.1:0"); err != nil {
			fmt.Fprintf(stderr, "frontend: start the test server: %v\n", err)
			return 1
		}
		defer srv.Close()
		cfg.server = srv.URL()
		fmt.Fprintf(stdout, "frontend: in-process test server at %s (access tokens live %s)\n", cfg.server, cfg.ttl)
	}
	a, err := newApp(cfg, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "frontend: %v\n", err)
		return 1
	}
	if err := a.session(ctx); err != nil {
		fmt.Fprintf(stderr, "frontend: %v\n", err)
		a.summary()
		return 1
	}
	if a.summary() {
		return 0
	}
	return 1
}

// app is the single-page app: one http.Client for everything, whose
// Transport keeps the session alive.
type app struct {
	cfg    config
	client *http.Client
	src    *refresher.Source
	api    *refresher.JSONEndpoint // the Express API's refresh call; parses login answers too
	jar    http.CookieJar          // cookie mode only
	out    *timeline

	requests, unauthorized, replays, failures atomic.Int64
	refreshCalls, refused, logins, expiries   atomic.Int64
	expiry                                    atomic.Int64 // of the latest access token, Unix nanoseconds
	burstRefreshes                            []int64      // refresh calls made during each burst
}

func newApp(cfg config, stdout io.Writer) (*app, error) {
	a := &app{cfg: cfg, out: &timeline{w: stdout, start: time.Now()}}
	a.api = refresher.ExpressEndpoint(cfg.server)
	if cfg.mode == "cookie" {
		jar, err := cookiejar.New(nil)
		if err != nil {
			return nil, err
		}
		// The jar is named once: the refresh call sends the refresh token
		// cookie from it and stores the new cookies in it, and the client
		// built below carries the session in it (transport.NewClient
		// reads it from the Source and sets client.Jar).
		a.jar, a.api.Jar = jar, jar
	}
	a.src = refresher.NewSource(&endpoint{JSONEndpoint: a.api, app: a}, refresher.WithLogin(a.login))
	var topts []transport.Option
	if cfg.insecureHTTP {
		topts = append(topts, transport.WithInsecureHTTP())
	}
	topts = append(topts, transport.WithBase(&tracer{app: a, base: http.DefaultTransport}))
	a.client = transport.NewClient(a.src, topts...)
	return a, nil
}

// endpoint is the app's refresh endpoint: the Express API's, counted and
// printed. The embedded JSONEndpoint's CookieJar method tells the
// Transport which jar holds the session.
type endpoint struct {
	*refresher.JSONEndpoint
	app *app
}

// Refresh asks the Express API for a new token pair.
func (e *endpoint) Refresh(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
	a := e.app
	a.refreshCalls.Add(1)
	tok, err := e.JSONEndpoint.Refresh(ctx, cur)
	if err != nil {
		if errors.Is(err, refresher.ErrReauthRequired) {
			a.refused.Add(1)
		}
		a.out.printf("refresh", "failed: %v", err)
		return nil, err
	}
	a.out.printf("refresh", "new token pair (refresh token rotated)")
	return a.browserView(tok), nil
}

// browserView hides the expiry in cookie mode: a browser cannot read its
// httpOnly cookies, so the app learns of an expiry from the 401. In bearer
// mode the expiry (the JWT's exp) lets the token be refreshed before it
// expires.
func (a *app) browserView(tok *oauth2.Token) *oauth2.Token {
	a.expiry.Store(tok.Expiry.UnixNano())
	if a.jar != nil {
		tok.Expiry = time.Time{}
	}
	return tok
}

// login posts the credentials, as the app's login page does. It is the
// Source's login callback: it runs at start and when the session is over.
func (a *app) login(ctx context.Context) (*oauth2.Token, error) {
	if a.logins.Load() > 0 {
		a.out.printf("session", "over (refresh token revoked): back to the login page")
	}
	body, _ := json.Marshal(map[string]string{"username": a.cfg.user, "password": a.cfg.password})
	// The login request runs on the context of the call that found the
	// session over; it is not that call.
	ctx = context.WithValue(ctx, callKey{}, int64(0))
	req, err := http.NewRequestWithContext(transport.SkipAuth(ctx), http.MethodPost,
		a.cfg.server+testserver.PathExpressLogin, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, err
	}
	tok, err := a.api.ParseResponse(resp)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	a.logins.Add(1)
	a.out.printf("login", "%s logged in (%s mode)", a.cfg.user, a.cfg.mode)
	return a.browserView(tok), nil
}

// session is the scripted work of a user.
func (a *app) session(ctx context.Context) error {
	if _, err := a.src.Token(ctx); err != nil { // logs in
		return err
	}
	for round := 1; round <= a.cfg.rounds; round++ {
		for i := range 3 {
			a.call(ctx, http.MethodGet, testserver.PathExpressCurrentUser, "")
			a.call(ctx, http.MethodPost, testserver.PathEcho, fmt.Sprintf(`{"note":%d}`, i))
		}
		if round == a.cfg.rounds {
			// The session ends elsewhere (logout on another device,
			// an administrator): the app must log in again.
			if err := a.revoke(ctx); err != nil {
				return err
			}
		}
		if err := a.waitForExpiry(ctx); err != nil {
			return err
		}
		a.expiries.Add(1)
		before := a.refreshCalls.Load()
		a.out.printf("burst", "%d concurrent calls right after the access token expired", a.cfg.burst)
		var wg sync.WaitGroup
		for i := range a.cfg.burst {
			wg.Go(func() { a.call(ctx, http.MethodPut, testserver.PathEcho, strings.Repeat("b", i)) })
		}
		wg.Wait()
		n := a.refreshCalls.Load() - before
		a.burstRefreshes = append(a.burstRefreshes, n)
		a.out.printf("burst", "done: %d calls, %d refresh call", a.cfg.burst, n)
	}
	return nil
}

// call sends one request and records its outcome.
func (a *app) call(ctx context.Context, method, path, body string) {
	id := a.requests.Add(1)
	req, err := http.NewRequestWithContext(context.WithValue(ctx, callKey{}, id), method, a.cfg.server+path, strings.NewReader(body))
	if err != nil {
		a.fail(id, method, path, err)
		return
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.fail(id, method, path, err)
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		a.fail(id, method, path, errors.New(resp.Status))
	}
}

func (a *app) fail(id int64, method, path string, err error) {
	a.failures.Add(1)
	a.out.printf(fmt.Sprintf("#%d", id), "%s %s FAILED: %v", method, path, err)
}

// revoke logs the session out from another client, which revokes the
// refresh token family on the server.
func (a *app) revoke(ctx context.Context) error {
	tok, err := a.src.Token(ctx)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]string{"refreshToken": tok.RefreshToken})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.server+testserver.PathExpressLogout, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	a.out.printf("elsewhere", "the session was logged out on another device (%s)", resp.Status)
	return nil
}

// waitForExpiry waits, like an idle user, until the latest access token has
// expired (its JWT exp, as the refresher read it).
func (a *app) waitForExpiry(ctx context.Context) error {
	exp := time.Unix(0, a.expiry.Load())
	if exp.Unix() <= 0 {
		return errors.New("the server's access tokens carry no expiry")
	}
	wait := time.Until(exp) + 1100*time.Millisecond // exp has one-second precision
	if wait > time.Minute {
		return fmt.Errorf("the server's access tokens live %s: start it with -access-ttl 2s", wait.Round(time.Second))
	}
	a.out.printf("idle", "waiting %s for the access token to expire", wait.Round(10*time.Millisecond))
	select {
	case <-time.After(wait):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// summary prints the closing line and reports whether the run succeeded.
func (a *app) summary() bool {
	perBurst := make([]string, len(a.burstRefreshes))
	ok := a.failures.Load() == 0 && a.expiries.Load() >= 1
	for i, n := range a.burstRefreshes {
		perBurst[i] = fmt.Sprint(n)
		ok = ok && n == 1
	}
	fmt.Fprintf(a.out.w, "summary: mode=%s requests=%d 401s=%d refresh-calls=%d refused=%d replays=%d logins=%d expiries=%d refreshes-per-burst=%s failures=%d\n",
		a.cfg.mode, a.requests.Load(), a.unauthorized.Load(), a.refreshCalls.Load(), a.refused.Load(), a.replays.Load(),
		a.logins.Load(), a.expiries.Load(), strings.Join(perBurst, ","), a.failures.Load())
	return ok
}

type callKey struct{}

// tracer sits under the Transport and prints every attempt it sends: the
// first one of a call, and the replay after a 401.
type tracer struct {
	app  *app
	base http.RoundTripper

	mu       sync.Mutex // guards attempts
	attempts map[int64]int
}

func (t *tracer) RoundTrip(req *http.Request) (*http.Response, error) {
	id, _ := req.Context().Value(callKey{}).(int64)
	if id == 0 { // login, not a scripted call
		return t.base.RoundTrip(req)
	}
	t.mu.Lock()
	if t.attempts == nil {
		t.attempts = map[int64]int{}
	}
	t.attempts[id]++
	replay := t.attempts[id] > 1
	t.mu.Unlock()

	what := fmt.Sprintf("%s %s", req.Method, req.URL.Path)
	if replay {
		t.app.replays.Add(1)
		what += " (replay)"
	}
	resp, err := t.base.RoundTrip(req)
	switch {
	case err != nil:
		t.app.out.printf(fmt.Sprintf("#%d", id), "%s → %v", what, err)
	case resp.StatusCode == http.StatusUnauthorized:
		t.app.unauthorized.Add(1)
		t.app.out.printf(fmt.Sprintf("#%d", id), "%s → 401: access token expired", what)
	default:
		t.app.out.printf(fmt.Sprintf("#%d", id), "%s → %d", what, resp.StatusCode)
	}
	return resp, err
}

// timeline prints timestamped lines, one at a time.
type timeline struct {
	mu    sync.Mutex // guards w
	w     io.Writer
	start time.Time
}

func (t *timeline) printf(who, format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "%7.3fs  %-10s %s\n", time.Since(t.start).Seconds(), who, fmt.Sprintf(format, args...))
}
