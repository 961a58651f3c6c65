package pgstore

import (
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/autorefresh/autorefresh/refresher"
)

// Defaults of a [Store].
const (
	// DefaultTable is the name of the table that holds the tokens.
	DefaultTable = "autorefresh_tokens"
	// DefaultPollInterval is the longest wait between two attempts to take
	// a lock that another holder has.
	DefaultPollInterval = 50 * time.Millisecond
)

// Option configures a [Store] and [Migrate].
type Option func(*config)

// config is what the options set.
type config struct {
	table   pgx.Identifier
	maxPoll time.Duration
	keys    *refresher.Keyring
}

func newConfig(opts []Option) config {
	c := config{table: pgx.Identifier{DefaultTable}, maxPoll: DefaultPollInterval}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// WithTable sets the table that holds the tokens (default [DefaultTable]),
// as one name or as a schema and a name: WithTable("auth", "tokens"). The
// name is quoted, so it is used exactly as given, case included. Give
// [Migrate] the same option. Calling it with no name keeps the default.
func WithTable(name ...string) Option {
	return func(c *config) {
		if len(name) > 0 {
			c.table = pgx.Identifier(append([]string(nil), name...))
		}
	}
}

// WithPollInterval sets the longest wait between two attempts to take a
// lock that another holder has (default [DefaultPollInterval]). Waits
// start at a millisecond and double up to it, with jitter. A value of zero
// or less keeps the default.
func WithPollInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.maxPoll = d
		}
	}
}
