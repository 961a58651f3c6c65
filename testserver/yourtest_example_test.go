package testserver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

// TestYourClient is what a test of one's own client against the bundled
// server looks like (the README's quick start for the test server): an
// Example cannot take a *testing.T, which NewTest needs to close the
// server when the test ends.
func TestYourClient(t *testing.T) {
	srv := testserver.NewTest(t, testserver.Config{AccessTTL: time.Minute}) // closed when the test ends
	tok, err := srv.IssueToken(testserver.DemoUser)                         // or log in through the API
	if err != nil {
		t.Fatal(err)
	}
	client := transport.NewClient(refresher.NewSource(refresher.ExpressEndpoint(srv.URL()), refresher.WithToken(tok)))
	t.Cleanup(client.CloseIdleConnections)

	srv.ExpireAccessTokens()               // the next request gets a 401
	srv.FailRefreshes(1, 503, time.Second) // and its first refresh call a 503 with Retry-After: 1
	resp, err := client.Get(srv.URL() + testserver.PathExpressCurrentUser)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	st := srv.Stats()
	if resp.StatusCode != http.StatusOK || st.Unauthorized != 1 || st.InjectedFailures != 1 || st.Rotations != 1 {
		t.Errorf("status %d, stats %+v: want 200 after one 401, one refused refresh call and one rotation", resp.StatusCode, st)
	}
}
