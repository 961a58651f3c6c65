package redisstore_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/redisstore"
)

func init() { helperRoles["accounts"] = helperAccounts }

// accountsPrefix is the key prefix of the accounts in
// TestProcessesServeManyAccountsThroughRedisWithOneRefreshPerExpiry.
const accountsPrefix = "tokens:"

// TestProcessesServeManyAccountsThroughRedisWithOneRefreshPerExpiry runs 3
// processes, each serving 1,000 accounts through one http.Client over
// refresher.Sessions, with one redisstore.ForAccount Store per account in
// one real Redis, against a server that rotates refresh tokens and revokes
// the family on any reuse. Between rounds every access token expires (the
// processes share the server's virtual time); in each round every process
// sends requests for random accounts, so that an account may be wanted by
// several processes at once, or by none. Each account touched after an
// expiry must be refreshed exactly once, by whichever process gets there
// first (see storetest.Accounts). Process 0 keeps only a quarter of the
// accounts resident, so that its Sources are dropped and opened again from
// Redis as the rounds go.
func TestProcessesServeManyAccountsThroughRedisWithOneRefreshPerExpiry(t *testing.T) {
	addr := startRedisServer(t)
	rc := newClient(t, addr)
	a := storetest.Accounts{
		Accounts:  1000,
		Processes: 3,
		Rounds:    3,
		Requests:  500,
		Workers:   16,
		Resident:  250,
		Seed:      uint64(time.Now().UnixNano()),
	}
	t.Logf("seed %d", a.Seed)
	srv := a.Server(t)
	storetest.SeedAccounts(t, srv, a, func(key string) refresher.Store {
		return redisstore.ForAccount(rc, accountsPrefix, key)
	})
	hs := make([]*fleet.Helper, 0, a.Processes)
	for p := range a.Processes {
		hs = append(hs, helperBinary.Start(t, fmt.Sprintf("process %d", p), "accounts",
			a.Env(p), redisAddrEnv+"="+addr))
	}
	storetest.RunAccounts(t, srv, a, hs)
}

// helperAccounts is one process of
// TestProcessesServeManyAccountsThroughRedisWithOneRefreshPerExpiry: a
// Redis client of its own and a Store per account under accountsPrefix.
func helperAccounts(in *bufio.Scanner, out io.Writer) error {
	rc := redis.NewClient(&redis.Options{Addr: os.Getenv(redisAddrEnv)})
	defer rc.Close()
	return storetest.PlayAccounts(in, out, func(key string) refresher.Store {
		return redisstore.ForAccount(rc, accountsPrefix, key)
	})
}
