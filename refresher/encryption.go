package refresher

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/autorefresh/autorefresh/internal/sealed"
)

// EncryptionKey is a key that encrypts stored tokens (AES-256-GCM), and the
// id that each record sealed with it carries, so that keys can be rotated.
//
// The fmt verbs print it as "refresher.EncryptionKey{ID: <id>, Key:
// [redacted]}": never its bytes.
type EncryptionKey struct {
	// ID names the key in every record it seals: 1 to 64 ASCII letters,
	// digits, '.', '_' or '-', such as "2026-11". It is stored in the
	// clear.
	ID string
	// Key is the key: 32 random bytes.
	Key []byte
}

// ParseEncryptionKey parses a key written as "id:base64", such as an
// environment variable holding "2026-11:" followed by the output of
// `head -c32 /dev/urandom | base64`. The base64 may be standard or URL-safe,
// padded or not; white space around s is ignored. Errors never quote s.
func ParseEncryptionKey(s string) (EncryptionKey, error) {
	id, b64, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return EncryptionKey{}, errors.New("refresher: an encryption key is written as id:base64, and this one has no ':'")
	}
	if err := sealed.CheckKeyID(id); err != nil {
		return EncryptionKey{}, fmt.Errorf("refresher: encryption key: %w", err)
	}
	b64 = strings.TrimRight(strings.TrimSpace(b64), "=")
	var key []byte
	var err error
	if strings.ContainsAny(b64, "-_") {
		key, err = base64.RawURLEncoding.DecodeString(b64)
	} else {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return EncryptionKey{}, fmt.Errorf("refresher: encryption key %q is not valid base64", id)
	}
	if len(key) != sealed.KeySize {
		return EncryptionKey{}, fmt.Errorf("refresher: encryption key %q is %d bytes long, want %d (AES-256)", id, len(key), sealed.KeySize)
	}
	return EncryptionKey{ID: id, Key: key}, nil
}

// String returns "refresher.EncryptionKey{ID: <id>, Key: [redacted]}".
func (k EncryptionKey) String() string {
	return fmt.Sprintf("refresher.EncryptionKey{ID: %q, Key: [redacted]}", k.ID)
}

// GoString returns what [EncryptionKey.String] returns.
func (k EncryptionKey) GoString() string { return k.String() }

// Format prints what [EncryptionKey.String] returns, whatever the verb.
func (k EncryptionKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// Keyring holds the keys that encrypt a store's tokens: new records are
// sealed with the primary key, and a record sealed with any of its keys
// opens, so that a key is rotated by making a new primary and keeping the
// old key among the older ones until every record has been saved again.
//
// Give it to a store's encryption option: [WithFileEncryption],
// redisstore.WithEncryption or pgstore.WithEncryption. A Keyring never
// changes and is safe for concurrent use by multiple goroutines. The fmt
// verbs print its key ids only: never key bytes. SECURITY.md ("Key
// handling") says how to make, keep and rotate keys.
type Keyring struct {
	ring *sealed.Ring // a pointer: fmt never reaches into it through a Keyring
}

// NewKeyring returns a Keyring whose primary key is primary, and which also
// opens the records sealed with the older keys. Each key must be 32 bytes
// (not all zero) with a valid [EncryptionKey.ID], and no two keys may share
// an id. The Keyring keeps no reference to the keys' byte slices: the
// caller may clear them.
func NewKeyring(primary EncryptionKey, older ...EncryptionKey) (*Keyring, error) {
	keys := make([]sealed.Key, len(older))
	for i, k := range older {
		keys[i] = sealed.Key{ID: k.ID, Secret: k.Key}
	}
	r, err := sealed.NewRing(sealed.Key{ID: primary.ID, Secret: primary.Key}, keys...)
	if err != nil {
		return nil, fmt.Errorf("refresher: encryption key: %w", err)
	}
	return &Keyring{ring: r}, nil
}

// keys returns k's ring, nil for a nil Keyring.
func (k *Keyring) keys() *sealed.Ring {
	if k == nil {
		return nil
	}
	return k.ring
}

// Seal encrypts plaintext with k's primary key and returns the sealed
// record, a small JSON object that names the key. binding is authenticated
// with the record but not stored in it: it names the record's place in its
// store (the bundled stores use "file:<path>", "redis:<key>" and
// "pg:<table>/<key>"), so that a record copied to another place does not
// open there. A store that encrypts with a Keyring calls Seal and
// [Keyring.Open]; nothing else needs to.
func (k *Keyring) Seal(binding, plaintext []byte) ([]byte, error) {
	return sealed.Seal(k.keys(), binding, plaintext)
}

// Open decrypts a record written by [Keyring.Seal] with the same binding,
// with whichever of k's keys sealed it. It fails with a [*DecryptError]
// wrapping [ErrUnknownKey], [ErrNotAuthentic], [ErrMalformedRecord], or,
// when k is nil, [ErrNoKeyring].
func (k *Keyring) Open(binding, record []byte) ([]byte, error) {
	p, err := sealed.Open(k.keys(), binding, record)
	if se, ok := errors.AsType[*sealed.Error](err); ok {
		return nil, (*DecryptError)(se)
	}
	return p, err
}

// SealRecord is what a store that may encrypt writes: record sealed with
// binding (see [Keyring.Seal]), or record itself when k is nil (the store
// does not encrypt).
func (k *Keyring) SealRecord(binding, record []byte) ([]byte, error) {
	if k == nil {
		return record, nil
	}
	return k.Seal(binding, record)
}

// OpenRecord is what a store that may encrypt reads: the plain record of a
// sealed one (see [Keyring.Open]), or data itself when it is not sealed (a
// record written before encryption was turned on, read as it is and
// sealed by the next save). A sealed record with a nil k fails with
// [ErrNoKeyring]: never an empty store.
func (k *Keyring) OpenRecord(binding, data []byte) ([]byte, error) {
	if !sealed.IsSealed(data) {
		return data, nil
	}
	return k.Open(binding, data)
}

// String returns `refresher.Keyring{primary: "k2", keys: ["k2" "k1"]}`:
// the key ids, the primary first.
func (k *Keyring) String() string {
	if k == nil || k.ring == nil {
		return "refresher.Keyring{}"
	}
	return fmt.Sprintf("refresher.Keyring{primary: %q, keys: %q}", k.ring.Primary(), k.ring.IDs())
}

// GoString returns what [Keyring.String] returns.
func (k *Keyring) GoString() string { return k.String() }

// Format prints what [Keyring.String] returns, whatever the verb.
func (k *Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// The conditions under which a stored token cannot be decrypted. A
// [*DecryptError] wraps one of them; test for it with [errors.Is].
var (
	// ErrUnknownKey: the record was sealed with a key id that the Keyring
	// does not hold (a key removed too early, or the wrong keyring).
	ErrUnknownKey = sealed.ErrUnknownKey
	// ErrNotAuthentic: the record did not authenticate: the key under its
	// id is not the one that sealed it, or the record was altered, or it
	// was copied from another place in the store (another account's key,
	// another file).
	ErrNotAuthentic = sealed.ErrNotAuthentic
	// ErrMalformedRecord: the record is not a readable sealed record.
	ErrMalformedRecord = sealed.ErrMalformedRecord
	// ErrNoKeyring: the store holds an encrypted record and was given no
	// Keyring.
	ErrNoKeyring = sealed.ErrNoKeyring
)

// DecryptError reports a stored token that could not be decrypted. A store
// returns it rather than act as if it were empty: the token may still be
// live, and only the right key gives it back. It never holds key bytes nor
// token values.
type DecryptError struct {
	// KeyID is the id of the key the record names, "" if it could not be
	// read.
	KeyID string
	// Err is the reason: it wraps ErrUnknownKey, ErrNotAuthentic,
	// ErrMalformedRecord or ErrNoKeyring.
	Err error
}

// Error returns "refresher: cannot decrypt the stored token", the key id
// and the reason.
func (e *DecryptError) Error() string { return (*sealed.Error)(e).Error() }

// Unwrap returns the reason.
func (e *DecryptError) Unwrap() error { return e.Err }
