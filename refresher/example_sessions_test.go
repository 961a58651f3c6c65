package refresher_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

// One client serves every account: each request names its account, and
// Sessions opens the account's Source, over the account's own Store, on
// first use.
func ExampleNewSessions() {
	srv := testserver.New(testserver.Config{Users: map[string]string{"alice": "pw", "bob": "pw"}})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Close()
	endpoint := &refresher.OAuth2Endpoint{Config: &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken},
	}}
	// Each account's token lives in a Store of its own (here in memory;
	// pgstore or redisstore.ForAccount in a service), saved when the
	// account was connected.
	stores := map[string]*refresher.MemoryStore{}
	for _, user := range []string{"alice", "bob"} {
		tok, _ := srv.IssueToken(user)
		stores[user] = refresher.NewMemoryStore(tok)
	}

	sessions := refresher.NewSessions(func(ctx context.Context, account string) (*refresher.Source, error) {
		return refresher.NewSource(endpoint, refresher.WithStore(stores[account])), nil
	})
	client := transport.NewClient(sessions)
	defer client.CloseIdleConnections()

	srv.ExpireAccessTokens() // every account refreshes on its next request
	for _, account := range []string{"alice", "bob"} {
		ctx := refresher.WithSession(context.Background(), account)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+testserver.PathMe, nil)
		resp, err := client.Do(req)
		if err != nil {
			fmt.Println(err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(account, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	_, err := client.Get(srv.URL() + testserver.PathMe) // names no account
	fmt.Println("without a session:", errors.Is(err, refresher.ErrNoSession))
	fmt.Println("refreshes:", srv.Stats().Rotations)
	// Output:
	// alice 200 {"user":"alice"}
	// bob 200 {"user":"bob"}
	// without a session: true
	// refreshes: 2
}

// The quick start of the README's "Many accounts": the accounts' tokens
// live in one PostgreSQL table, a row each, shared by every replica.
func ExampleNewSessions_postgres() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil || pgstore.Migrate(ctx, pool) != nil {
		return
	}
	endpoint := &refresher.OAuth2Endpoint{Config: &oauth2.Config{ /* your client */ }}
	req, _ := http.NewRequest(http.MethodGet, "https://api.example.com/v1/invoices", nil)

	sessions := refresher.NewSessions(func(ctx context.Context, account string) (*refresher.Source, error) {
		return refresher.NewSource(endpoint, refresher.WithStore(pgstore.New(pool, account))), nil
	})
	client := transport.NewClient(sessions) // one client for every account
	resp, err := client.Do(req.WithContext(refresher.WithSession(ctx, "customer-42")))

	if err == nil {
		resp.Body.Close()
	}
}
