package sealed

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
)

// Version is the version of the format written by [Seal]. [Open] refuses
// any other.
const Version = 1

// Alg names the one algorithm of version 1.
const Alg = "A256GCM"

// NonceSize is the size of a GCM nonce in bytes.
const NonceSize = 12

// MaxPlaintext bounds what [Seal] accepts, and MaxSize what [Open] accepts:
// a token is a few kilobytes.
const (
	MaxPlaintext = 1 << 20
	MaxSize      = 2 << 20
)

// envelope is a sealed record. Its members are written in this order, so
// that a record begins with [prefix].
type envelope struct {
	Sealed     int    `json:"sealed"`
	Alg        string `json:"alg"`
	KeyID      string `json:"kid"`
	Nonce      []byte `json:"nonce"`
	Ciphertext []byte `json:"ciphertext"`
}

// prefix is how every record that Seal writes begins.
var prefix = []byte(`{"sealed":`)

// aadLabel begins the additional data of version 1.
const aadLabel = "autorefresh-sealed/1"

// additionalData returns the data authenticated with a record: the format,
// the key id and the binding, separated by NUL bytes.
func additionalData(kid string, binding []byte) []byte {
	ad := make([]byte, 0, len(aadLabel)+1+len(kid)+1+len(binding))
	ad = append(ad, aadLabel...)
	ad = append(ad, 0)
	ad = append(ad, kid...)
	ad = append(ad, 0)
	return append(ad, binding...)
}

// Seal encrypts plaintext with r's primary key, a fresh random nonce and
// binding as additional data, and returns the sealed record. binding names
// the record's place in its store; [Open] must be given the same.
func Seal(r *Ring, binding, plaintext []byte) ([]byte, error) {
	if r == nil {
		return nil, errors.New("refresher: seal a record: no keyring")
	}
	if len(plaintext) > MaxPlaintext {
		return nil, fmt.Errorf("refresher: seal a record: it is %d bytes long, more than %d", len(plaintext), MaxPlaintext)
	}
	aead := r.aeads[r.primary]
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("refresher: seal a record: read a random nonce: %w", err)
	}
	env := envelope{
		Sealed:     Version,
		Alg:        Alg,
		KeyID:      r.primary,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, plaintext, additionalData(r.primary, binding)),
	}
	return json.Marshal(env)
}

// Open decrypts a record written by [Seal] with the key it names, which
// must be one of r's, and the binding it was sealed with. Every failure is
// an [*Error] wrapping [ErrUnknownKey], [ErrNotAuthentic],
// [ErrMalformedRecord] or, when r is nil, [ErrNoKeyring].
func Open(r *Ring, binding, record []byte) ([]byte, error) {
	env, err := parse(record)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, &Error{KeyID: env.KeyID, Err: ErrNoKeyring}
	}
	aead, ok := r.aeads[env.KeyID]
	if !ok {
		return nil, &Error{KeyID: env.KeyID, Err: fmt.Errorf("%w (it holds %s)", ErrUnknownKey, quoteIDs(r.ids))}
	}
	plaintext, err := aead.Open(nil, env.Nonce, env.Ciphertext, additionalData(env.KeyID, binding))
	if err != nil {
		return nil, &Error{KeyID: env.KeyID, Err: ErrNotAuthentic}
	}
	return plaintext, nil
}

// KeyID returns the id of the key that sealed record, or an [*Error]
// wrapping [ErrMalformedRecord].
func KeyID(record []byte) (string, error) {
	env, err := parse(record)
	if err != nil {
		return "", err
	}
	return env.KeyID, nil
}

// parse checks the envelope of a record. Its errors quote nothing from
// record but a valid key id.
func parse(record []byte) (*envelope, error) {
	if len(record) > MaxSize {
		return nil, malformed("", "it is larger than %d bytes", MaxSize)
	}
	if !IsSealed(record) {
		return nil, malformed("", "it is not a sealed record")
	}
	var env envelope
	if err := json.Unmarshal(record, &env); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, malformed("", "invalid JSON at byte %d of %d", syn.Offset, len(record))
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) && typ.Field != "" {
			return nil, malformed("", "field %q holds a JSON %s", typ.Field, typ.Value)
		}
		return nil, malformed("", "invalid JSON or base64")
	}
	if env.Sealed != Version {
		return nil, malformed("", "format version %d is not supported (want %d)", env.Sealed, Version)
	}
	if CheckKeyID(env.KeyID) != nil {
		return nil, malformed("", "its key id is missing or invalid")
	}
	if env.Alg != Alg {
		return nil, malformed(env.KeyID, "algorithm is not %s", Alg)
	}
	if len(env.Nonce) != NonceSize {
		return nil, malformed(env.KeyID, "its nonce is %d bytes long, want %d", len(env.Nonce), NonceSize)
	}
	if len(env.Ciphertext) < 16 {
		return nil, malformed(env.KeyID, "its ciphertext is %d bytes long, shorter than the GCM tag", len(env.Ciphertext))
	}
	return &env, nil
}

// IsSealed reports whether record is meant as a sealed record (even a
// damaged one, which [Open] then reports as malformed) rather than a plain
// one: it begins, after white space, as [Seal] writes it, or is a JSON
// object with a "sealed" member. A plain tokenjson record is not.
func IsSealed(record []byte) bool {
	trimmed := bytes.TrimLeft(record, " \t\r\n")
	if bytes.HasPrefix(trimmed, prefix) {
		return true
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(record, &probe) != nil {
		return false
	}
	_, ok := probe["sealed"]
	return ok
}
