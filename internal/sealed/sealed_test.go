package sealed_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/internal/sealed"
)

// key returns a 32-byte key filled with b.
func key(id string, b byte) sealed.Key {
	return sealed.Key{ID: id, Secret: bytes.Repeat([]byte{b}, sealed.KeySize)}
}

func ring(t *testing.T, primary sealed.Key, older ...sealed.Key) *sealed.Ring {
	t.Helper()
	r, err := sealed.NewRing(primary, older...)
	require.NoError(t, err)
	return r
}

const plain = `{"version":1,"access_token":"access-secret-1","refresh_token":"refresh-secret-1"}`

var binding = []byte("file:/home/me/token.json")

// assertNoSecrets fails if s holds any of the key bytes, in any usual
// encoding, or the plaintext's token values.
func assertNoSecrets(t *testing.T, s string, keys ...sealed.Key) {
	t.Helper()
	for _, k := range keys {
		for _, enc := range []string{
			string(k.Secret),
			fmt.Sprintf("%x", k.Secret),
			fmt.Sprintf("%v", k.Secret),
			base64.StdEncoding.EncodeToString(k.Secret),
		} {
			assert.NotContains(t, s, enc)
		}
	}
	assert.NotContains(t, s, "access-secret-1")
	assert.NotContains(t, s, "refresh-secret-1")
}

func TestSealOpensWithTheSameKeyAndBinding(t *testing.T) {
	r := ring(t, key("k1", 1))
	rec, err := sealed.Seal(r, binding, []byte(plain))
	require.NoError(t, err)
	assert.True(t, sealed.IsSealed(rec))
	assertNoSecrets(t, string(rec), key("k1", 1))

	got, err := sealed.Open(r, binding, rec)
	require.NoError(t, err)
	assert.Equal(t, plain, string(got))
}

func TestSealWritesTheVersionedEnvelope(t *testing.T) {
	r := ring(t, key("k1", 1))
	rec, err := sealed.Seal(r, binding, []byte(plain))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(rec), `{"sealed":1,"alg":"A256GCM","kid":"k1","nonce":"`), "got %s", rec)

	var env struct {
		Nonce      []byte `json:"nonce"`
		Ciphertext []byte `json:"ciphertext"`
	}
	require.NoError(t, json.Unmarshal(rec, &env))
	assert.Len(t, env.Nonce, sealed.NonceSize)
	assert.Len(t, env.Ciphertext, len(plain)+16, "plaintext plus the GCM tag")

	id, err := sealed.KeyID(rec)
	require.NoError(t, err)
	assert.Equal(t, "k1", id)
}

func TestSealUsesAFreshNonceEachTime(t *testing.T) {
	r := ring(t, key("k1", 1))
	seen := map[string]bool{}
	for range 100 {
		rec, err := sealed.Seal(r, binding, []byte(plain))
		require.NoError(t, err)
		var env struct {
			Nonce []byte `json:"nonce"`
		}
		require.NoError(t, json.Unmarshal(rec, &env))
		assert.False(t, seen[string(env.Nonce)], "nonce repeated")
		seen[string(env.Nonce)] = true
	}
}

func TestRotationOpensOldRecordsAndSealsWithTheNewKey(t *testing.T) {
	old := ring(t, key("2026-01", 1))
	rec, err := sealed.Seal(old, binding, []byte(plain))
	require.NoError(t, err)

	rotated := ring(t, key("2026-07", 2), key("2026-01", 1))
	assert.Equal(t, "2026-07", rotated.Primary())
	assert.Equal(t, []string{"2026-07", "2026-01"}, rotated.IDs())

	got, err := sealed.Open(rotated, binding, rec)
	require.NoError(t, err)
	assert.Equal(t, plain, string(got))

	resealed, err := sealed.Seal(rotated, binding, got)
	require.NoError(t, err)
	id, err := sealed.KeyID(resealed)
	require.NoError(t, err)
	assert.Equal(t, "2026-07", id)

	// The old ring does not hold the new key.
	_, err = sealed.Open(old, binding, resealed)
	var se *sealed.Error
	require.ErrorAs(t, err, &se)
	assert.ErrorIs(t, err, sealed.ErrUnknownKey)
	assert.Equal(t, "2026-07", se.KeyID)
	assert.Equal(t, `refresher: cannot decrypt the stored token sealed with key "2026-07": the keyring has no key with this id (it holds "2026-01")`, err.Error())
}

func TestOpenFailures(t *testing.T) {
	k1, k1b := key("k1", 1), key("k1", 9) // same id, other bytes
	r := ring(t, k1)
	rec, err := sealed.Seal(r, binding, []byte(plain))
	require.NoError(t, err)

	var env map[string]any
	require.NoError(t, json.Unmarshal(rec, &env))
	reencode := func(change func(map[string]any)) []byte {
		m := map[string]any{}
		for k, v := range env {
			m[k] = v
		}
		change(m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	flip := func(field string, i int) []byte {
		return reencode(func(m map[string]any) {
			b, err := base64.StdEncoding.DecodeString(m[field].(string))
			require.NoError(t, err)
			b[i] ^= 1
			m[field] = base64.StdEncoding.EncodeToString(b)
		})
	}

	for _, tc := range []struct {
		name    string
		ring    *sealed.Ring
		binding []byte
		record  []byte
		want    error
		kid     string
		msg     string
	}{
		{"moved to another store key", r, []byte("file:/home/other/token.json"), rec, sealed.ErrNotAuthentic, "k1",
			`refresher: cannot decrypt the stored token sealed with key "k1": the record does not authenticate: the key is wrong, or the record was altered or moved from another store key`},
		{"binding prefix only", r, []byte("file:/home/me/token.jso"), rec, sealed.ErrNotAuthentic, "k1", ""},
		{"wrong key under the right id", ring(t, k1b), binding, rec, sealed.ErrNotAuthentic, "k1", ""},
		{"ciphertext tampered", r, binding, flip("ciphertext", 3), sealed.ErrNotAuthentic, "k1", ""},
		{"tag tampered", r, binding, flip("ciphertext", len(plain)+15), sealed.ErrNotAuthentic, "k1", ""},
		{"nonce tampered", r, binding, flip("nonce", 0), sealed.ErrNotAuthentic, "k1", ""},
		{"key id relabelled", ring(t, k1, sealed.Key{ID: "k2", Secret: k1.Secret}), binding,
			reencode(func(m map[string]any) { m["kid"] = "k2" }), sealed.ErrNotAuthentic, "k2", ""},
		{"unknown key", ring(t, key("k2", 2)), binding, rec, sealed.ErrUnknownKey, "k1",
			`refresher: cannot decrypt the stored token sealed with key "k1": the keyring has no key with this id (it holds "k2")`},
		{"no keyring", nil, binding, rec, sealed.ErrNoKeyring, "k1",
			`refresher: cannot decrypt the stored token sealed with key "k1": the record is encrypted and no keyring was given`},
		{"plain record", r, binding, []byte(plain), sealed.ErrMalformedRecord, "",
			`refresher: cannot decrypt the stored token: malformed sealed record: it is not a sealed record`},
		{"truncated", r, binding, rec[:len(rec)-10], sealed.ErrMalformedRecord, "", ""},
		{"empty", r, binding, nil, sealed.ErrMalformedRecord, "", ""},
		{"other version", r, binding, reencode(func(m map[string]any) { m["sealed"] = 2 }), sealed.ErrMalformedRecord, "",
			`refresher: cannot decrypt the stored token: malformed sealed record: format version 2 is not supported (want 1)`},
		{"other algorithm", r, binding, reencode(func(m map[string]any) { m["alg"] = "A128GCM" }), sealed.ErrMalformedRecord, "k1", ""},
		{"short nonce", r, binding, reencode(func(m map[string]any) { m["nonce"] = "AAAA" }), sealed.ErrMalformedRecord, "k1", ""},
		{"nonce not base64", r, binding, reencode(func(m map[string]any) { m["nonce"] = "!!" }), sealed.ErrMalformedRecord, "", ""},
		{"no ciphertext", r, binding, reencode(func(m map[string]any) { delete(m, "ciphertext") }), sealed.ErrMalformedRecord, "k1", ""},
		{"invalid key id", r, binding, reencode(func(m map[string]any) { m["kid"] = "a b" }), sealed.ErrMalformedRecord, "", ""},
		{"too large", r, binding, append(append([]byte(nil), rec...), bytes.Repeat([]byte(" "), sealed.MaxSize)...), sealed.ErrMalformedRecord, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sealed.Open(tc.ring, tc.binding, tc.record)
			assert.Nil(t, got)
			require.ErrorIs(t, err, tc.want)
			var se *sealed.Error
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.kid, se.KeyID)
			if tc.msg != "" {
				assert.Equal(t, tc.msg, err.Error())
			}
			assertNoSecrets(t, err.Error(), k1, k1b)
			assert.NotContains(t, err.Error(), "/home/")
			for _, other := range []error{sealed.ErrNotAuthentic, sealed.ErrUnknownKey, sealed.ErrNoKeyring, sealed.ErrMalformedRecord} {
				if other != tc.want {
					assert.False(t, errors.Is(err, other), "also %v", other)
				}
			}
		})
	}
}

func TestIsSealedTellsPlainRecordsApart(t *testing.T) {
	r := ring(t, key("k1", 1))
	rec, err := sealed.Seal(r, binding, []byte(plain))
	require.NoError(t, err)
	var indented bytes.Buffer
	require.NoError(t, json.Indent(&indented, rec, "", "  "))

	for _, tc := range []struct {
		name   string
		record string
		want   bool
	}{
		{"sealed", string(rec), true},
		{"sealed, indented", indented.String(), true},
		{"sealed, truncated", string(rec[:20]), true},
		{"sealed, members reordered", `{"kid":"k1","sealed":1}`, true},
		{"plain", plain, false},
		{"plain, indented", "{\n  \"version\": 1,\n  \"access_token\": \"a\"\n}\n", false},
		{"plain mentioning sealed in a value", `{"version":1,"access_token":"sealed"}`, false},
		{"empty", "", false},
		{"not JSON", "\x00\x01binary", false},
		{"JSON array", `[{"sealed":1}]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, sealed.IsSealed([]byte(tc.record)))
		})
	}
}

func TestNewRingValidatesKeys(t *testing.T) {
	good := key("k1", 1)
	for _, tc := range []struct {
		name    string
		primary sealed.Key
		older   []sealed.Key
		want    string
	}{
		{"short key", sealed.Key{ID: "k1", Secret: make([]byte, 16)}, nil, `key "k1" is 16 bytes long, want 32 (AES-256)`},
		{"long key", sealed.Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, 33)}, nil, `key "k1" is 33 bytes long, want 32 (AES-256)`},
		{"zero key", sealed.Key{ID: "k1", Secret: make([]byte, 32)}, nil, `key "k1" is all zero bytes: it looks unset`},
		{"empty id", sealed.Key{Secret: good.Secret}, nil, "the id of the primary key: a key id must not be empty"},
		{"id with a colon", sealed.Key{ID: "a:b", Secret: good.Secret}, nil, "the id of the primary key: a key id holds only ASCII letters, digits, '.', '_' and '-'; this one has another character at byte 1"},
		{"id too long", sealed.Key{ID: strings.Repeat("a", 65), Secret: good.Secret}, nil, "the id of the primary key: a key id is at most 64 characters long, this one has 65"},
		{"bad older id", good, []sealed.Key{{ID: "é", Secret: good.Secret}}, "the id of older key 1: a key id holds only ASCII letters, digits, '.', '_' and '-'; this one has another character at byte 0"},
		{"duplicate id", good, []sealed.Key{key("k2", 2), key("k1", 3)}, `key id "k1" is given more than once`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := sealed.NewRing(tc.primary, tc.older...)
			assert.Nil(t, r)
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestRingKeepsNoReferenceToTheKeyBytes(t *testing.T) {
	k := key("k1", 1)
	r := ring(t, k)
	rec, err := sealed.Seal(r, binding, []byte(plain))
	require.NoError(t, err)
	clear(k.Secret) // the caller wipes its copy
	got, err := sealed.Open(r, binding, rec)
	require.NoError(t, err)
	assert.Equal(t, plain, string(got))
}

func TestRingFormatsItsIDsOnly(t *testing.T) {
	k1, k2 := key("k1", 0xa1), key("k2", 0xb2)
	r := ring(t, k2, k1)
	want := `sealed.Ring{primary: "k2", keys: ["k2" "k1"]}`
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		for _, arg := range []any{r, *r} {
			got := fmt.Sprintf(verb, arg)
			assert.Equal(t, want, got, verb)
			assertNoSecrets(t, got, k1, k2)
		}
	}
	// Inside another value, too.
	got := fmt.Sprintf("%+v", struct{ R sealed.Ring }{*r})
	assert.Contains(t, got, want)
}
