package sealed

import (
	"errors"
	"fmt"
	"strings"
)

// The conditions a caller branches on. Package refresher exports them under
// the same names.
var (
	ErrUnknownKey      = errors.New("refresher: the keyring has no key with this id")
	ErrNotAuthentic    = errors.New("refresher: the record does not authenticate: the key is wrong, or the record was altered or moved from another store key")
	ErrMalformedRecord = errors.New("refresher: malformed sealed record")
	ErrNoKeyring       = errors.New("refresher: the record is encrypted and no keyring was given")
)

// Error is a record that could not be opened. Its fields are those of
// refresher.DecryptError, in the same order, so that one converts into the
// other. It never holds key bytes nor plaintext.
type Error struct {
	// KeyID is the id of the key the record names, "" if it could not be
	// read.
	KeyID string
	// Err wraps one of ErrUnknownKey, ErrNotAuthentic, ErrMalformedRecord
	// and ErrNoKeyring.
	Err error
}

// Error returns "refresher: cannot decrypt the stored token", the key id
// when there is one, and the reason.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("refresher: cannot decrypt the stored token")
	if e.KeyID != "" {
		fmt.Fprintf(&b, " sealed with key %q", e.KeyID)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "refresher: "))
	}
	return b.String()
}

// Unwrap returns the reason.
func (e *Error) Unwrap() error { return e.Err }

// malformed returns the Error of a record that is not a sealed record.
func malformed(kid, format string, args ...any) *Error {
	return &Error{KeyID: kid, Err: fmt.Errorf("%w: "+format, append([]any{ErrMalformedRecord}, args...)...)}
}
