// Command retryablehttp shows the Transport under a go-retryablehttp
// client: a 5xx answer is retried by retryablehttp, a 401 is healed by the
// Transport (one refresh, one replay), each exactly once.
//
//	go run ./examples/retryablehttp
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/hashicorp/go-retryablehttp"
	"golang.org/x/oauth2"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "retryablehttp:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	// The test server behind a proxy that answers the next resource
	// request with 503, once.
	ts := testserver.New(testserver.Config{})
	var fail503, served503 atomic.Int64
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == testserver.PathMe && fail503.Add(-1) >= 0 {
			served503.Add(1)
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		ts.Handler().ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	conf := &oauth2.Config{ClientID: testserver.PublicClientID, Endpoint: oauth2.Endpoint{TokenURL: base + testserver.PathToken}}
	tok, err := conf.PasswordCredentialsToken(context.Background(), testserver.DemoUser, testserver.DemoPassword)
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	src := refresher.NewSource(&refresher.OAuth2Endpoint{Config: conf}, refresher.WithToken(tok))

	// retryablehttp outside, our Transport inside: every retry gets a
	// valid token, and a 401 never reaches the retry policy.
	rc := retryablehttp.NewClient()
	rc.HTTPClient = transport.NewClient(src)
	rc.RetryWaitMin, rc.RetryWaitMax = 10*time.Millisecond, 50*time.Millisecond
	rc.Logger = nil
	var attempts atomic.Int64
	rc.RequestLogHook = func(_ retryablehttp.Logger, _ *http.Request, n int) { attempts.Add(1) }

	ts.ExpireAccessTokens() // the token will get a 401
	fail503.Store(1)        // and the first attempt a 503
	resp, err := rc.Get(base + testserver.PathMe)
	if err != nil {
		return err
	}
	resp.Body.Close()
	st := ts.Stats()
	fmt.Fprintf(out, "GET %s → %d after %d attempts (503 served: %d, 401 served: %d)\n",
		testserver.PathMe, resp.StatusCode, attempts.Load(), served503.Load(), st.Unauthorized)
	fmt.Fprintf(out, "summary: status=%d retries=%d refreshes=%d failures=%d\n",
		resp.StatusCode, attempts.Load()-1, st.Rotations, btoi(resp.StatusCode != http.StatusOK))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("got %s", resp.Status)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
