package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeySize is the size of a key in bytes: AES-256.
const KeySize = 32

// MaxKeyIDLen bounds the length of a key id, in bytes.
const MaxKeyIDLen = 64

// Key is a key and its id, as the user supplies them.
type Key struct {
	ID     string
	Secret []byte
}

// Ring is a set of keys: the primary seals, every key opens the records it
// sealed. A Ring keeps no copy of the key bytes it was built from (only the
// AES key schedules), never changes after [NewRing], and is safe for
// concurrent use by multiple goroutines.
type Ring struct {
	primary string
	ids     []string // the primary first, then the older keys in the order given
	aeads   map[string]cipher.AEAD
}

// NewRing returns a Ring whose primary key is primary, and which also opens
// the records sealed with the older keys. Each key must be [KeySize] bytes,
// not all zero, with an id accepted by [CheckKeyID]; ids must be unique.
// Errors name a key by its id when the id is valid and by its position
// otherwise; they never hold key bytes.
func NewRing(primary Key, older ...Key) (*Ring, error) {
	keys := append([]Key{primary}, older...)
	r := &Ring{primary: primary.ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range keys {
		which := "the primary key"
		if i > 0 {
			which = fmt.Sprintf("older key %d", i)
		}
		if err := CheckKeyID(k.ID); err != nil {
			return nil, fmt.Errorf("the id of %s: %w", which, err)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("key id %q is given more than once", k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("key %q is %d bytes long, want %d (AES-256)", k.ID, len(k.Secret), KeySize)
		}
		if subtle.ConstantTimeCompare(k.Secret, make([]byte, KeySize)) == 1 {
			return nil, fmt.Errorf("key %q is all zero bytes: it looks unset", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		r.aeads[k.ID] = aead
		r.ids = append(r.ids, k.ID)
	}
	return r, nil
}

// CheckKeyID reports whether id can name a key: 1 to [MaxKeyIDLen] ASCII
// letters, digits, '.', '_' or '-'. Its error does not quote id.
func CheckKeyID(id string) error {
	if id == "" {
		return errors.New("a key id must not be empty")
	}
	if len(id) > MaxKeyIDLen {
		return fmt.Errorf("a key id is at most %d characters long, this one has %d", MaxKeyIDLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("a key id holds only ASCII letters, digits, '.', '_' and '-'; this one has another character at byte %d", i)
		}
	}
	return nil
}

// Primary returns the id of the key that seals.
func (r *Ring) Primary() string { return r.primary }

// IDs returns the ids of every key, the primary first.
func (r *Ring) IDs() []string { return append([]string(nil), r.ids...) }

// String returns the ring's key ids, the primary first:
// `sealed.Ring{primary: "k2", keys: ["k2" "k1"]}`.
func (r Ring) String() string {
	return fmt.Sprintf("sealed.Ring{primary: %q, keys: %q}", r.primary, r.ids)
}

// Format prints what [Ring.String] returns, whatever the verb, so that no
// verb reaches the key schedules.
func (r Ring) Format(f fmt.State, _ rune) { io.WriteString(f, r.String()) }

// quoteIDs is used in messages: "k2", "k1".
func quoteIDs(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = fmt.Sprintf("%q", id)
	}
	return strings.Join(q, ", ")
}
