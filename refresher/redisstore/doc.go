// Package redisstore keeps a token in Redis and coordinates its refresh
// across every process, on every machine, that shares it.
//
// A [Store] is a [refresher.Store], a [refresher.CompareAndSwapper] and a
// [refresher.LeaseLocker]: give it to a [refresher.Source] with
// [refresher.WithStore], and each refresh becomes lock → reload → (adopt
// the token another replica stored, or confirm the lease, refresh and save
// if the stored token is still the one the refresh started from) → unlock,
// so that a rotating refresh token is presented once however many replicas
// share it:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	store := redisstore.New(rdb, "tokens:acme:account-42")
//	src := refresher.NewSource(endpoint, refresher.WithStore(store))
//	client := transport.NewClient(src)
//
// The lock is a lease: a key next to the token's, set by a Lua script to a
// random value that names its owner for the lease TTL, released only by
// that owner (a Lua compare-and-delete), and renewed (a Lua
// compare-and-PEXPIRE) by a goroutine while it is held. A holder that dies
// stops renewing, and its lease expires after the lease TTL. Right before
// a refresh token is presented, the Source confirms the lease
// ([refresher.Lease.Confirm]: the same compare-and-PEXPIRE): a holder that
// lost it (paused, or cut off from Redis, for a whole TTL) learns it then,
// with [ErrLeaseLost], and sends nothing. No lease protects a holder paused
// after its last confirmation: ask the server for a reuse grace longer than
// the lease TTL plus a refresh.
//
// # Stored layout
//
// The token's key holds a hash of two fields: "fp", the token's
// [refresher.Fingerprint] (hex SHA-256 of its refresh token), and "rec",
// the token's versioned JSON record (the format of [refresher.FileStore]).
// The fenced save ([Store.CompareAndSwap]) is one Lua script that compares
// "fp" and never reads "rec". Keys written by older versions hold the
// record alone as a string; a Store reads them, and its next save replaces
// them with the hash.
//
// With [WithEncryption], "rec" holds the record sealed with AES-256-GCM
// under the keyring's primary key, bound to the token's key; "fp" stays in
// the clear, so the fenced save still never reads "rec". A record stored
// in the clear before encryption was turned on is read, and sealed by the
// next save.
//
// # Many accounts
//
// [ForAccount] makes the Store of one account under a shared prefix, for
// a [refresher.Sessions] that opens a Source per account: the token of
// account "acme" under prefix "tokens:" is "tokens:{acme}", its lease
// "tokens:{acme}:lock".
//
// # Which store to use
//
//   - [refresher.MemoryStore], or no store at all: one process owns the
//     session, and losing the token when the process exits is fine (the
//     user logs in again).
//   - [refresher.FileStore]: the token must survive restarts, and every
//     process that uses it runs on one machine (command-line tools, cron
//     jobs, several workers on one host). The operating system's advisory
//     file lock coordinates them, with nothing else to run.
//   - This package: processes on several machines share one credential,
//     for example the replicas of a service that holds one connected
//     account's rotating refresh token. A file lock does not span machines;
//     a Redis lease does. Redis then holds the refresh token: protect it as
//     you would the credential itself (ACLs, TLS, no public exposure), and
//     prefer a Redis that persists its data, or a restart of Redis logs the
//     account out.
//
// The lease is as safe as Redis is: with Redis replication, a failover that
// loses the most recent writes can lose a lease (or a token), as with any
// single-instance Redis lock.
package redisstore
