package transport_test

// Benchmarks of the Transport against what users would otherwise pick, run
// in one process against loopback servers. BENCHMARKS.md at the repository
// root explains how to run them and what the figures mean.
//
//	go test -run '^$' -bench . -benchmem ./transport/

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"golang.org/x/oauth2"
)

// benchAccess is an access token of the size of a typical JWT.
var benchAccess = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + strings.Repeat("x", 180) + "." + strings.Repeat("s", 43)

// benchPayload is the body of the POST cases.
var benchPayload = bytes.Repeat([]byte("0123456789abcdef"), 4096/16)

// benchImpl builds one of the compared RoundTrippers around base. Each
// attaches tok, which is valid for an hour; none may need a refresh.
type benchImpl struct {
	name string
	wrap func(b *testing.B, base http.RoundTripper, tok *oauth2.Token) http.RoundTripper
}

var benchImpls = []benchImpl{
	{"bare", func(_ *testing.B, base http.RoundTripper, tok *oauth2.Token) http.RoundTripper {
		return &staticAuth{base: base, value: tok.Type() + " " + tok.AccessToken}
	}},
	{"oauth2", func(b *testing.B, base http.RoundTripper, tok *oauth2.Token) http.RoundTripper {
		return &oauth2.Transport{Base: base, Source: oauth2.ReuseTokenSource(tok, failingTokenSource{b})}
	}},
	{"autorefresh", func(b *testing.B, base http.RoundTripper, tok *oauth2.Token) http.RoundTripper {
		src := refresher.NewSource(refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
			b.Error("unexpected refresh")
			return nil, errors.New("unexpected refresh")
		}), refresher.WithToken(tok))
		return transport.New(src, transport.WithBase(base))
	}},
}

// staticAuth is the hand-written floor: clone the request, set a fixed
// Authorization header, send.
type staticAuth struct {
	base  http.RoundTripper
	value string
}

func (s *staticAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", s.value)
	return s.base.RoundTrip(r)
}

// failingTokenSource fails the benchmark if oauth2 ever asks it for a token.
type failingTokenSource struct{ b *testing.B }

func (s failingTokenSource) Token() (*oauth2.Token, error) {
	s.b.Error("unexpected refresh")
	return nil, errors.New("unexpected refresh")
}

func benchToken() *oauth2.Token {
	return &oauth2.Token{AccessToken: benchAccess, TokenType: "Bearer", RefreshToken: "unused", Expiry: time.Now().Add(time.Hour)}
}

// newLoopbackTransport returns an http.Transport that dials the loopback
// servers directly, without a proxy, and keeps up to idle connections per
// host between requests; they are closed at the end of b.
func newLoopbackTransport(b *testing.B, idle int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns = 0
	t.MaxIdleConnsPerHost = idle
	b.Cleanup(t.CloseIdleConnections)
	return t
}

// BenchmarkTransport sends GET and 4 KiB POST requests to a loopback server
// through the three RoundTrippers, one request at a time, over a kept-alive
// connection. The server accepts only benchAccess.
func BenchmarkTransport(b *testing.B) {
	want := "Bearer " + benchAccess
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != want {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if n, _ := io.Copy(io.Discard, r.Body); n != r.ContentLength && r.ContentLength >= 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	b.Cleanup(srv.Close)

	cases := []struct {
		name   string
		method string
		body   []byte
	}{
		{"GET", http.MethodGet, nil},
		{"POST4KiB", http.MethodPost, benchPayload},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for _, impl := range benchImpls {
				b.Run(impl.name, func(b *testing.B) {
					rt := impl.wrap(b, newLoopbackTransport(b, 2), benchToken())
					ctx := b.Context()
					b.ReportAllocs()
					for b.Loop() {
						var body io.Reader
						if c.body != nil {
							body = bytes.NewReader(c.body)
						}
						req, err := http.NewRequestWithContext(ctx, c.method, srv.URL+"/api/me", body)
						if err != nil {
							b.Fatal(err)
						}
						resp, err := rt.RoundTrip(req)
						if err != nil {
							b.Fatal(err)
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Fatalf("got status %d, want 200", resp.StatusCode)
						}
					}
				})
			}
		})
	}
}

// cannedRoundTripper answers every request carrying the expected
// Authorization header with one shared, read-only 200 response, without
// any network: what remains is the cost of the wrapper around it.
type cannedRoundTripper struct {
	want string
	resp *http.Response
}

var errWrongAuth = errors.New("wrong Authorization header")

func (c *cannedRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		r.Body.Close()
	}
	if r.Header.Get("Authorization") != c.want {
		return nil, errWrongAuth
	}
	return c.resp, nil
}

// BenchmarkRoundTripOverhead measures the wrappers alone over a base that
// answers at once: the network of BenchmarkTransport costs tens of
// microseconds and hides differences of a few nanoseconds. The request is
// built once; a RoundTripper must not modify it. The -parallel cases call
// RoundTrip from GOMAXPROCS goroutines at once, where a lock on the fast
// path would show. The URLs are https, as a token travels in practice (the
// base answers without dialling): a plain-http URL would add the loopback
// check that lets a token go over http to this machine only.
func BenchmarkRoundTripOverhead(b *testing.B) {
	base := &cannedRoundTripper{
		want: "Bearer " + benchAccess,
		resp: &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody},
	}
	get, err := http.NewRequest(http.MethodGet, "https://api.example.com/api/me", nil)
	if err != nil {
		b.Fatal(err)
	}
	post, err := http.NewRequest(http.MethodPost, "https://api.example.com/api/echo", bytes.NewReader(benchPayload))
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name     string
		req      *http.Request
		parallel bool
	}{
		{"GET", get, false},
		{"POST4KiB", post, false},
		{"GET-parallel", get, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for _, impl := range benchImpls {
				b.Run(impl.name, func(b *testing.B) {
					rt := impl.wrap(b, base, benchToken())
					b.ReportAllocs()
					if c.parallel {
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if _, err := rt.RoundTrip(c.req); err != nil {
									b.Error(err)
									return
								}
							}
						})
						return
					}
					for b.Loop() {
						if _, err := rt.RoundTrip(c.req); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// refreshFunc performs the RFC 6749 refresh_token grant with refreshToken,
// as hand-written code does with golang.org/x/oauth2.
type refreshFunc func(ctx context.Context, refreshToken string) (*oauth2.Token, error)

// stormClient builds a client of one kind that holds tok.
type stormClient struct {
	name string
	new  func(base http.RoundTripper, e *stormEndpoint, tok *oauth2.Token) http.RoundTripper
}

// stormEndpoint is the test server's token endpoint, seen by each kind of
// client: an [refresher.OAuth2Endpoint] for ours, a refreshFunc for the
// hand-written ones. Both send one refresh_token grant per call.
type stormEndpoint struct {
	ours  refresher.Endpoint
	naive refreshFunc
}

var stormClients = []stormClient{
	{"autorefresh", func(base http.RoundTripper, e *stormEndpoint, tok *oauth2.Token) http.RoundTripper {
		return transport.New(refresher.NewSource(e.ours, refresher.WithToken(tok)), transport.WithBase(base))
	}},
	{"naive-mutex", func(base http.RoundTripper, e *stormEndpoint, tok *oauth2.Token) http.RoundTripper {
		return &naiveMutex{base: base, refresh: e.naive, tok: tok}
	}},
	{"naive-nolock", func(base http.RoundTripper, e *stormEndpoint, tok *oauth2.Token) http.RoundTripper {
		t := &naiveNoLock{base: base, refresh: e.naive}
		t.tok.Store(tok)
		return t
	}},
}

// naiveMutex is the usual hand-written fix for concurrent refreshes: every
// 401 refreshes under a mutex, with the latest refresh token, and replays.
// It does not check whether another request refreshed while it waited for
// the mutex, so each waiter refreshes again in turn.
type naiveMutex struct {
	base    http.RoundTripper
	refresh refreshFunc

	mu  sync.Mutex // guards tok
	tok *oauth2.Token
}

func (t *naiveMutex) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	tok := t.tok
	t.mu.Unlock()
	resp, err := t.base.RoundTrip(withBearer(req, tok))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	discard(resp)

	t.mu.Lock()
	nt, err := t.refresh(req.Context(), t.tok.RefreshToken)
	if err == nil {
		t.tok = nt
	}
	t.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return t.base.RoundTrip(withBearer(req, nt))
}

// naiveNoLock refreshes on every 401 without any coordination, with the
// latest refresh token it knows of, and replays.
type naiveNoLock struct {
	base    http.RoundTripper
	refresh refreshFunc
	tok     atomic.Pointer[oauth2.Token]
}

func (t *naiveNoLock) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(withBearer(req, t.tok.Load()))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	discard(resp)

	nt, err := t.refresh(req.Context(), t.tok.Load().RefreshToken)
	if err != nil {
		return nil, err
	}
	t.tok.Store(nt)
	return t.base.RoundTrip(withBearer(req, nt))
}

// withBearer returns a copy of a body-less req that carries tok.
func withBearer(req *http.Request, tok *oauth2.Token) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return r
}

func discard(resp *http.Response) {
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// BenchmarkRefreshStorm measures a refresh storm against the bundled test
// server on loopback, whose token endpoint answers as fast as it can: N
// goroutines share one client whose access token the server has just
// expired, and send one GET each at the same moment. Each of b.N storms
// starts from a new token family. Reported per storm:
//
//   - ns/op: the storm's wall time, from the start signal to the last answer;
//   - refreshes/storm: refresh requests received by the token endpoint;
//   - reuse-detections/storm: rotated refresh tokens presented again, each of
//     which made the server revoke the family (the user is logged out);
//   - failed-requests/storm: requests that did not end with a 200;
//   - x-single: the storm's wall time over that of one goroutine doing the
//     same (one request, its 401, one refresh, one replay) with the same
//     kind of client, measured before each storm;
//   - x-traffic: the storm's wall time over the sum of that single one and
//     of the same N goroutines sending two requests each with a valid
//     token: the storm's work (N requests, one refresh, N replays) done
//     without a storm. Near 1 or below, the storm costs no more than its
//     traffic; on a small machine, the traffic of a large storm is most of
//     its time.
func BenchmarkRefreshStorm(b *testing.B) {
	benchStorms(b, 0, []int{10, 100, 1000})
}

// BenchmarkRefreshStormSlowEndpoint is BenchmarkRefreshStorm with a token
// endpoint that takes 10 ms to answer, as a real one does (a database
// round trip, a signature, a network hop), while the resources answer at
// loopback speed. (A thousand goroutines are left out: the naive mutex
// would take ten seconds a storm.)
func BenchmarkRefreshStormSlowEndpoint(b *testing.B) {
	benchStorms(b, 10*time.Millisecond, []int{10, 100})
}

func benchStorms(b *testing.B, refreshDelay time.Duration, sizes []int) {
	for _, sc := range stormClients {
		b.Run(sc.name, func(b *testing.B) {
			for _, n := range sizes {
				b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
					b.StopTimer()
					benchStorm(b, sc, n, refreshDelay)
				})
			}
		})
	}
}

// benchStorm runs b.N storms of n goroutines with clients of kind sc. Each
// run has a server of its own, so that its request log (bounded, but
// costlier to append to once full) starts empty.
func benchStorm(b *testing.B, sc stormClient, n int, refreshDelay time.Duration) {
	srv := testserver.NewTest(b, testserver.Config{ReuseGrace: 0})
	srv.DelayRefreshes(refreshDelay)
	base := newLoopbackTransport(b, n)
	cfg := &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}
	grantCtx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	e := &stormEndpoint{
		ours: &refresher.OAuth2Endpoint{Config: cfg, HTTPClient: &http.Client{Transport: base}},
		naive: func(ctx context.Context, rt string) (*oauth2.Token, error) {
			return cfg.TokenSource(grantCtx, &oauth2.Token{RefreshToken: rt}).Token()
		},
	}
	url := srv.URL() + testserver.PathMe

	var storm, single, fanout time.Duration
	var refreshes, reuses, failed int64
	for range b.N {
		tokSingle, err1 := srv.IssueToken(testserver.DemoUser)
		tokStorm, err2 := srv.IssueToken(testserver.DemoUser)
		if err := errors.Join(err1, err2); err != nil {
			b.Fatal(err)
		}
		srv.ExpireAccessTokens()

		one := &http.Client{Transport: sc.new(base, e, tokSingle)}
		d, f := fanOut(b, 1, 1, one, url, false)
		if f != 0 {
			b.Fatalf("%s: the single refresh failed", sc.name)
		}
		single += d
		// one now holds a valid token; this also opens the n connections
		// that the storm will find idle.
		d, f = fanOut(b, n, 2, one, url, false)
		if f != 0 {
			b.Fatalf("%s: %d requests with a valid token failed", sc.name, f)
		}
		fanout += d

		c := &http.Client{Transport: sc.new(base, e, tokStorm)}
		before := srv.Stats()
		d, f = fanOut(b, n, 1, c, url, true)
		after := srv.Stats()
		storm += d
		failed += f
		refreshes += after.Refreshes - before.Refreshes
		reuses += after.ReuseDetections - before.ReuseDetections
	}
	storms := float64(b.N)
	b.ReportMetric(float64(refreshes)/storms, "refreshes/storm")
	b.ReportMetric(float64(reuses)/storms, "reuse-detections/storm")
	b.ReportMetric(float64(failed)/storms, "failed-requests/storm")
	b.ReportMetric(storm.Seconds()/single.Seconds(), "x-single")
	b.ReportMetric(storm.Seconds()/(single+fanout).Seconds(), "x-traffic")
}

// fanOut starts n goroutines that each send reqs GETs to url through c, one
// after the other, releases them at once and waits for all of them. It
// returns the wall time from the release to the last answer and how many
// goroutines did not get a 200 to every request. With timed, the benchmark
// timer runs during that interval only.
func fanOut(b *testing.B, n, reqs int, c *http.Client, url string, timed bool) (time.Duration, int64) {
	var ready, done sync.WaitGroup
	var failed atomic.Int64
	start := make(chan struct{})
	ready.Add(n)
	for range n {
		done.Go(func() {
			ready.Done()
			<-start
			for range reqs {
				if !getOK(b.Context(), c, url) {
					failed.Add(1)
					return
				}
			}
		})
	}
	ready.Wait()
	if timed {
		b.StartTimer()
	}
	t0 := time.Now()
	close(start)
	done.Wait()
	d := time.Since(t0)
	if timed {
		b.StopTimer()
	}
	return d, failed.Load()
}

// getOK sends one GET and reports whether it was answered with 200.
func getOK(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	discard(resp)
	return resp.StatusCode == http.StatusOK
}
