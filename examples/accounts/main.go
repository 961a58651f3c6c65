// Command accounts shows one http.Client serving many accounts, as an
// integration service does that keeps one connected account per customer
// for an API whose refresh tokens rotate. Each request names its account
// with refresher.WithSession; refresher.Sessions opens the account's
// Source from its Store on first use and keeps a bounded number resident.
//
// It starts the bundled test server in-process, connects every account (a
// token per customer, saved to the store, as a consent callback would), then
// works through rounds: the server expires every access token, and every
// account is asked who it is, in random order, several at a time. Each
// account must be refreshed once per round and answer as its own customer.
// Fewer Sources stay resident than there are accounts, so Sources are
// dropped and opened again from the store as it goes.
//
// With no flags the tokens live in memory:
//
//	go run ./examples/accounts
//
// or in PostgreSQL, one row per account (the table is created if needed):
//
//	go run ./examples/accounts -postgres postgres://user@localhost/db
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config is what the flags set.
type config struct {
	postgres, table                     string
	accounts, resident, rounds, workers int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("accounts", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.postgres, "postgres", "", "DSN of a PostgreSQL to keep the tokens in (default: in memory)")
	fs.StringVar(&cfg.table, "table", "autorefresh_example_tokens", "PostgreSQL table of the tokens, created if needed")
	fs.IntVar(&cfg.accounts, "accounts", 200, "connected accounts")
	fs.IntVar(&cfg.resident, "resident", 50, "Sources kept resident at most (refresher.WithMaxSessions)")
	fs.IntVar(&cfg.rounds, "rounds", 3, "access token expiries to live through")
	fs.IntVar(&cfg.workers, "workers", 16, "requests in flight at once")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.accounts < 1 || cfg.resident < 1 || cfg.rounds < 1 || cfg.workers < 1 {
		fmt.Fprintln(stderr, "accounts: -accounts, -resident, -rounds and -workers must be at least 1")
		return 2
	}
	if err := serve(ctx, cfg, stdout); err != nil {
		fmt.Fprintln(stderr, "accounts:", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg config, out io.Writer) error {
	// The API: one user per customer.
	users := make(map[string]string, cfg.accounts)
	keys := make([]string, cfg.accounts)
	for i := range keys {
		keys[i] = fmt.Sprintf("customer-%04d", i)
		users[keys[i]] = "password"
	}
	srv := testserver.New(testserver.Config{Users: users})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer srv.Close()

	// The store: one Store per account, in memory or in PostgreSQL.
	storeName, storeFor, closeStore, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeStore()
	fmt.Fprintf(out, "accounts: %d accounts, tokens in %s, test server at %s\n", cfg.accounts, storeName, srv.URL())

	// Connecting an account: a consent callback would get its first token.
	for _, key := range keys {
		tok, err := srv.IssueToken(key)
		if err != nil {
			return err
		}
		if err := storeFor(key).Save(ctx, tok); err != nil {
			return fmt.Errorf("save the token of %s: %w", key, err)
		}
	}

	// One client for every account.
	endpoint := &refresher.OAuth2Endpoint{Config: &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}}
	var opened, refreshes atomic.Int64
	sessions := refresher.NewSessions(func(ctx context.Context, key string) (*refresher.Source, error) {
		opened.Add(1)
		return refresher.NewSource(endpoint,
			refresher.WithStore(storeFor(key)),
			refresher.WithRefreshHook(func(_, _ *oauth2.Token) { refreshes.Add(1) })), nil
	},
		refresher.WithMaxSessions(cfg.resident),
		refresher.WithSessionOver(func(key string, err error) {
			fmt.Fprintf(out, "accounts: %s must connect again: %v\n", key, err)
		}))
	client := transport.NewClient(sessions)
	defer client.CloseIdleConnections()

	var requests, failures atomic.Int64
	for round := range cfg.rounds + 1 {
		if round > 0 {
			srv.ExpireAccessTokens()
		}
		before := refreshes.Load()
		queue := make(chan string)
		var wg sync.WaitGroup
		for range cfg.workers {
			wg.Go(func() {
				for key := range queue {
					requests.Add(1)
					if err := whoAmI(refresher.WithSession(ctx, key), client, srv.URL(), key); err != nil {
						failures.Add(1)
						fmt.Fprintf(out, "accounts: round %d, %s: %v\n", round, key, err)
					}
				}
			})
		}
		for _, i := range rand.Perm(len(keys)) {
			queue <- keys[i]
		}
		close(queue)
		wg.Wait()
		fmt.Fprintf(out, "round %d: %d accounts asked, %d refreshed, %d Sources resident\n",
			round, len(keys), refreshes.Load()-before, sessions.Len())
	}

	st := srv.Stats()
	fmt.Fprintf(out, "summary: store=%s accounts=%d resident=%d rounds=%d requests=%d refreshes=%d opened=%d reuse-detections=%d failures=%d\n",
		storeName, cfg.accounts, cfg.resident, cfg.rounds, requests.Load(), refreshes.Load(), opened.Load(), st.ReuseDetections, failures.Load())
	if n := failures.Load(); n > 0 {
		return fmt.Errorf("%d requests failed", n)
	}
	if want := int64(cfg.accounts * cfg.rounds); refreshes.Load() != want || st.Refreshes != want {
		return fmt.Errorf("%d refreshes (the server received %d), want one per account and round: %d", refreshes.Load(), st.Refreshes, want)
	}
	return nil
}

// openStore returns the name of the store, the function that gives the
// Store of an account, and the function that closes the store.
func openStore(ctx context.Context, cfg config) (string, func(key string) refresher.Store, func(), error) {
	if cfg.postgres == "" {
		// In memory: the map stands in for the database. A Source that
		// Sessions drops is opened again from its account's MemoryStore.
		var mu sync.Mutex
		stores := make(map[string]*refresher.MemoryStore)
		return "memory", func(key string) refresher.Store {
			mu.Lock()
			defer mu.Unlock()
			if stores[key] == nil {
				stores[key] = refresher.NewMemoryStore(nil)
			}
			return stores[key]
		}, func() {}, nil
	}
	pool, err := pgxpool.New(ctx, cfg.postgres)
	if err != nil {
		return "", nil, nil, err
	}
	if err := pgstore.Migrate(ctx, pool, pgstore.WithTable(cfg.table)); err != nil {
		pool.Close()
		return "", nil, nil, err
	}
	return "postgres", func(key string) refresher.Store {
		return pgstore.New(pool, key, pgstore.WithTable(cfg.table))
	}, pool.Close, nil
}

// whoAmI asks the API, as the account that ctx names, who it is, and checks
// that the answer is that account's customer.
func whoAmI(ctx context.Context, client *http.Client, baseURL, want string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+testserver.PathMe, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", testserver.PathMe, resp.Status)
	}
	var me struct{ User string }
	if err := json.NewDecoder(resp.Body).Decode(&me); err != nil {
		return err
	}
	if me.User != want {
		return fmt.Errorf("the API answered as %q", me.User)
	}
	return nil
}
