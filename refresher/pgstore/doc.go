// Package pgstore keeps the tokens of many accounts in one PostgreSQL table
// and coordinates their refreshes across every process, on every machine,
// that shares the database.
//
// A [Store] is the [refresher.Store] of one account: give one to each
// account's [refresher.Source] with [refresher.WithStore]. It is also a
// [refresher.Locker] and a [refresher.LeaseLocker], whose lock is per
// account, and a [refresher.CompareAndSwapper], so that each refresh is
// lock → reload → (adopt the token another replica saved, or refresh and
// save only if the row still holds the token the refresh started from) →
// unlock, and a rotating refresh token is presented once however many
// replicas share it:
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	...
//	if err := pgstore.Migrate(ctx, pool); err != nil { ... } // once, at start-up
//	store := pgstore.New(pool, "account-42")
//	src := refresher.NewSource(endpoint, refresher.WithStore(store))
//
// # The table
//
// [Migrate] creates the table (by default [DefaultTable]) if it does not
// exist: one row per account key, holding the token's record (the bytes of
// the token's stored form), the [refresher.Fingerprint] of the token, a
// version that every write increments, and the time of the last write. A
// compare-and-swap is one UPDATE whose WHERE clause names the fingerprint
// of the token the refresh started from, so it is atomic however many
// processes write.
//
// With [WithEncryption], the record is sealed with AES-256-GCM under the
// keyring's primary key and bound to the table and the account key; the
// fingerprint stays in the clear, so the compare-and-swap is unchanged. A
// record stored in the clear before encryption was turned on is read, and
// sealed by the next save.
//
// # The lock
//
// The lock of an account is a session-level advisory lock
// (pg_try_advisory_lock) on a 64-bit hash of the table's name and the
// account's key, taken on a connection that the Store acquires from the pool
// and keeps until the lock is released. PostgreSQL releases the lock when
// that connection ends, however it ends: a holder that dies, or whose
// connection is cut, never blocks the others for longer than it takes the
// server to notice (set tcp_keepalives_idle, or idle_session_timeout, to
// bound that for a holder that hangs with its connection open). A holder
// learns that its lock went with its connection from [refresher.Lease]'s
// Confirm, which a Source calls right before it presents a refresh token.
//
// While the lock is held, the Store runs its own statements (Load, Save,
// CompareAndSwap) on the lock's connection, where they commit at once: a
// refresh needs one pool connection, not two, so a pool as small as the
// number of accounts refreshing at once cannot deadlock, and a token saved
// under the lock is durable even if the connection dies before the unlock.
// This is why the lock is a session lock rather than a transaction's: a
// token saved inside the lock's transaction would be lost if that
// transaction could not commit.
//
// Because the lock belongs to a server session, the pool must reach
// PostgreSQL directly or through a pooler in session mode: PgBouncer's
// transaction pooling would hand the lock to whoever gets the server
// connection next.
//
// # Which store to use
//
//   - [refresher.MemoryStore], or no store at all: one process owns the
//     sessions, and losing them when it exits is fine.
//   - [refresher.FileStore]: one account, on one machine, whose token must
//     survive restarts.
//   - redisstore: a few accounts shared by replicas that already run Redis;
//     the lock is a lease with a time to live.
//   - This package: many accounts (one row each) shared by replicas that
//     already run PostgreSQL, where the tokens get the database's
//     durability, backups and access control. The table then holds refresh
//     tokens: protect it as you would the credentials themselves.
package pgstore
