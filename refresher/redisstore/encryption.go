package redisstore

import (
	"fmt"

	"github.com/autorefresh/autorefresh/refresher"
)

// WithEncryption encrypts the token's record with keys (AES-256-GCM, see
// [refresher.Keyring]): every save seals it with the primary key, and a
// record sealed with any of the keys opens. The record is bound to the
// token's key: a record copied under another key (another account's) does
// not open there. The fingerprint next to it stays in the clear; it reveals
// nothing usable of the token.
//
// A record saved before encryption was turned on is read as it is, and
// sealed by the next save. Without this option, a Store that finds a
// sealed record fails with a [*refresher.DecryptError] wrapping
// [refresher.ErrNoKeyring]: it never reports an empty store. A nil keys
// turns encryption off.
func WithEncryption(keys *refresher.Keyring) Option {
	return func(s *Store) { s.keys = keys }
}

// binding names the place of the token's record for its encryption.
func (s *Store) binding() []byte { return []byte("redis:" + s.key) }

// seal returns rec sealed if the Store encrypts, and rec otherwise.
func (s *Store) seal(rec []byte) ([]byte, error) { return s.keys.SealRecord(s.binding(), rec) }

// open returns the plain record of a sealed rec, and rec itself if it is
// not sealed (a record saved before encryption was turned on).
func (s *Store) open(rec []byte) ([]byte, error) {
	plain, err := s.keys.OpenRecord(s.binding(), rec)
	if err != nil {
		return nil, fmt.Errorf("redisstore: key %q: %w", s.key, err)
	}
	return plain, nil
}
