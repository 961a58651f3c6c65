package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/tokenjson"
	"github.com/autorefresh/autorefresh/refresher"
)

var (
	_ refresher.Store  = (*Store)(nil)
	_ refresher.Locker = (*Store)(nil)
)

// Store is a [refresher.Store] that keeps a token as JSON under one Redis
// key, and a [refresher.Locker] whose lock is a lease on a second key (by
// default the token's key followed by ":lock"). See the package
// documentation for how the lease works.
//
// Only the token's AccessToken, TokenType, RefreshToken and Expiry are
// stored; extra fields such as an ID token are not. The token's key has no
// expiry.
//
// A Store is safe for concurrent use by multiple goroutines. Make one with
// [New]; the zero value is not usable.
type Store struct {
	// Set by New, read-only afterwards.
	client     redis.UniversalClient
	key        string
	lockKey    string
	ttl        time.Duration // lease lifetime
	renewEvery time.Duration // time between two renewals of a held lease
	maxPoll    time.Duration // longest wait between two attempts to lease

	sem chan struct{} // holds a value while a caller of Lock holds the lease

	// Test hooks, set before the first Lock: renewal ticks and their
	// outcomes.
	ticks   func(d time.Duration) (c <-chan time.Time, stop func())
	renewed func(err error)
}

// New returns a Store that keeps its token under key in the Redis reached
// through client, which may be a [redis.Client], a [redis.ClusterClient], a
// [redis.Ring] or anything else that implements [redis.UniversalClient]. The
// Store does not close client. New panics if client is nil or key empty.
func New(client redis.UniversalClient, key string, opts ...Option) *Store {
	if client == nil {
		panic("redisstore: New called with a nil client")
	}
	if key == "" {
		panic("redisstore: New called with an empty key")
	}
	s := &Store{
		client:  client,
		key:     key,
		lockKey: key + ":lock",
		ttl:     DefaultLeaseTTL,
		maxPoll: DefaultPollInterval,
		sem:     make(chan struct{}, 1),
		ticks:   realTicks,
	}
	for _, o := range opts {
		o(s)
	}
	if s.renewEvery <= 0 || s.renewEvery >= s.ttl {
		s.renewEvery = s.ttl / 3
	}
	return s
}

func realTicks(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Key returns the key that holds the token.
func (s *Store) Key() string { return s.key }

// LockKey returns the key that holds the lease of [Store.Lock].
func (s *Store) LockKey() string { return s.lockKey }

// Load reads the token. It returns (nil, nil) if the key does not exist, and
// an error that quotes nothing of the value if the value is not a token
// written by a Store.
func (s *Store) Load(ctx context.Context) (*oauth2.Token, error) {
	data, err := s.client.Get(ctx, s.key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: load token from key %q: %w", s.key, err)
	}
	t, why := tokenjson.Decode(data)
	if why != "" {
		return nil, fmt.Errorf("redisstore: the value of key %q is not a token: %s", s.key, why)
	}
	return t, nil
}

// Save replaces the stored token with t. It does not check the lease: the
// Source saves a rotated token even if its lease was lost, since the token
// is then the only one the server still accepts.
func (s *Store) Save(ctx context.Context, t *oauth2.Token) error {
	if t == nil || t.AccessToken == "" {
		return errors.New("redisstore: save token: the token has no access token")
	}
	data, err := tokenjson.Encode(t)
	if err != nil {
		return fmt.Errorf("redisstore: save token: %w", err)
	}
	if err := s.client.Set(ctx, s.key, data, 0).Err(); err != nil {
		return fmt.Errorf("redisstore: save token to key %q: %w", s.key, err)
	}
	return nil
}
