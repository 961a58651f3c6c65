package storetest

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
)

// EncryptionKey returns a test key named id whose 32 bytes are all b.
func EncryptionKey(id string, b byte) refresher.EncryptionKey {
	return refresher.EncryptionKey{ID: id, Key: bytes.Repeat([]byte{b}, 32)}
}

// Keyring returns the Keyring of keys, the first the primary.
func Keyring(t testing.TB, keys ...refresher.EncryptionKey) *refresher.Keyring {
	t.Helper()
	k, err := refresher.NewKeyring(keys[0], keys[1:]...)
	require.NoError(t, err)
	return k
}

// SecretsIn returns the access and refresh tokens of toks that data holds,
// each after where and ": " when where is not empty: what a store keeps at
// rest must hold none once it encrypts.
func SecretsIn(where string, data []byte, toks ...*oauth2.Token) []string {
	var found []string
	for _, tok := range toks {
		for _, secret := range []string{tok.AccessToken, tok.RefreshToken} {
			if secret != "" && bytes.Contains(data, []byte(secret)) {
				if where != "" {
					secret = where + ": " + secret
				}
				found = append(found, secret)
			}
		}
	}
	return found
}

// AssertDecryptError checks what a store's Load gave for a record it cannot
// open: no token, and a [*refresher.DecryptError] of the record's key id
// that errors.Is want.
func AssertDecryptError(t testing.TB, got *oauth2.Token, err, want error, keyID string) {
	t.Helper()
	assert.Nil(t, got)
	require.ErrorIs(t, err, want, "never an empty store")
	var de *refresher.DecryptError
	require.ErrorAs(t, err, &de)
	assert.Equal(t, keyID, de.KeyID)
}
