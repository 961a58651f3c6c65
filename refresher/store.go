package refresher

import (
	"context"
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

// cloneToken returns a shallow copy of t that shares no mutable state a
// caller could change; extra fields set with WithExtra are kept.
func cloneToken(t *oauth2.Token) *oauth2.Token {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}
