// Package sealed encrypts the records that the persistent stores keep (a
// token in its tokenjson form) with AES-256-GCM from the standard library,
// and opens them again. Package refresher wraps a [Ring] in its exported
// Keyring, converts an [*Error] into its exported DecryptError (the two
// have the same fields) and re-exports the sentinels.
//
// # Record format
//
// A sealed record is one compact JSON object, written with its members in
// this order:
//
//	{"sealed":1,"alg":"A256GCM","kid":"2026-11","nonce":"<base64>","ciphertext":"<base64>"}
//
// "sealed" is the format's version, "kid" the id of the key that sealed it,
// "nonce" the 12 random bytes of the GCM nonce and "ciphertext" the
// encrypted plaintext followed by the 16-byte GCM tag, both in standard
// base64 with padding. The additional authenticated data is
//
//	"autorefresh-sealed/1" NUL kid NUL binding
//
// where binding names the place the record belongs to in its store, such as
// "file:/home/me/.config/app/token.json", "redis:tokens:alice" or
// "pg:autorefresh_tokens/alice": a record copied to another place does not
// open there. A key id holds no NUL, so the data splits one way only.
//
// A plain tokenjson record is a JSON object without a "sealed" member;
// [IsSealed] tells the two apart, so that a store can read the plain records
// written before encryption was turned on.
package sealed
