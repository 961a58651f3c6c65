package refresher_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/sealed"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
)

// tokensOnDisk returns the access and refresh tokens of toks that some
// file under dir holds: the token file, its lock files, any temporary file.
func tokensOnDisk(t *testing.T, dir string, toks ...*oauth2.Token) []string {
	t.Helper()
	var found []string
	files := 0
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		found = append(found, storetest.SecretsIn(filepath.Base(path), data, toks...)...)
		return nil
	})
	require.NoError(t, err)
	require.NotZero(t, files)
	return found
}

// fileKeyID returns the key id of the sealed token file at path.
func fileKeyID(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	id, err := sealed.KeyID(data)
	require.NoError(t, err)
	return id
}

func encryptedFileStore(t *testing.T, path string, keys ...refresher.EncryptionKey) *refresher.FileStore {
	t.Helper()
	return refresher.NewFileStore(path, refresher.WithFileEncryption(newKeyring(t, keys[0], keys[1:]...)))
}

func TestFileStoreEncryptedFileHoldsNoTokenValue(t *testing.T) {
	ctx := t.Context()
	tok1, tok2 := storetest.Token(1), storetest.Token(2)

	// Without encryption, the check finds the tokens: it can fail.
	plainPath := tokenPath(t)
	require.NoError(t, refresher.NewFileStore(plainPath).Save(ctx, tok1))
	assert.ElementsMatch(t, []string{"token.json: access-1", "token.json: refresh-1"},
		tokensOnDisk(t, filepath.Dir(plainPath), tok1))

	path := tokenPath(t)
	s := encryptedFileStore(t, path, encKey("k1", 1))
	require.NoError(t, s.Save(ctx, tok1))
	assert.Empty(t, tokensOnDisk(t, filepath.Dir(path), tok1))
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, tok1, got)

	// The fenced save, under the refresh lock, seals too.
	unlock, err := s.Lock(ctx)
	require.NoError(t, err)
	swapped, err := s.CompareAndSwap(ctx, tok1, tok2)
	require.NoError(t, err)
	assert.True(t, swapped)
	swapped, err = s.CompareAndSwap(ctx, tok1, storetest.Token(3))
	require.NoError(t, err)
	assert.False(t, swapped, "the file no longer holds tok1")
	require.NoError(t, unlock())
	assert.Empty(t, tokensOnDisk(t, filepath.Dir(path), tok1, tok2))

	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, tok2, got)
	assert.Equal(t, "k1", fileKeyID(t, path))

	// One line of JSON, still readable by its owner only.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(data), `{"sealed":1,"alg":"A256GCM","kid":"k1",`), "got %s", data)
	assert.Equal(t, 1, strings.Count(string(data), "\n"))
	if fi, err := os.Stat(path); assert.NoError(t, err) {
		skipOnWindows(t)
		assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	}
}

func TestFileStoreEncryptedRefreshSavesNoTokenValue(t *testing.T) {
	ctx := t.Context()
	path := tokenPath(t)
	s := encryptedFileStore(t, path, encKey("k1", 1))
	require.NoError(t, s.Save(ctx, storetest.Token(1)))

	src := refresher.NewSource(refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return storetest.Token(2), nil
	}), refresher.WithStore(s))
	tok, err := src.Token(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), tok)
	tok, err = src.Refresh(ctx, tok)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), tok)

	assert.Empty(t, tokensOnDisk(t, filepath.Dir(path), storetest.Token(1), storetest.Token(2)))
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)
}

func TestFileStoreEncryptionKeyRotation(t *testing.T) {
	ctx := t.Context()
	path := tokenPath(t)
	k1, k2 := encKey("2026-01", 1), encKey("2026-07", 2)

	require.NoError(t, encryptedFileStore(t, path, k1).Save(ctx, storetest.Token(1)))
	assert.Equal(t, "2026-01", fileKeyID(t, path))

	// A new primary key: the old file opens, the next save uses the new key.
	rotated := encryptedFileStore(t, path, k2, k1)
	got, err := rotated.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
	swapped, err := rotated.CompareAndSwap(ctx, got, storetest.Token(2))
	require.NoError(t, err)
	require.True(t, swapped)
	assert.Equal(t, "2026-07", fileKeyID(t, path))

	// The old key can now go; a store with only the old key fails clearly.
	got, err = encryptedFileStore(t, path, k2).Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)

	got, err = encryptedFileStore(t, path, k1).Load(ctx)
	storetest.AssertDecryptError(t, got, err, refresher.ErrUnknownKey, "2026-07")
}

func TestFileStoreEncryptedFileCopiedToAnotherPathDoesNotOpen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	alicePath, bobPath := filepath.Join(dir, "alice", "token.json"), filepath.Join(dir, "bob", "token.json")
	k := encKey("k1", 1)
	alice, bob := encryptedFileStore(t, alicePath, k), encryptedFileStore(t, bobPath, k)
	require.NoError(t, alice.Save(ctx, storetest.Token(1)))
	require.NoError(t, bob.Save(ctx, storetest.Token(2)))

	// Someone who can write bob's file copies alice's over it.
	data, err := os.ReadFile(alicePath)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bobPath, data, 0o600))

	got, err := bob.Load(ctx)
	assert.Nil(t, got, "bob's store must not hand out alice's token")
	require.ErrorIs(t, err, refresher.ErrNotAuthentic)
	assert.Contains(t, err.Error(), "(token file "+bobPath+")")

	// Nor does a fenced save overwrite what it cannot read.
	swapped, err := bob.CompareAndSwap(ctx, storetest.Token(2), storetest.Token(3))
	assert.False(t, swapped)
	require.ErrorIs(t, err, refresher.ErrNotAuthentic)

	got, err = alice.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
}

func TestFileStoreWrongOrMissingEncryptionKeyIsAClearError(t *testing.T) {
	ctx := t.Context()
	path := tokenPath(t)
	right, wrong := encKey("k1", 1), encKey("k1", 9) // same id, other bytes
	require.NoError(t, encryptedFileStore(t, path, right).Save(ctx, storetest.Token(1)))

	for _, tc := range []struct {
		name  string
		store *refresher.FileStore
		want  error
		msg   string
	}{
		{"wrong key", encryptedFileStore(t, path, wrong), refresher.ErrNotAuthentic,
			`refresher: cannot decrypt the stored token sealed with key "k1": the record does not authenticate: ` +
				`the key is wrong, or the record was altered or moved from another store key (token file ` + path + `)`},
		{"no key", refresher.NewFileStore(path), refresher.ErrNoKeyring,
			`refresher: cannot decrypt the stored token sealed with key "k1": the record is encrypted and no keyring was given (token file ` + path + `)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.store.Load(ctx)
			storetest.AssertDecryptError(t, got, err, tc.want, "k1")
			assert.Equal(t, tc.msg, err.Error())
			assertNoKeyBytes(t, err.Error(), right, wrong)
		})
	}
}

func TestFileStorePlainFileIsReadAndSealedOnNextSave(t *testing.T) {
	ctx := t.Context()
	path := tokenPath(t)
	require.NoError(t, refresher.NewFileStore(path).Save(ctx, storetest.Token(1)))

	s := encryptedFileStore(t, path, encKey("k1", 1))
	got, err := s.Load(ctx)
	require.NoError(t, err, "a file from before encryption is read")
	storetest.AssertSameToken(t, storetest.Token(1), got)

	swapped, err := s.CompareAndSwap(ctx, got, storetest.Token(2))
	require.NoError(t, err)
	require.True(t, swapped)
	assert.Empty(t, tokensOnDisk(t, filepath.Dir(path), storetest.Token(1), storetest.Token(2)))
	assert.Equal(t, "k1", fileKeyID(t, path))
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(2), got)
}

func TestFileStoreEncryptionBindsTheAbsolutePath(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	t.Chdir(dir)
	k := encKey("k1", 1)
	require.NoError(t, encryptedFileStore(t, "token.json", k).Save(ctx, storetest.Token(1)))

	// The same file, named another way, opens.
	require.NoError(t, os.Mkdir("sub", 0o700))
	for _, name := range []string{filepath.Join(dir, "token.json"), "./sub/../token.json"} {
		got, err := encryptedFileStore(t, name, k).Load(ctx)
		require.NoError(t, err, name)
		storetest.AssertSameToken(t, storetest.Token(1), got)
	}
}
