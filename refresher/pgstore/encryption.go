package pgstore

import (
	"fmt"

	"github.com/autorefresh/autorefresh/refresher"
)

// WithEncryption encrypts each row's record with keys (AES-256-GCM, see
// [refresher.Keyring]): every save seals it with the primary key, and a
// record sealed with any of the keys opens. A record is bound to its table
// and account key: a record copied to another account's row, or to another
// table, does not open there (so a table renamed after its records were
// sealed must still be given to [WithTable] under its old name, or its
// tokens re-saved through a Store of the new one). The fingerprint column
// stays in the clear; it reveals nothing usable of the token.
//
// A record saved before encryption was turned on is read as it is, and
// sealed by the next save. Without this option, a Store that finds a
// sealed record fails with a [*refresher.DecryptError] wrapping
// [refresher.ErrNoKeyring]: it never reports an empty store. A nil keys
// turns encryption off. [Migrate] ignores this option.
func WithEncryption(keys *refresher.Keyring) Option {
	return func(c *config) { c.keys = keys }
}

// binding names the place of the Store's record for its encryption: the
// quoted table name, then the account key.
func (s *Store) binding() []byte { return []byte("pg:" + s.table + "/" + s.key) }

// seal returns rec sealed if the Store encrypts, and rec otherwise.
func (s *Store) seal(rec []byte) ([]byte, error) { return s.keys.SealRecord(s.binding(), rec) }

// open returns the plain record of a sealed rec, and rec itself if it is
// not sealed (a record saved before encryption was turned on).
func (s *Store) open(rec []byte) ([]byte, error) {
	plain, err := s.keys.OpenRecord(s.binding(), rec)
	if err != nil {
		return nil, fmt.Errorf("pgstore: key %q: %w", s.key, err)
	}
	return plain, nil
}
