package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/tokenjson"
	"github.com/autorefresh/autorefresh/refresher"
)

var (
	_ refresher.Store             = (*Store)(nil)
	_ refresher.CompareAndSwapper = (*Store)(nil)
	_ refresher.Locker            = (*Store)(nil)
	_ refresher.LeaseLocker       = (*Store)(nil)
)

// Store is the [refresher.Store] of one account: a row, named by the
// account's key, of a table shared by every account (see [Migrate]). It is
// also a [refresher.CompareAndSwapper] and a [refresher.LeaseLocker] whose
// lock is per account; the package documentation says how both work.
//
// Only the token's AccessToken, TokenType, RefreshToken and Expiry are
// stored; extra fields such as an ID token are not.
//
// A Store is safe for concurrent use by multiple goroutines. Several
// Stores, in one process or many, may share a key: they share its token
// and its lock. Make one with [New]; the zero value is not usable.
type Store struct {
	// Set by New, read-only afterwards.
	pool    *pgxpool.Pool
	key     string
	table   string // quoted, possibly schema-qualified
	lockID  int64  // the advisory lock of this table and key
	maxPoll time.Duration
	sql     statements
	keys    *refresher.Keyring // seals the records; nil: kept in the clear

	sem chan struct{} // holds a value while a caller of Lock holds the lock

	mu   sync.Mutex // guards held
	held *lease     // the lock this Store holds, or nil
}

// statements are a Store's SQL, with its table's name in them.
type statements struct {
	load, save, swap, insert, clear string
}

// New returns the Store of the account named key, whose row lives in the
// table of [DefaultTable] (or the one named by [WithTable]), reached
// through pool. The table must exist: see [Migrate]. The Store does not
// close pool. New panics if pool is nil or key empty.
func New(pool *pgxpool.Pool, key string, opts ...Option) *Store {
	if pool == nil {
		panic("pgstore: New called with a nil pool")
	}
	if key == "" {
		panic("pgstore: New called with an empty key")
	}
	c := newConfig(opts)
	table := c.table.Sanitize()
	return &Store{
		pool:    pool,
		key:     key,
		table:   table,
		lockID:  hash64("lock", table, key),
		maxPoll: c.maxPoll,
		keys:    c.keys,
		sem:     make(chan struct{}, 1),
		sql: statements{
			load: `SELECT record FROM ` + table + ` WHERE key = $1`,
			save: `INSERT INTO ` + table + ` AS t (key, record, fingerprint) VALUES ($1, $2, $3)
				ON CONFLICT (key) DO UPDATE SET record = excluded.record,
				fingerprint = excluded.fingerprint, version = t.version + 1, updated_at = now()`,
			swap: `UPDATE ` + table + ` SET record = $2, fingerprint = $3,
				version = version + 1, updated_at = now() WHERE key = $1 AND fingerprint = $4`,
			insert: `INSERT INTO ` + table + ` (key, record, fingerprint) VALUES ($1, $2, $3)
				ON CONFLICT (key) DO NOTHING`,
			clear: `DELETE FROM ` + table + ` WHERE key = $1`,
		},
	}
}

// Migrate creates the table that holds the tokens of every account, named
// [DefaultTable] unless [WithTable] says otherwise, if it does not exist
// yet. It is idempotent, and safe to run from several processes at once:
// each runs it in a transaction that holds an advisory lock. Options other
// than [WithTable] have no effect on it.
func Migrate(ctx context.Context, pool *pgxpool.Pool, opts ...Option) error {
	table := newConfig(opts).table.Sanitize()
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// Two concurrent CREATE TABLE IF NOT EXISTS can both find no
		// table, and one then fails: take turns.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, hash64("migrate", table)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (
			key         text        PRIMARY KEY,
			record      bytea       NOT NULL,
			fingerprint text        NOT NULL,
			version     bigint      NOT NULL DEFAULT 1,
			updated_at  timestamptz NOT NULL DEFAULT now()
		)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: create table %s: %w", table, err)
	}
	return nil
}

// hash64 returns a 64-bit hash of parts, for an advisory lock's key.
func hash64(parts ...string) int64 {
	h := sha256.New()
	for _, p := range parts {
		io.WriteString(h, p)
		h.Write([]byte{0})
	}
	return int64(binary.BigEndian.Uint64(h.Sum(nil)))
}

// Key returns the account key whose token the Store holds.
func (s *Store) Key() string { return s.key }

// Format prints s, whatever the verb, as `pgstore.Store{table: ..., key:
// ...}`: never a token, nor anything of the pool's configuration.
func (s *Store) Format(f fmt.State, _ rune) {
	if s == nil {
		io.WriteString(f, "<nil>")
		return
	}
	fmt.Fprintf(f, "pgstore.Store{table: %s, key: %q}", s.table, s.key)
}

// Load reads the account's token. It returns (nil, nil) if the table has
// no row for the key, and an error that quotes nothing of the row if the
// row does not hold a token written by a Store.
func (s *Store) Load(ctx context.Context) (*oauth2.Token, error) {
	var rec []byte
	err := s.run(ctx, func(q querier) error {
		return q.QueryRow(ctx, s.sql.load, s.key).Scan(&rec)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pgstore: load token of key %q: %w", s.key, err)
	}
	return s.decodeRecord(rec)
}

// Save replaces the account's token with t, creating the row if there is
// none. It does not check the lock: a Source saves a rotated token even if
// it lost the lock, since the token is then the only one the server still
// accepts. A refresh saves with [Store.CompareAndSwap] instead.
func (s *Store) Save(ctx context.Context, t *oauth2.Token) error {
	rec, err := s.encodeRecord(t)
	if err != nil {
		return fmt.Errorf("pgstore: save token: %w", err)
	}
	err = s.run(ctx, func(q querier) error {
		_, err := q.Exec(ctx, s.sql.save, s.key, rec, refresher.Fingerprint(t))
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: save token of key %q: %w", s.key, err)
	}
	return nil
}

// CompareAndSwap replaces the account's token with next only if the row
// holds a token with the same [refresher.Fingerprint] as prev, or, if prev
// is nil, creates the row with next only if there is none. It reports
// whether it wrote the row. The check and the write are one statement, so
// they are atomic with respect to every other writer, in every process.
func (s *Store) CompareAndSwap(ctx context.Context, prev, next *oauth2.Token) (bool, error) {
	rec, err := s.encodeRecord(next)
	if err != nil {
		return false, fmt.Errorf("pgstore: save token: %w", err)
	}
	var tag pgconn.CommandTag
	err = s.run(ctx, func(q querier) error {
		var err error
		if prev == nil {
			tag, err = q.Exec(ctx, s.sql.insert, s.key, rec, refresher.Fingerprint(next))
		} else {
			tag, err = q.Exec(ctx, s.sql.swap, s.key, rec, refresher.Fingerprint(next), refresher.Fingerprint(prev))
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("pgstore: save token of key %q: %w", s.key, err)
	}
	return tag.RowsAffected() == 1, nil
}

// encodeRecord returns the bytes stored for t, sealed if the Store
// encrypts. It is the one place that decides what a row's record holds.
func (s *Store) encodeRecord(t *oauth2.Token) ([]byte, error) {
	rec, err := tokenjson.Encode(t)
	if err != nil {
		return nil, err
	}
	return s.seal(rec)
}

// decodeRecord returns the token that rec, written by encodeRecord or in
// the clear before encryption was turned on, holds. Its error quotes
// nothing of rec.
func (s *Store) decodeRecord(rec []byte) (*oauth2.Token, error) {
	rec, err := s.open(rec)
	if err != nil {
		return nil, err
	}
	t, why := tokenjson.Decode(rec)
	if why != "" {
		return nil, fmt.Errorf("pgstore: the row of key %q does not hold a token: %s", s.key, why)
	}
	return t, nil
}

// querier is what a Store's statements run on: the pool, or the connection
// that holds the Store's lock.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// run runs fn on the connection of the lock this Store holds, if it holds
// one that is still open, and on the pool otherwise. If the lock's
// connection ends under fn, fn runs again on the pool: a statement that
// was cut off either did not commit, or committed and then finds the row
// as it left it (a compare-and-swap then reports no swap).
func (s *Store) run(ctx context.Context, fn func(q querier) error) error {
	s.mu.Lock()
	l := s.held
	s.mu.Unlock()
	if l != nil {
		if done, err := l.run(ctx, fn); done {
			return err
		}
	}
	return fn(s.pool)
}

// Clear deletes the account's row, for [refresher.Source.Logout]; under
// the account's lock it runs on the lock's connection.
func (s *Store) Clear(ctx context.Context) error {
	err := s.run(ctx, func(q querier) error {
		_, err := q.Exec(ctx, s.sql.clear, s.key)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: clear token of key %q: %w", s.key, err)
	}
	return nil
}
