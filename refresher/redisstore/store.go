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
	_ refresher.Store             = (*Store)(nil)
	_ refresher.Locker            = (*Store)(nil)
	_ refresher.LeaseLocker       = (*Store)(nil)
	_ refresher.CompareAndSwapper = (*Store)(nil)
)

// Store is a [refresher.Store] that keeps a token under one Redis key; a
// [refresher.CompareAndSwapper] whose fenced save is one Lua script; and a
// [refresher.LeaseLocker] whose lock is a lease on a second key (by default
// the token's key followed by ":lock"). See the package documentation for
// how the lease works and how the token is stored.
//
// Only the token's AccessToken, TokenType, RefreshToken and Expiry are
// stored; extra fields such as an ID token are not. The token's key has no
// expiry.
//
// A Store is safe for concurrent use by multiple goroutines. Make one with
// [New] or [ForAccount]; the zero value is not usable.
type Store struct {
	// Set by New, read-only afterwards.
	client     redis.UniversalClient
	key        string
	lockKey    string
	ttl        time.Duration // lease lifetime
	renewEvery time.Duration // time between two renewals of a held lease
	maxPoll    time.Duration // longest wait between two attempts to lease

	keys *refresher.Keyring // seals the record; nil: kept in the clear

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

// ForAccount returns the Store of one account among many that share a key
// prefix, such as the accounts of a [refresher.Sessions]:
//
//	token key: prefix + "{" + account + "}"
//	lease key: prefix + "{" + account + "}:lock"
//
// so that "tokens:" and "acme" give "tokens:{acme}" and
// "tokens:{acme}:lock". No two accounts share a key, whatever their
// characters: a token key ends with "}" and a lease key with ":lock". The
// braces are a Redis Cluster hash tag, which keeps an account's two keys in
// one slot. The prefix may be empty. ForAccount panics if client is nil or
// account is empty; opts apply as with [New].
func ForAccount(client redis.UniversalClient, prefix, account string, opts ...Option) *Store {
	if account == "" {
		panic("redisstore: ForAccount called with an empty account")
	}
	return New(client, AccountKey(prefix, account), opts...)
}

// AccountKey returns the key under which [ForAccount] keeps the token of
// account: prefix + "{" + account + "}".
func AccountKey(prefix, account string) string {
	return prefix + "{" + account + "}"
}

func realTicks(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Key returns the key that holds the token.
func (s *Store) Key() string { return s.key }

// LockKey returns the key that holds the lease of [Store.Lock].
func (s *Store) LockKey() string { return s.lockKey }

// The token's key holds a hash with two fields: fieldFP, the token's
// [refresher.Fingerprint], and fieldRec, the token's record in the
// versioned JSON of package tokenjson. The fingerprint lets a script
// compare tokens without reading the record, which may be encrypted one
// day. A Store also reads the older layout, a string holding the record
// alone, and replaces it with a hash at the next save.
const (
	fieldFP  = "fp"
	fieldRec = "rec"
)

// loadScript returns {kind, value} for the token key KEYS[1]: {"hash",
// record} for the current layout, {"string", record} for the older one and
// {"none", ""} if the key does not exist.
var loadScript = redis.NewScript(`
local t = redis.call("TYPE", KEYS[1])["ok"]
if t == "hash" then
	return {"hash", redis.call("HGET", KEYS[1], "rec") or ""}
elseif t == "string" then
	return {"string", redis.call("GET", KEYS[1])}
elseif t == "none" then
	return {"none", ""}
end
return redis.error_reply("WRONGTYPE the key holds a " .. t .. ", not a token")
`)

// saveScript replaces whatever the token key KEYS[1] holds with the hash
// {fp = ARGV[1], rec = ARGV[2]}.
var saveScript = redis.NewScript(`
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], "fp", ARGV[1], "rec", ARGV[2])
return 1
`)

// Outcomes of casScript.
const (
	casMismatch = 0 // the key holds another token: nothing written
	casSwapped  = 1 // written
	casLegacy   = 2 // the key holds the older layout: the caller must compare
)

// casScript replaces the token under KEYS[1] with the hash {fp = ARGV[2],
// rec = ARGV[3]} (or deletes it if ARGV[2] is "") if the key holds the
// token whose fingerprint is ARGV[1] ("" meaning: no token). A value in the
// older layout has no fingerprint to compare: unless it is exactly ARGV[4],
// a value the caller has fingerprinted already, the script returns it with
// casLegacy and writes nothing.
var casScript = redis.NewScript(`
local t = redis.call("TYPE", KEYS[1])["ok"]
local cur
if t == "none" then
	cur = ""
elseif t == "hash" then
	cur = redis.call("HGET", KEYS[1], "fp")
	if not cur or cur == "" then
		return redis.error_reply("ERR the token's hash has no fingerprint")
	end
elseif t == "string" then
	local v = redis.call("GET", KEYS[1])
	if ARGV[4] == "" or v ~= ARGV[4] then
		return {2, v}
	end
	cur = ARGV[1]
else
	return redis.error_reply("WRONGTYPE the key holds a " .. t .. ", not a token")
end
if cur ~= ARGV[1] then
	return {0, ""}
end
redis.call("DEL", KEYS[1])
if ARGV[2] ~= "" then
	redis.call("HSET", KEYS[1], "fp", ARGV[2], "rec", ARGV[3])
end
return {1, ""}
`)

// Load reads the token, in either layout. It returns (nil, nil) if the key
// does not exist, and an error that quotes nothing of the value if the value
// is not a token written by a Store.
func (s *Store) Load(ctx context.Context) (*oauth2.Token, error) {
	res, err := loadScript.Run(ctx, s.client, []string{s.key}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: load token from key %q: %w", s.key, err)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("redisstore: load token from key %q: unexpected reply of %d values", s.key, len(res))
	}
	if res[0] == "none" {
		return nil, nil
	}
	return s.decode(res[1])
}

// decode parses a record read from the token's key, sealed or not.
func (s *Store) decode(rec string) (*oauth2.Token, error) {
	data, err := s.open([]byte(rec))
	if err != nil {
		return nil, err
	}
	t, why := tokenjson.Decode(data)
	if why != "" {
		return nil, fmt.Errorf("redisstore: the value of key %q is not a token: %s", s.key, why)
	}
	return t, nil
}

// encode returns the fingerprint and record of t, sealed if the Store
// encrypts.
func (s *Store) encode(t *oauth2.Token) (fp string, rec []byte, err error) {
	if t == nil || t.AccessToken == "" {
		return "", nil, errors.New("the token has no access token")
	}
	rec, err = tokenjson.Encode(t)
	if err != nil {
		return "", nil, err
	}
	if rec, err = s.seal(rec); err != nil {
		return "", nil, err
	}
	return refresher.Fingerprint(t), rec, nil
}

// Save replaces the stored token with t, unconditionally. It does not check
// the lease.
func (s *Store) Save(ctx context.Context, t *oauth2.Token) error {
	fp, rec, err := s.encode(t)
	if err != nil {
		return fmt.Errorf("redisstore: save token: %w", err)
	}
	if err := saveScript.Run(ctx, s.client, []string{s.key}, fp, rec).Err(); err != nil {
		return fmt.Errorf("redisstore: save token to key %q: %w", s.key, err)
	}
	return nil
}

// maxLegacyRounds bounds the round trips of a CompareAndSwap on a value in
// the older layout that other writers keep changing.
const maxLegacyRounds = 4

// CompareAndSwap saves next if the key holds a token with the
// [refresher.Fingerprint] of prev (prev nil: if the key does not exist),
// and reports whether it saved; next nil deletes the key. The comparison
// and the write are one Lua script, atomic with respect to every other
// client of the Redis, and compare the stored fingerprints, not the
// records.
//
// A value in the older layout (a string) is compared once in Go and
// replaced only if it has not changed since: one more round trip, once per
// key.
func (s *Store) CompareAndSwap(ctx context.Context, prev, next *oauth2.Token) (bool, error) {
	var nextFP string
	var rec []byte
	if next != nil {
		var err error
		if nextFP, rec, err = s.encode(next); err != nil {
			return false, fmt.Errorf("redisstore: save token: %w", err)
		}
	}
	prevFP := refresher.Fingerprint(prev)
	legacy := ""
	for range maxLegacyRounds {
		res, err := casScript.Run(ctx, s.client, []string{s.key}, prevFP, nextFP, rec, legacy).Slice()
		if err != nil {
			return false, fmt.Errorf("redisstore: save token to key %q: %w", s.key, err)
		}
		code, _ := res[0].(int64)
		switch code {
		case casSwapped:
			return true, nil
		case casMismatch:
			return false, nil
		case casLegacy:
			old, _ := res[1].(string)
			t, err := s.decode(old)
			if err != nil {
				return false, err
			}
			if refresher.Fingerprint(t) != prevFP {
				return false, nil
			}
			legacy = old // swap if it is still this value
		default:
			return false, fmt.Errorf("redisstore: save token to key %q: unexpected reply %v", s.key, res)
		}
	}
	return false, fmt.Errorf("redisstore: save token to key %q: the value changed %d times during the save", s.key, maxLegacyRounds)
}

// Clear deletes the stored token, for [refresher.Source.Logout].
func (s *Store) Clear(ctx context.Context) error {
	if err := s.client.Del(ctx, s.key).Err(); err != nil {
		return fmt.Errorf("redisstore: clear %q: %w", s.key, err)
	}
	return nil
}
