package pgstore_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/refresher/pgstore"
)

// dsnEnv names an existing PostgreSQL for the tests to use instead of
// starting one; they create their tables in it and drop them at the end.
const dsnEnv = "PGSTORE_DSN"

// The test binary re-executes itself as helper processes: when helperEnv
// names a role, TestMain plays it instead of running the tests, talking to
// the parent test line by line over stdin and stdout, and exits.
const (
	helperEnv = "PGSTORE_TEST_HELPER"
	tableEnv  = "PGSTORE_TEST_TABLE"
	keyEnv    = "PGSTORE_TEST_KEY"
)

// helperRoles are the roles a helper process can play, by name.
var helperRoles = map[string]fleet.Role{
	"hold-lock": helperHoldLock,
}

// helperBinary starts helper processes, which TestMain diverts to their
// role.
var helperBinary = fleet.Binary{RoleEnv: helperEnv}

// The PostgreSQL of this test run: its DSN, or why there is none.
var (
	pgDSN         string
	pgUnavailable string
)

func TestMain(m *testing.M) {
	fleet.Serve(helperEnv, helperRoles) // exits if this process is a helper

	stop := func() {}
	if pgDSN = os.Getenv(dsnEnv); pgDSN == "" {
		var s func()
		pgDSN, s, pgUnavailable = startPostgres()
		if s != nil {
			stop = s
		}
	}
	code := m.Run()
	// The server and the goroutine that waits for it end before the leak
	// check.
	stop()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// requirePostgres returns the DSN of the test run's PostgreSQL. Without
// one, it skips the test, or fails it when the environment variable CI is
// "true": there the tests must run.
func requirePostgres(t testing.TB) string {
	t.Helper()
	if pgUnavailable != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and no PostgreSQL to test against: %s", pgUnavailable)
		}
		t.Skipf("skipping the tests against a real PostgreSQL: %s", pgUnavailable)
	}
	return pgDSN
}

// newPool returns a pool of connections to the test run's PostgreSQL,
// closed at the end of the test. configure, if not nil, adjusts its
// configuration first.
func newPool(t testing.TB, configure func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(requirePostgres(t))
	if err != nil {
		t.Fatal(err)
	}
	if configure != nil {
		configure(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newTable creates a table of its own for the test, dropped at the end of
// it, and returns its name: the test's, with a random suffix, and with a
// capital and a quote that only a quoted identifier keeps.
func newTable(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	name := fmt.Sprintf(`Tokens "%s" %s`, strings.ToLower(rand.Text()[:8]), t.Name())
	if len(name) > 63 { // PostgreSQL's longest identifier
		name = name[:63]
	}
	if err := pgstore.Migrate(t.Context(), pool, pgstore.WithTable(name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+pgx.Identifier{name}.Sanitize())
	})
	return name
}
