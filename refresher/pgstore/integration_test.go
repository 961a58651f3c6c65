package pgstore_test

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

// TestReplicasShareEachAccountsRefreshThroughPostgres runs replicas, each
// with a pool of its own and one Source and client per account, that share
// the accounts' tokens through one table, against a server that rotates
// refresh tokens and revokes the family on any reuse. The parent expires
// every access token between rounds; in each round every replica sends a
// request for every account at once. Each expiry must cost exactly one
// refresh per account, whichever replica makes it.
func TestReplicasShareEachAccountsRefreshThroughPostgres(t *testing.T) {
	const (
		replicas = 3
		accounts = 10
		expiries = 4
	)
	ctx := t.Context()
	srv := testserver.NewTest(t, testserver.Config{AccessTTL: time.Hour, ReuseGrace: 0})
	admin := newPool(t, nil)
	table := newTable(t, admin)
	for a := range accounts {
		tok, err := srv.IssueToken(testserver.DemoUser)
		require.NoError(t, err)
		require.NoError(t, pgstore.New(admin, accountKey(a), pgstore.WithTable(table)).Save(ctx, tok))
	}

	var refreshes atomic.Int64
	clients := make([][]*http.Client, replicas)
	for r := range replicas {
		// A small pool: a refresh needs one connection, whatever the
		// number of accounts refreshing at once.
		pool := newPool(t, func(c *pgxpool.Config) { c.MaxConns = 2 })
		base := http.DefaultTransport.(*http.Transport).Clone()
		t.Cleanup(base.CloseIdleConnections)
		for a := range accounts {
			endpoint := &refresher.OAuth2Endpoint{
				Config: &oauth2.Config{
					ClientID: testserver.PublicClientID,
					Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken},
				},
				HTTPClient: &http.Client{Transport: base},
			}
			src := refresher.NewSource(endpoint,
				refresher.WithStore(pgstore.New(pool, accountKey(a), pgstore.WithTable(table))),
				refresher.WithRefreshHook(func(_, _ *oauth2.Token) { refreshes.Add(1) }))
			clients[r] = append(clients[r], transport.NewClient(src, transport.WithBase(base)))
		}
	}

	var failed atomic.Int64
	for round := 0; round <= expiries; round++ {
		before := srv.Stats().Refreshes
		if round > 0 {
			srv.ExpireAccessTokens()
		}
		var wg sync.WaitGroup
		for r := range replicas {
			for a := range accounts {
				wg.Go(func() {
					if err := storetest.GetMe(ctx, clients[r][a], srv.URL()); err != nil {
						failed.Add(1)
						t.Errorf("round %d, replica %d, account %d: %v", round, r, a, err)
					}
				})
			}
		}
		wg.Wait()
		want := int64(min(round, 1) * accounts)
		if !assert.Equal(t, want, srv.Stats().Refreshes-before, "round %d: refreshes received by the server", round) {
			break
		}
	}

	st := srv.Stats()
	t.Logf("replicas=%d accounts=%d expiries=%d failed=%d refreshes=%d rotations=%d reuse_detections=%d",
		replicas, accounts, expiries, failed.Load(), st.Refreshes, st.Rotations, st.ReuseDetections)
	assert.Zero(t, failed.Load(), "failed requests")
	assert.Zero(t, st.ReuseDetections, "reuse detections")
	assert.Equal(t, int64(accounts*expiries), st.Refreshes, "refreshes: want one per account and expiry")
	assert.Equal(t, int64(accounts*expiries), refreshes.Load(), "refreshes made by the replicas")
}

func accountKey(a int) string { return fmt.Sprintf("account-%d", a) }
