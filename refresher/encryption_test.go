package refresher_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/internal/sealed"
	"github.com/autorefresh/autorefresh/refresher"
)

func encKey(id string, b byte) refresher.EncryptionKey {
	return refresher.EncryptionKey{ID: id, Key: bytes.Repeat([]byte{b}, 32)}
}

func newKeyring(t *testing.T, primary refresher.EncryptionKey, older ...refresher.EncryptionKey) *refresher.Keyring {
	t.Helper()
	k, err := refresher.NewKeyring(primary, older...)
	require.NoError(t, err)
	return k
}

// assertNoKeyBytes fails if s holds any of the keys' bytes in a usual
// encoding.
func assertNoKeyBytes(t *testing.T, s string, keys ...refresher.EncryptionKey) {
	t.Helper()
	for _, k := range keys {
		for _, enc := range []string{
			string(k.Key),
			fmt.Sprintf("%x", k.Key),
			fmt.Sprintf("%X", k.Key),
			fmt.Sprintf("%v", k.Key),
			fmt.Sprintf("%d", k.Key),
			base64.StdEncoding.EncodeToString(k.Key),
			base64.RawURLEncoding.EncodeToString(k.Key),
		} {
			assert.NotContains(t, s, enc)
		}
	}
}

const record = `{"version":1,"access_token":"access-secret","refresh_token":"refresh-secret"}`

func TestKeyringSealsAndOpens(t *testing.T) {
	k := newKeyring(t, encKey("k1", 1))
	binding := []byte("redis:tokens:alice")
	rec, err := k.Seal(binding, []byte(record))
	require.NoError(t, err)
	assert.NotContains(t, string(rec), "access-secret")
	assert.NotContains(t, string(rec), "refresh-secret")

	got, err := k.Open(binding, rec)
	require.NoError(t, err)
	assert.Equal(t, record, string(got))
}

func TestRecordsPassPlainWithoutAKeyringAndSealedOnesNeedIt(t *testing.T) {
	binding := []byte("file:/tmp/token.json")
	var none *refresher.Keyring
	rec, err := none.SealRecord(binding, []byte(record))
	require.NoError(t, err)
	assert.Equal(t, record, string(rec), "a store without a keyring writes the plain record")
	got, err := none.OpenRecord(binding, []byte(record))
	require.NoError(t, err)
	assert.Equal(t, record, string(got))

	k := newKeyring(t, encKey("k1", 1))
	rec, err = k.SealRecord(binding, []byte(record))
	require.NoError(t, err)
	assert.NotContains(t, string(rec), "refresh-secret")
	got, err = k.OpenRecord(binding, []byte(record))
	require.NoError(t, err)
	assert.Equal(t, record, string(got), "a plain record written before encryption is read as it is")
	got, err = k.OpenRecord(binding, rec)
	require.NoError(t, err)
	assert.Equal(t, record, string(got))
	_, err = none.OpenRecord(binding, rec)
	require.ErrorIs(t, err, refresher.ErrNoKeyring, "a sealed record without a keyring is an error, never an empty store")
}

func TestKeyringRotationOpensOldRecordsAndSealsWithTheNewKey(t *testing.T) {
	binding := []byte("file:/tmp/token.json")
	oldKey, newKey := encKey("2026-01", 1), encKey("2026-07", 2)
	old := newKeyring(t, oldKey)
	rec, err := old.Seal(binding, []byte(record))
	require.NoError(t, err)

	rotated := newKeyring(t, newKey, oldKey)
	got, err := rotated.Open(binding, rec)
	require.NoError(t, err, "a record sealed with the old key opens after a new primary is added")
	assert.Equal(t, record, string(got))

	resealed, err := rotated.Seal(binding, got)
	require.NoError(t, err)
	id, err := sealed.KeyID(resealed)
	require.NoError(t, err)
	assert.Equal(t, "2026-07", id, "a new seal uses the new primary key")

	// Once the old key is dropped, its records no longer open: clearly.
	_, err = newKeyring(t, newKey).Open(binding, rec)
	var de *refresher.DecryptError
	require.ErrorAs(t, err, &de)
	assert.ErrorIs(t, err, refresher.ErrUnknownKey)
	assert.Equal(t, "2026-01", de.KeyID)
	assert.Equal(t, `refresher: cannot decrypt the stored token sealed with key "2026-01": the keyring has no key with this id (it holds "2026-07")`, err.Error())
}

func TestKeyringOpenFailsClearly(t *testing.T) {
	k1 := encKey("k1", 1)
	wrong := encKey("k1", 7) // same id, other bytes
	k := newKeyring(t, k1)
	binding := []byte("pg:autorefresh_tokens/alice")
	rec, err := k.Seal(binding, []byte(record))
	require.NoError(t, err)
	tampered := bytes.Replace(rec, []byte(`"ciphertext":"`), []byte(`"ciphertext":"AAAA`), 1)

	for _, tc := range []struct {
		name    string
		keyring *refresher.Keyring
		binding string
		record  []byte
		want    error
		kid     string
	}{
		{"moved to another account", k, "pg:autorefresh_tokens/bob", rec, refresher.ErrNotAuthentic, "k1"},
		{"wrong key", newKeyring(t, wrong), string(binding), rec, refresher.ErrNotAuthentic, "k1"},
		{"tampered", k, string(binding), tampered, refresher.ErrNotAuthentic, "k1"},
		{"unknown key", newKeyring(t, encKey("k2", 2)), string(binding), rec, refresher.ErrUnknownKey, "k1"},
		{"missing keyring", nil, string(binding), rec, refresher.ErrNoKeyring, "k1"},
		{"plain record", k, string(binding), []byte(record), refresher.ErrMalformedRecord, ""},
		{"garbage", k, string(binding), []byte("\x00\x01\x02"), refresher.ErrMalformedRecord, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.keyring.Open([]byte(tc.binding), tc.record)
			assert.Nil(t, got)
			require.ErrorIs(t, err, tc.want)
			var de *refresher.DecryptError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tc.kid, de.KeyID)
			msg := err.Error()
			assert.True(t, strings.HasPrefix(msg, "refresher: cannot decrypt the stored token"), "got %q", msg)
			assertNoKeyBytes(t, msg, k1, wrong)
			assert.NotContains(t, msg, "access-secret")
			assert.NotContains(t, msg, "refresh-secret")
		})
	}
}

func TestKeyringSealWithoutKeysFails(t *testing.T) {
	var k *refresher.Keyring
	_, err := k.Seal([]byte("file:/x"), []byte(record))
	assert.Error(t, err)
}

func TestNewKeyringValidatesKeys(t *testing.T) {
	good := encKey("k1", 1)
	for _, tc := range []struct {
		name    string
		primary refresher.EncryptionKey
		older   []refresher.EncryptionKey
		want    string
	}{
		{"short key", refresher.EncryptionKey{ID: "k1", Key: []byte("0123456789abcdef")}, nil,
			`refresher: encryption key: key "k1" is 16 bytes long, want 32 (AES-256)`},
		{"no key", refresher.EncryptionKey{ID: "k1"}, nil,
			`refresher: encryption key: key "k1" is 0 bytes long, want 32 (AES-256)`},
		{"zero key", refresher.EncryptionKey{ID: "k1", Key: make([]byte, 32)}, nil,
			`refresher: encryption key: key "k1" is all zero bytes: it looks unset`},
		{"no id", refresher.EncryptionKey{Key: good.Key}, nil,
			`refresher: encryption key: the id of the primary key: a key id must not be empty`},
		{"unprintable id", refresher.EncryptionKey{ID: "k\n1", Key: good.Key}, nil,
			`refresher: encryption key: the id of the primary key: a key id holds only ASCII letters, digits, '.', '_' and '-'; this one has another character at byte 1`},
		{"duplicate id", good, []refresher.EncryptionKey{encKey("k1", 2)},
			`refresher: encryption key: key id "k1" is given more than once`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := refresher.NewKeyring(tc.primary, tc.older...)
			assert.Nil(t, k)
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestNewKeyringKeepsNoReferenceToTheKeyBytes(t *testing.T) {
	key := encKey("k1", 1)
	k := newKeyring(t, key)
	rec, err := k.Seal([]byte("b"), []byte(record))
	require.NoError(t, err)
	clear(key.Key)
	_, err = k.Open([]byte("b"), rec)
	assert.NoError(t, err)
}

func TestParseEncryptionKey(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i*7 + 0xf0) // holds '+', '/' in standard base64 and '-', '_' in URL-safe
	}
	std := base64.StdEncoding.EncodeToString(raw)
	url := base64.RawURLEncoding.EncodeToString(raw)
	require.True(t, strings.ContainsAny(std, "+/"), "the test key should use base64's two last digits")

	for _, tc := range []struct{ name, in string }{
		{"standard, padded, with the newline of base64(1)", "2026-11:" + std + "\n"},
		{"standard, unpadded", "2026-11:" + strings.TrimRight(std, "=")},
		{"URL-safe", "2026-11:" + url},
		{"spaces around", "  2026-11:" + std + "  "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := refresher.ParseEncryptionKey(tc.in)
			require.NoError(t, err)
			assert.Equal(t, "2026-11", k.ID)
			assert.Equal(t, raw, k.Key)
		})
	}

	for _, tc := range []struct{ name, in, want string }{
		{"no id", std, "refresher: an encryption key is written as id:base64, and this one has no ':'"},
		{"empty id", ":" + std, "refresher: encryption key: a key id must not be empty"},
		{"bad id", "a b:" + std, "refresher: encryption key: a key id holds only ASCII letters, digits, '.', '_' and '-'; this one has another character at byte 1"},
		{"not base64", "k1:" + std[:10] + "*" + std[11:], `refresher: encryption key "k1" is not valid base64`},
		{"16 bytes", "k1:" + base64.StdEncoding.EncodeToString(raw[:16]), `refresher: encryption key "k1" is 16 bytes long, want 32 (AES-256)`},
		{"empty", "", "refresher: an encryption key is written as id:base64, and this one has no ':'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := refresher.ParseEncryptionKey(tc.in)
			require.EqualError(t, err, tc.want)
			assert.NotContains(t, err.Error(), std[:12], "the error quotes the key")
		})
	}
}

func TestKeysAndKeyringsFormatWithoutKeyBytes(t *testing.T) {
	k1, k2 := encKey("k1", 0xa1), encKey("k2", 0xb2)
	ring := newKeyring(t, k2, k1)
	var nilRing *refresher.Keyring
	for _, tc := range []struct {
		name string
		v    any
		want string
	}{
		{"key", k1, `refresher.EncryptionKey{ID: "k1", Key: [redacted]}`},
		{"key pointer", &k1, `refresher.EncryptionKey{ID: "k1", Key: [redacted]}`},
		{"keyring", ring, `refresher.Keyring{primary: "k2", keys: ["k2" "k1"]}`},
		{"nil keyring", nilRing, `refresher.Keyring{}`},
		{"keyring value", *ring, ""},
		{"keys in a struct", struct {
			Keys []refresher.EncryptionKey
			Ring *refresher.Keyring
		}{[]refresher.EncryptionKey{k1, k2}, ring}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
				got := fmt.Sprintf(verb, tc.v)
				if tc.want != "" {
					assert.Equal(t, tc.want, got, verb)
				}
				assertNoKeyBytes(t, got, k1, k2)
			}
		})
	}
	assert.Equal(t, `refresher.Keyring{primary: "k2", keys: ["k2" "k1"]}`, ring.String())
	assert.Equal(t, ring.String(), ring.GoString())
	assert.Equal(t, `refresher.EncryptionKey{ID: "k1", Key: [redacted]}`, k1.String())
	assert.Equal(t, k1.String(), k1.GoString())
}

func TestDecryptErrorIsOneOfItsReasons(t *testing.T) {
	err := error(&refresher.DecryptError{KeyID: "k1", Err: refresher.ErrNoKeyring})
	assert.True(t, errors.Is(err, refresher.ErrNoKeyring))
	assert.False(t, errors.Is(err, refresher.ErrNotAuthentic))
	assert.Equal(t, `refresher: cannot decrypt the stored token sealed with key "k1": the record is encrypted and no keyring was given`, err.Error())
}

func ExampleNewKeyring() {
	// In production, read the keys from a secret store or the environment:
	// refresher.ParseEncryptionKey(os.Getenv("TOKEN_KEY")). Keep the
	// previous key among the older ones until every record was saved again.
	current := refresher.EncryptionKey{ID: "2026-11", Key: bytes.Repeat([]byte{0x5a}, 32)}
	previous := refresher.EncryptionKey{ID: "2026-05", Key: bytes.Repeat([]byte{0xa5}, 32)}
	keys, err := refresher.NewKeyring(current, previous)
	if err != nil {
		panic(err)
	}
	fmt.Println(keys)
	fmt.Println(current)
	// Output:
	// refresher.Keyring{primary: "2026-11", keys: ["2026-11" "2026-05"]}
	// refresher.EncryptionKey{ID: "2026-11", Key: [redacted]}
}
