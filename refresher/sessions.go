package refresher

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/oauth2"
)

// Sessions holds one [Source] per account key, opened on first use, so
// that one [net/http.Client] serves every account of a service: each
// request names its account with [WithSession], and *Sessions is a
// transport.Source.
//
// Sources stay resident up to a bound ([WithMaxSessions]); the least
// recently used are dropped, never one that is refreshing. Dropping a
// Source loses nothing as long as its token lives in a Store (the Store is
// where a per-account session belongs: pgstore, redisstore.ForAccount, a
// FileStore per account); the next use opens it again from there.
//
// A Sessions is safe for concurrent use by multiple goroutines. Concurrent
// first uses of one key open it once.
type Sessions struct {
	open   func(ctx context.Context, key string) (*Source, error)
	max    int
	onOver func(key string, err error)

	mu      sync.Mutex               // guards the fields below
	byKey   map[string]*list.Element // of *resident
	lru     *list.List               // of *resident, most recently used first
	opening map[string]*opening      // opens in progress
}

// resident is an open Source.
type resident struct {
	key string
	src *Source
}

// opening is one call of the open function, shared by every caller that
// asks for its key meanwhile.
type opening struct {
	done chan struct{} // closed when src and err are set
	src  *Source
	err  error
}

// SessionsOption configures [Sessions].
type SessionsOption func(*Sessions)

// DefaultMaxSessions is how many Sources [Sessions] keeps resident by
// default.
const DefaultMaxSessions = 10000

// WithMaxSessions bounds the resident Sources (default
// [DefaultMaxSessions]); beyond it, the least recently used that is not
// refreshing is dropped. n < 1 means 1.
func WithMaxSessions(n int) SessionsOption {
	return func(s *Sessions) { s.max = max(n, 1) }
}

// WithSessionOver sets a function called when an account's session ends
// (its refresh token was rejected, or it logged out), with the account key
// and the reason: the place to mark the account for re-consent. It is
// called once per ended session, on the refresh's goroutine; a panic in it
// is recovered and logged by the Source.
func WithSessionOver(fn func(key string, err error)) SessionsOption {
	return func(s *Sessions) { s.onOver = fn }
}

// ErrNoSession is returned for a request whose context names no account:
// use [WithSession]. Nothing is sent.
var ErrNoSession = errors.New("refresher: the request names no session; set one with refresher.WithSession")

type sessionKey struct{}

// WithSession returns a copy of ctx naming the account a request acts for.
func WithSession(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, sessionKey{}, key)
}

// SessionFrom returns the account that ctx names, if any.
func SessionFrom(ctx context.Context) (string, bool) {
	key, ok := ctx.Value(sessionKey{}).(string)
	return key, ok
}

// NewSessions returns Sessions that open the Source of an account with
// open, on first use. open is called once per key at a time (again after
// the Source was dropped, or after open failed); it should return a Source
// whose Store is the account's own. It panics if open is nil.
func NewSessions(open func(ctx context.Context, key string) (*Source, error), opts ...SessionsOption) *Sessions {
	if open == nil {
		panic("refresher: NewSessions called with a nil open function")
	}
	s := &Sessions{
		open:    open,
		max:     DefaultMaxSessions,
		byKey:   make(map[string]*list.Element),
		lru:     list.New(),
		opening: make(map[string]*opening),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Token returns a valid access token for the account that ctx names (see
// [Source.Token]); without one it returns [ErrNoSession].
func (s *Sessions) Token(ctx context.Context) (*oauth2.Token, error) {
	src, err := s.fromContext(ctx)
	if err != nil {
		return nil, err
	}
	return src.Token(ctx)
}

// Refresh returns a token newer than stale for the account that ctx names
// (see [Source.Refresh]); without one it returns [ErrNoSession].
func (s *Sessions) Refresh(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	src, err := s.fromContext(ctx)
	if err != nil {
		return nil, err
	}
	return src.Refresh(ctx, stale)
}

// Adopted reports, for the account that ctx names, what [Source.Adopted]
// reports; false when ctx names none or its Source is not resident.
func (s *Sessions) Adopted(ctx context.Context, t *oauth2.Token) bool {
	key, ok := SessionFrom(ctx)
	if !ok {
		return false
	}
	s.mu.Lock()
	el, ok := s.byKey[key]
	s.mu.Unlock()
	return ok && el.Value.(*resident).src.Adopted(ctx, t)
}

func (s *Sessions) fromContext(ctx context.Context) (*Source, error) {
	key, ok := SessionFrom(ctx)
	if !ok {
		return nil, ErrNoSession
	}
	return s.Get(ctx, key)
}

// Get returns the Source of the account key, opening it if it is not
// resident. Waiting for another caller's open honours ctx.
func (s *Sessions) Get(ctx context.Context, key string) (*Source, error) {
	if key == "" {
		return nil, errors.New("refresher: empty session key")
	}
	s.mu.Lock()
	if el, ok := s.byKey[key]; ok {
		s.lru.MoveToFront(el)
		s.mu.Unlock()
		return el.Value.(*resident).src, nil
	}
	o, ok := s.opening[key]
	if !ok {
		o = &opening{done: make(chan struct{})}
		s.opening[key] = o
		go s.openKey(context.WithoutCancel(ctx), key, o)
	}
	s.mu.Unlock()
	select {
	case <-o.done:
		return o.src, o.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// openKey opens key's Source and makes it resident; a panic in open is
// that open's error.
func (s *Sessions) openKey(ctx context.Context, key string, o *opening) {
	defer func() {
		if v := recover(); v != nil {
			o.src, o.err = nil, fmt.Errorf("refresher: open session %q: panic: %v", key, v)
		}
		s.mu.Lock()
		delete(s.opening, key)
		if o.err == nil {
			s.byKey[key] = s.lru.PushFront(&resident{key: key, src: o.src})
			s.evictLocked()
		}
		s.mu.Unlock()
		close(o.done)
	}()
	src, err := s.open(ctx, key)
	switch {
	case err != nil:
		o.err = fmt.Errorf("refresher: open session %q: %w", key, err)
	case src == nil || src.endpoint == nil:
		o.err = fmt.Errorf("refresher: open session %q: the open function returned no Source", key)
	default:
		if s.onOver != nil {
			src.setSessionOver(func(err error) { s.onOver(key, err) })
		}
		o.src = src
	}
}

// evictLocked drops the least recently used Sources beyond the bound,
// skipping any that is refreshing.
func (s *Sessions) evictLocked() {
	for el := s.lru.Back(); el != nil && s.lru.Len() > s.max; {
		prev := el.Prev()
		if r := el.Value.(*resident); !r.src.busy() {
			s.lru.Remove(el)
			delete(s.byKey, r.key)
		}
		el = prev
	}
}

// Len returns how many Sources are resident.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// busy reports whether a refresh is in progress.
func (s *Source) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flight != nil
}

// setSessionOver sets a function told when the session ends.
func (s *Source) setSessionOver(fn func(error)) {
	s.sessionOver.Store(&fn)
}
