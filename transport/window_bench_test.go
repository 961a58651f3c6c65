package transport_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"golang.org/x/oauth2"
)

// windowScenario is one way of sending the requests of
// BenchmarkRequestsThroughARefreshWindow.
type windowScenario struct {
	name string
	due  bool // the Source's token is due: the first request starts its refresh
	opts []refresher.Option
}

var windowScenarios = []windowScenario{
	{"steady", false, nil},
	{"blocking", true, []refresher.Option{refresher.WithBlockingRefresh()}},
	{"background", true, nil},
}

// Load of one window: a request every windowInterval, sent on its own
// goroutine whether or not the previous ones were answered (an open loop,
// so that requests held up by a refresh do not hold up the others).
const (
	windowRequests = 300
	windowInterval = time.Millisecond
	windowRefresh  = 100 * time.Millisecond // the token endpoint's delay
)

// BenchmarkRequestsThroughARefreshWindow measures the latency of requests
// to the test server on loopback while their token is refreshed by a token
// endpoint that takes 100 ms. Each iteration runs three windows of 300
// requests, one per scenario, in rotating order: steady (the token is not
// due: no refresh), blocking (the token is due, refresher.WithBlockingRefresh:
// the requests sent during the refresh wait for it) and background (the
// token is due, the default: one refresh runs in the background). It
// reports the p50 and p99 latency of each scenario over all its requests,
// and background's p99 over steady's. BENCHMARKS.md explains the figures.
//
//	go test -run '^$' -bench RequestsThroughARefreshWindow -benchtime 10x -count 5 ./transport/
func BenchmarkRequestsThroughARefreshWindow(b *testing.B) {
	srv := testserver.NewTest(b, testserver.Config{AccessTTL: time.Hour})
	srv.DelayRefreshes(windowRefresh)
	base := newLoopbackTransport(b, 2*windowRequests)
	ep := &refresher.OAuth2Endpoint{Config: &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}}
	url := srv.URL() + testserver.PathMe

	lat := make([][]time.Duration, len(windowScenarios))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for k := range windowScenarios {
			j := (i + k) % len(windowScenarios)
			sc := windowScenarios[j]
			tok, err := srv.IssueToken(testserver.DemoUser)
			if err != nil {
				b.Fatal(err)
			}
			if sc.due {
				// As if received 48 s ago with a 60 s lifetime: due (its
				// refresh point is 30 s to 15 s before expiry), and valid.
				tok.ExpiresIn = 60
				tok.Expiry = time.Now().Add(12 * time.Second)
			}
			src := refresher.NewSource(ep, append([]refresher.Option{refresher.WithToken(tok)}, sc.opts...)...)
			rt := transport.New(src, transport.WithBase(base))
			before := srv.Stats().Refreshes
			lat[j] = append(lat[j], window(b, rt, url)...)
			if got, want := srv.Stats().Refreshes-before, map[bool]int64{false: 0, true: 1}[sc.due]; got != want {
				b.Fatalf("%s: %d refreshes in the window, want %d", sc.name, got, want)
			}
		}
	}
	b.StopTimer()
	p := func(d []time.Duration, q float64) float64 {
		slices.Sort(d)
		return float64(d[min(int(q*float64(len(d))), len(d)-1)].Microseconds()) / 1000
	}
	for j, sc := range windowScenarios {
		b.ReportMetric(p(lat[j], 0.50), sc.name+"-p50-ms")
		b.ReportMetric(p(lat[j], 0.99), sc.name+"-p99-ms")
	}
	b.ReportMetric(p(lat[2], 0.99)/p(lat[0], 0.99), "background/steady-p99")
}

// window sends windowRequests GETs to url through rt, one every
// windowInterval, and returns their latencies.
func window(b *testing.B, rt http.RoundTripper, url string) []time.Duration {
	lat := make([]time.Duration, windowRequests)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range windowRequests {
		time.Sleep(time.Until(start.Add(time.Duration(i) * windowInterval))) // pacing, not synchronisation
		wg.Go(func() {
			req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
			if err != nil {
				b.Error(err)
				return
			}
			t0 := time.Now()
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat[i] = time.Since(t0)
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	return lat
}
