package refresher

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"

	"golang.org/x/oauth2"
)

// Store persists the current token, so that a rotated refresh token survives
// the process. The Source saves every new token before any request uses it.
//
// Load returns (nil, nil) when the store holds no token yet. Implementations
// must be safe for concurrent use by multiple goroutines and must not keep a
// reference to, or modify, the token passed to Save.
type Store interface {
	Load(ctx context.Context) (*oauth2.Token, error)
	Save(ctx context.Context, t *oauth2.Token) error
}

// Locker is implemented by a [Store] that can be shared by several processes
// (or machines). When a Source's Store is a Locker, a refresh runs as
// lock → reload → (adopt the stored token if another holder already
// refreshed, else refresh and save) → unlock, so that a rotating refresh
// token is presented once however many processes share it.
//
// Lock blocks until the lock is held or ctx is done, and returns the function
// that releases it.
type Locker interface {
	Lock(ctx context.Context) (unlock func() error, err error)
}

// CompareAndSwapper is implemented by a [Store] that can replace a token
// only if it still holds the token a refresh started from: a fenced save.
//
// CompareAndSwap saves next only if the Store holds a token with the same
// [Fingerprint] as prev (prev nil: only if the Store holds no token), and
// reports whether it saved. It must check and write atomically with respect
// to every other holder of the Store, in every process.
//
// A Source whose Store implements it never overwrites a token that another
// holder saved while it refreshed: on a conflict it adopts the stored token.
// A Store without it is saved to unconditionally.
type CompareAndSwapper interface {
	CompareAndSwap(ctx context.Context, prev, next *oauth2.Token) (swapped bool, err error)
}

// Fingerprint identifies a token pair for [CompareAndSwapper]: the
// hex-encoded SHA-256 of its refresh token, or of its access token when it has
// no refresh token; "" for nil. It reveals nothing usable of either token, so
// a Store may keep it in the clear next to an encrypted record.
func Fingerprint(t *oauth2.Token) string {
	if t == nil {
		return ""
	}
	v := t.RefreshToken
	if v == "" {
		v = "access:" + t.AccessToken
	}
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// ErrLeaseLost reports that a [Lease] lapsed: it expired, or its holder's
// connection ended, and another holder may have taken the lock. A refresh
// whose lease is lost is aborted before the refresh token is presented.
var ErrLeaseLost = errors.New("refresher: the store's lock was lost")

// Lease is a lock held on a shared [Store] that can lapse while it is held
// (a lease with a time to live, a lock tied to a connection).
type Lease interface {
	// Confirm reports whether the lease is still held, and extends it if
	// it is a lease with a time to live. It returns an error wrapping
	// [ErrLeaseLost] when the lease is no longer held.
	Confirm(ctx context.Context) error
	// Unlock releases the lease. Calling it more than once has no further
	// effect.
	Unlock() error
}

// LeaseLocker is implemented by a [Locker] whose lock can lapse. A Source
// prefers it to Lock: right before the refresh token is presented (before
// each attempt to write the refresh request), it confirms the lease, and a
// lost lease aborts the refresh before anything is sent.
type LeaseLocker interface {
	LockLease(ctx context.Context) (Lease, error)
}

// MemoryStore is a [Store] that keeps the token in memory. Its zero value is
// an empty store ready to use.
type MemoryStore struct {
	mu  sync.Mutex // guards tok
	tok *oauth2.Token
}

// NewMemoryStore returns a MemoryStore holding t (which may be nil).
func NewMemoryStore(t *oauth2.Token) *MemoryStore {
	return &MemoryStore{tok: cloneToken(t)}
}

// Load returns a copy of the stored token, or nil if there is none.
func (m *MemoryStore) Load(context.Context) (*oauth2.Token, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneToken(m.tok), nil
}

// Save stores a copy of t.
func (m *MemoryStore) Save(_ context.Context, t *oauth2.Token) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tok = cloneToken(t)
	return nil
}

// CompareAndSwap stores a copy of next if the store holds prev (by
// [Fingerprint]; prev nil: if it holds no token).
func (m *MemoryStore) CompareAndSwap(_ context.Context, prev, next *oauth2.Token) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if Fingerprint(m.tok) != Fingerprint(prev) {
		return false, nil
	}
	m.tok = cloneToken(next)
	return true, nil
}

// cloneToken returns a shallow copy of t that shares no mutable state a
// caller could change; extra fields set with WithExtra are kept.
func cloneToken(t *oauth2.Token) *oauth2.Token {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// Clear deletes the stored token.
func (m *MemoryStore) Clear(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tok = nil
	return nil
}
