package pgstore_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
)

func init() { helperRoles["accounts"] = helperAccounts }

// TestProcessesServeManyAccountsWithOneRefreshPerExpiry runs 3 processes,
// each serving 1,000 accounts through one http.Client over
// refresher.Sessions, with one pgstore.Store per account in one table of
// one PostgreSQL, against a server that rotates refresh tokens and revokes
// the family on any reuse. Between rounds every access token expires (the
// processes share the server's virtual time); in
// each round every process sends requests for random accounts, so that an
// account may be wanted by several processes at once, or by none. Each
// account touched after an expiry must be refreshed exactly once, by
// whichever process gets there first (see storetest.Accounts). Process 0
// keeps only a quarter of the accounts resident, so that its Sources are
// dropped and opened again from the table as the rounds go.
func TestProcessesServeManyAccountsWithOneRefreshPerExpiry(t *testing.T) {
	pool := newPool(t, nil)
	table := newTable(t, pool)
	a := storetest.Accounts{
		Accounts:  1000,
		Processes: 3,
		Rounds:    3,
		Requests:  500,
		Workers:   16,
		Resident:  250,
		Seed:      uint64(time.Now().UnixNano()),
	}
	srv := a.Server(t)
	t.Logf("seed %d", a.Seed)
	storetest.SeedAccounts(t, srv, a, func(key string) refresher.Store {
		return pgstore.New(pool, key, pgstore.WithTable(table))
	})
	hs := make([]*fleet.Helper, 0, a.Processes)
	for p := range a.Processes {
		hs = append(hs, helperBinary.Start(t, fmt.Sprintf("process %d", p), "accounts",
			a.Env(p), dsnEnv+"="+pgDSN, tableEnv+"="+table))
	}
	storetest.RunAccounts(t, srv, a, hs)
}

// helperAccounts is one process of
// TestProcessesServeManyAccountsWithOneRefreshPerExpiry: a pool of its own,
// small as a replica's would be, and a Store per account in the table
// named by the environment.
func helperAccounts(in *bufio.Scanner, out io.Writer) error {
	cfg, err := pgxpool.ParseConfig(os.Getenv(dsnEnv))
	if err != nil {
		return err
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	table := os.Getenv(tableEnv)
	return storetest.PlayAccounts(in, out, func(key string) refresher.Store {
		return pgstore.New(pool, key, pgstore.WithTable(table))
	})
}
