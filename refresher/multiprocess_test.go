package refresher_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

// Shape of TestMultiProcessSharedFileStoreRefreshesOncePerExpiry.
const (
	mpProcesses = 8  // helper processes sharing one token file
	mpExpiries  = 10 // access token expiries, one before each round but the first
	mpWorkers   = 3  // goroutines sending requests in each process
	mpRequests  = 2  // requests per goroutine and round
)

// TestMultiProcessSharedFileStoreRefreshesOncePerExpiry runs separate OS
// processes that share one FileStore against the test server, with
// rotation and reuse detection on (no grace). The parent expires every
// access token between rounds of requests; in each round every process finds
// its token rejected. Across all processes, each expiry must cost exactly one
// refresh: the first process to take the file lock refreshes, the others
// adopt the token it saved.
func TestMultiProcessSharedFileStoreRefreshesOncePerExpiry(t *testing.T) {
	ctx := t.Context()
	srv := testserver.NewTest(t, testserver.Config{
		AccessTTL:  time.Hour, // no proactive refresh: only the expiries below
		ReuseGrace: 0,
		Clock:      testserver.NewClock(time.Now()),
	})
	tok, err := srv.IssueToken(testserver.DemoUser)
	require.NoError(t, err)
	path := tokenPath(t)
	require.NoError(t, refresher.NewFileStore(path).Save(ctx, tok))

	helpers := helperBinary.StartN(t, mpProcesses, "multi-process",
		helperStoreEnv+"="+path, helperURLEnv+"="+srv.URL())

	var requests, failed, clientRefreshes int64
	for round := 0; round <= mpExpiries; round++ {
		before := srv.Stats()
		if round > 0 {
			srv.ExpireAccessTokens()
		}
		var roundRefreshes int64
		for i, line := range fleet.Round(helpers, round) {
			var ok, bad, refreshes int64
			if _, err := fmt.Sscanf(line, "ok=%d failed=%d refreshes=%d", &ok, &bad, &refreshes); err != nil {
				t.Fatalf("process %d: got %q, want the report of round %d (%v)", i, line, round, err)
			}
			requests += ok + bad
			failed += bad
			roundRefreshes += refreshes
		}
		clientRefreshes += roundRefreshes
		after := srv.Stats()
		want := int64(min(round, 1))
		ok := assert.Equal(t, want, after.Refreshes-before.Refreshes, "round %d: refreshes received by the server", round)
		ok = assert.Equal(t, want, roundRefreshes, "round %d: refreshes made by the processes", round) && ok
		if !ok || failed > 0 {
			break // the figures below tell the rest
		}
	}
	fleet.Stop(helpers)

	st := srv.Stats()
	t.Logf("processes=%d expiries=%d requests=%d failed=%d refreshes=%d rotations=%d reuse_detections=%d 401s=%d",
		mpProcesses, mpExpiries, requests, failed, st.Refreshes, st.Rotations, st.ReuseDetections, st.Unauthorized)
	assert.Equal(t, int64(mpProcesses*(mpExpiries+1)*mpWorkers*mpRequests), requests, "requests sent")
	assert.Zero(t, failed, "failed requests")
	assert.Zero(t, st.ReuseDetections, "reuse detections")
	assert.Zero(t, st.RefreshFailures, "failed refreshes")
	assert.Equal(t, int64(mpExpiries), st.Refreshes, "refreshes: want one per expiry, not one per process")
	assert.Equal(t, int64(mpExpiries), st.Rotations, "rotations")
	assert.Equal(t, int64(mpExpiries), clientRefreshes, "refreshes counted by the processes")

	// The file holds the last rotated token, which still works.
	stored, err := refresher.NewFileStore(path).Load(ctx)
	require.NoError(t, err)
	require.NotNil(t, stored)
	assert.NotEqual(t, tok.RefreshToken, stored.RefreshToken, "the stored refresh token was never rotated")
	client, closeIdle := newDemoClient(srv.URL(), refresher.NewFileStore(path))
	defer closeIdle()
	require.NoError(t, storetest.GetMe(ctx, client, srv.URL()))
}

// helperMultiProcess is one process of
// TestMultiProcessSharedFileStoreRefreshesOncePerExpiry. For each line
// "round k" it sends mpWorkers*mpRequests requests, mpWorkers at a time, and
// answers "done k ok=N failed=N refreshes=N", where refreshes counts the
// refreshes this process made during the round. It ends at the end of its
// input.
func helperMultiProcess(in *bufio.Scanner, out io.Writer) error {
	url := os.Getenv(helperURLEnv)
	var refreshes atomic.Int64
	client, closeIdle := newDemoClient(url, refresher.NewFileStore(os.Getenv(helperStoreEnv)),
		refresher.WithRefreshHook(func(_, _ *oauth2.Token) { refreshes.Add(1) }))
	defer closeIdle()

	ctx := context.Background()
	return fleet.Rounds(in, out, func(round int) string {
		var ok, failed atomic.Int64
		var wg sync.WaitGroup
		for range mpWorkers {
			wg.Go(func() {
				for range mpRequests {
					if err := storetest.GetMe(ctx, client, url); err != nil {
						failed.Add(1)
						fmt.Fprintf(os.Stderr, "round %d: %v\n", round, err)
						continue
					}
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		return fmt.Sprintf("ok=%d failed=%d refreshes=%d", ok.Load(), failed.Load(), refreshes.Swap(0))
	})
}

// newDemoClient returns a client of the test server at baseURL as its
// public demo client, with a Source that refreshes through the server's
// token endpoint and keeps its token in st, and a function that closes the
// client's idle connections.
func newDemoClient(baseURL string, st refresher.Store, opts ...refresher.Option) (*http.Client, func()) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	endpoint := &refresher.OAuth2Endpoint{
		Config: &oauth2.Config{
			ClientID: testserver.PublicClientID,
			Endpoint: oauth2.Endpoint{TokenURL: baseURL + testserver.PathToken},
		},
		HTTPClient: refresher.NewHTTPClient(refresher.ClientConfig{Base: base}),
	}
	src := refresher.NewSource(endpoint, append([]refresher.Option{refresher.WithStore(st)}, opts...)...)
	return transport.NewClient(src, transport.WithBase(base)), base.CloseIdleConnections
}
