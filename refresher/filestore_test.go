package refresher_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofrs/flock"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/internal/storetest"
	"github.com/autorefresh/autorefresh/refresher"
)

// tokenPath returns the path of a token file in a fresh directory.
func tokenPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "token.json")
}

func skipOnWindows(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix file modes")
	}
}

func TestFileStoreRoundTrip(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "nested", "dir", "token.json")
	s := refresher.NewFileStore(path)

	// Extra fields are not kept, and do not get in the way.
	want := storetest.Token(1).WithExtra(map[string]any{"id_token": "x"})
	require.NoError(t, s.Save(ctx, want))
	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, want, got)

	// Another FileStore on the same path, as another process would see it.
	got, err = refresher.NewFileStore(path).Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, want, got)

	// Unknown expiry and no refresh token survive as such.
	bare := &oauth2.Token{AccessToken: "only-access"}
	require.NoError(t, s.Save(ctx, bare))
	got, err = s.Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, "only-access", got.AccessToken)
	assert.Empty(t, got.RefreshToken)
	assert.True(t, got.Expiry.IsZero(), "expiry: got %v, want zero", got.Expiry)

	// The file is plain JSON with a format version.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(data), `"version": 1`)
}

func TestFileStoreSaveRefusesEmptyToken(t *testing.T) {
	s := refresher.NewFileStore(tokenPath(t))
	assert.Error(t, s.Save(t.Context(), nil))
	assert.Error(t, s.Save(t.Context(), &oauth2.Token{RefreshToken: "r"}))
	_, err := os.Stat(s.Path())
	assert.ErrorIs(t, err, os.ErrNotExist, "a refused token must not create the file")
}

func TestFileStoreWritesMode0600(t *testing.T) {
	skipOnWindows(t)
	ctx, cancel := context.WithTimeout(t.Context(), helperTimeout)
	defer cancel()
	path := tokenPath(t)
	s := refresher.NewFileStore(path)

	require.NoError(t, s.Save(ctx, storetest.Token(1)))
	require.NoError(t, s.Save(ctx, storetest.Token(2))) // a replacement too
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "token file mode")

	unlock, err := s.Lock(ctx)
	require.NoError(t, err)
	require.NoError(t, unlock())
	fi, err = os.Stat(path + ".lock")
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "lock file mode")
}

func TestFileStoreRefusesFileOthersCanAccess(t *testing.T) {
	skipOnWindows(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o602, 0o666} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			path := tokenPath(t)
			s := refresher.NewFileStore(path)
			require.NoError(t, s.Save(t.Context(), storetest.Token(1)))
			require.NoError(t, os.Chmod(path, mode))

			got, err := s.Load(t.Context())
			require.Error(t, err)
			assert.Nil(t, got)
			msg := err.Error()
			assert.Contains(t, msg, path, "the error names the file")
			assert.Contains(t, msg, fmt.Sprintf("%04o", mode), "the error names the mode")
			assert.Contains(t, msg, "chmod 600", "the error says how to fix it")
			assert.NotContains(t, msg, "access-1")
			assert.NotContains(t, msg, "refresh-1")
		})
	}
}

func TestFileStoreMissingFileIsNoToken(t *testing.T) {
	path := tokenPath(t)
	got, err := refresher.NewFileStore(path).Load(t.Context())
	assert.NoError(t, err)
	assert.Nil(t, got)
	_, err = os.Stat(path)
	assert.ErrorIs(t, err, os.ErrNotExist, "Load must not create the file")
}

func TestFileStoreReportsCorruptFileWithoutItsContents(t *testing.T) {
	skipOnWindows(t)
	const secret = "s3cr3t-token-value"
	for _, tc := range []struct {
		name, content, why string
	}{
		{"empty", "", "empty"},
		{"truncated", `{"version":1,"access_token":"` + secret, "invalid JSON"},
		{"not JSON", secret, "invalid JSON"},
		{"torn after a token", `{"version":1,"access_token":"` + secret + `"}` + secret, "invalid JSON"},
		{"not an object", `["` + secret + `"]`, "not an object"},
		{"wrong type", `{"version":1,"access_token":{"v":"` + secret + `"}}`, `"access_token"`},
		{"no version", `{"access_token":"` + secret + `"}`, "version 0"},
		{"future version", `{"version":2,"access_token":"` + secret + `"}`, "version 2"},
		{"no access token", `{"version":1,"refresh_token":"` + secret + `"}`, "no access_token"},
		{"bad expiry", `{"version":1,"access_token":"a","expiry":"` + secret + `"}`, "expiry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tokenPath(t)
			require.NoError(t, os.WriteFile(path, []byte(tc.content), 0o600))
			got, err := refresher.NewFileStore(path).Load(t.Context())
			require.Error(t, err)
			assert.Nil(t, got)
			msg := err.Error()
			assert.Contains(t, msg, path, "the error names the file")
			assert.Contains(t, msg, "corrupt")
			assert.Contains(t, msg, tc.why)
			assert.NotContains(t, msg, secret, "the error quotes the file")
		})
	}
}

// listDir returns the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFileStoreSaveReplacesAtomicallyWithoutTempFiles(t *testing.T) {
	ctx := t.Context()
	path := tokenPath(t)
	dir := filepath.Dir(path)
	s := refresher.NewFileStore(path)

	// Concurrent saves: every one is whole, the last rename wins, and no
	// temporary file stays behind.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for j := range 8 {
				assert.NoError(t, s.Save(ctx, storetest.Token(100*i+j)))
			}
		})
	}
	wg.Wait()
	got, err := s.Load(ctx)
	require.NoError(t, err)
	n, err := strconv.Atoi(strings.TrimPrefix(got.AccessToken, "access-"))
	require.NoError(t, err, "access token %q", got.AccessToken)
	storetest.AssertSameToken(t, storetest.Token(n), got)
	// Beside the token, only the write lock's file.
	assert.Equal(t, []string{"token.json", "token.json.cas.lock"}, listDir(t, dir))

	// A save that fails half-way leaves the old token and no temporary file.
	require.NoError(t, s.Save(ctx, storetest.Token(1)))
	failing := refresher.NewFileStore(path)
	refresher.SetFileStoreWrite(failing, func(f *os.File, data []byte) error {
		if _, err := f.Write(data[:len(data)/2]); err != nil {
			return err
		}
		return errors.New("disk full")
	})
	err = failing.Save(ctx, storetest.Token(2))
	require.ErrorContains(t, err, "disk full")
	assert.NotContains(t, err.Error(), "access-2")
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)
	assert.Equal(t, []string{"token.json", "token.json.cas.lock"}, listDir(t, dir))
}

func TestFileStoreLockExcludesSecondHolder(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), helperTimeout)
	defer cancel()
	path := tokenPath(t)
	a := refresher.NewFileStore(path)
	b := refresher.NewFileStore(path) // its own descriptor, as in another process

	unlockA, err := a.Lock(ctx)
	require.NoError(t, err)

	storetest.AssertLockBusy(t, a) // same FileStore, another goroutine
	storetest.AssertLockBusy(t, b) // another FileStore on the same path
	// What another process sees: the OS lock on the lock file is held.
	other := flock.New(path + ".lock")
	ok, err := other.TryLock()
	require.NoError(t, err)
	assert.False(t, ok, "the lock file is not locked")

	// Waiters of both kinds get the lock, one after the other, once it is
	// released.
	waitA, waitB := storetest.LockAsync(ctx, a), storetest.LockAsync(ctx, b)
	require.NoError(t, unlockA())
	second := waitB
	var r storetest.LockResult
	select {
	case r = <-waitA:
	case r = <-waitB:
		second = waitA
	case <-time.After(helperTimeout):
		t.Fatal("no waiter got the lock after it was released")
	}
	require.NoError(t, r.Err)
	select {
	case r2 := <-second:
		r2.Unlock()
		t.Fatal("two holders at once")
	case <-time.After(20 * time.Millisecond):
	}
	require.NoError(t, r.Unlock())
	r = storetest.Await(t, second)
	require.NoError(t, r.Err)

	// Unlocking twice does not release the lock of the next holder.
	require.NoError(t, unlockA())
	storetest.AssertLockBusy(t, a)
	require.NoError(t, r.Unlock())

	unlock, err := a.Lock(ctx)
	require.NoError(t, err)
	require.NoError(t, unlock())
}

func TestFileStoreLockHonoursContextCancellation(t *testing.T) {
	path := tokenPath(t)
	a := refresher.NewFileStore(path)
	b := refresher.NewFileStore(path)
	unlockA, err := a.Lock(t.Context())
	require.NoError(t, err)

	// A waiter in the same FileStore and a waiter polling the OS lock.
	ctx, cancel := context.WithCancel(t.Context())
	waitA, waitB := storetest.LockAsync(ctx, a), storetest.LockAsync(ctx, b)
	cancel()
	for _, w := range []<-chan storetest.LockResult{waitA, waitB} {
		r := storetest.Await(t, w)
		assert.ErrorIs(t, r.Err, context.Canceled)
		assert.Nil(t, r.Unlock)
	}

	// An already cancelled context fails at once, even with a free lock.
	require.NoError(t, unlockA())
	_, err = b.Lock(ctx)
	assert.ErrorIs(t, err, context.Canceled)

	// The cancelled waiters left nothing held.
	ctx, cancel = context.WithTimeout(t.Context(), helperTimeout)
	defer cancel()
	for _, s := range []*refresher.FileStore{a, b} {
		unlock, err := s.Lock(ctx)
		require.NoError(t, err)
		require.NoError(t, unlock())
	}
}

func TestFileStoreLockHeldByKilledProcessIsReleased(t *testing.T) {
	path := tokenPath(t)
	h := startHelper(t, "hold-lock", helperStoreEnv+"="+path)
	h.Expect("locked")
	s := refresher.NewFileStore(path)
	storetest.AssertLockBusy(t, s)

	h.Kill()
	ctx, cancel := context.WithTimeout(t.Context(), helperTimeout)
	defer cancel()
	unlock, err := s.Lock(ctx)
	require.NoError(t, err, "the lock of a killed process was not released")
	require.NoError(t, unlock())
}

// helperHoldLock takes the lock of the store and holds it until killed.
func helperHoldLock(in *bufio.Scanner, out io.Writer) error {
	s := refresher.NewFileStore(os.Getenv(helperStoreEnv))
	if _, err := s.Lock(context.Background()); err != nil {
		return err
	}
	fmt.Fprintln(out, "locked")
	for in.Scan() {
	}
	return errors.New("not killed")
}

func TestFileStoreKilledMidSaveKeepsOldToken(t *testing.T) {
	ctx := t.Context()
	path := tokenPath(t)
	s := refresher.NewFileStore(path)
	require.NoError(t, s.Save(ctx, storetest.Token(1)))

	h := startHelper(t, "slow-save", helperStoreEnv+"="+path)
	tmp := h.Expect("writing ")
	// The helper is inside Save: half of the new token is on disk, in the
	// temporary file.
	data, err := os.ReadFile(tmp)
	require.NoError(t, err)
	require.NotEmpty(t, data)
	h.Kill()

	got, err := s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(1), got)

	// The debris of the crash does not get in the way of the next save.
	require.NoError(t, s.Save(ctx, storetest.Token(3)))
	got, err = s.Load(ctx)
	require.NoError(t, err)
	storetest.AssertSameToken(t, storetest.Token(3), got)
}

// helperSlowSave saves storetest.Token(2) through a write that stops
// half-way, reports the temporary file's name and waits to be killed.
func helperSlowSave(in *bufio.Scanner, out io.Writer) error {
	s := refresher.NewFileStore(os.Getenv(helperStoreEnv))
	refresher.SetFileStoreWrite(s, func(f *os.File, data []byte) error {
		if _, err := f.Write(data[:len(data)/2]); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		fmt.Fprintln(out, "writing", f.Name())
		for in.Scan() {
		}
		return errors.New("not killed")
	})
	return s.Save(context.Background(), storetest.Token(2))
}

func TestFileStoreKilledAtAnyPointOfSaveLeavesWholeToken(t *testing.T) {
	ctx := t.Context()
	path := tokenPath(t)
	s := refresher.NewFileStore(path)
	require.NoError(t, s.Save(ctx, storetest.Token(0)))

	// Each helper saves tokens in a tight loop and is killed wherever it
	// happens to be once it has saved a few: in the write, the fsync, the
	// rename or between saves.
	last := 0
	for round, saves := range []int{1, 7, 20} {
		first := last + 1
		h := startHelper(t, "save-loop", helperStoreEnv+"="+path, "REFRESHER_TEST_FIRST="+strconv.Itoa(first))
		for range saves {
			h.Expect("saved ")
		}
		h.Kill()

		got, err := s.Load(ctx)
		require.NoError(t, err, "round %d", round)
		n, err := strconv.Atoi(strings.TrimPrefix(got.AccessToken, "access-"))
		require.NoError(t, err, "round %d: access token %q", round, got.AccessToken)
		storetest.AssertSameToken(t, storetest.Token(n), got)
		assert.GreaterOrEqual(t, n, first+saves-1, "round %d: a finished save was lost", round)
		t.Logf("round %d: killed after %d reported saves; the file holds save %d", round, saves, n-first+1)
		last = n
	}
}

// helperSaveLoop saves storetest.Token(n) for n = $REFRESHER_TEST_FIRST,
// n+1, ... until it is killed, and says "saved n" after each save.
func helperSaveLoop(_ *bufio.Scanner, out io.Writer) error {
	s := refresher.NewFileStore(os.Getenv(helperStoreEnv))
	n, err := strconv.Atoi(os.Getenv("REFRESHER_TEST_FIRST"))
	if err != nil {
		return err
	}
	for i := n; ; i++ {
		if err := s.Save(context.Background(), storetest.Token(i)); err != nil {
			return err
		}
		fmt.Fprintln(out, "saved", i)
	}
}

func TestFileStoreSharedBySourcesRefreshesOnce(t *testing.T) {
	ctx := t.Context()
	path := tokenPath(t)
	initial := &oauth2.Token{AccessToken: "a0", RefreshToken: "r0", TokenType: "Bearer"}
	require.NoError(t, refresher.NewFileStore(path).Save(ctx, initial))

	// A rotating server: each refresh token works once.
	var (
		mu      sync.Mutex // guards current
		current = "r0"
		calls   atomic.Int32
	)
	endpoint := refresher.EndpointFunc(func(_ context.Context, t *oauth2.Token) (*oauth2.Token, error) {
		mu.Lock()
		defer mu.Unlock()
		n := calls.Add(1)
		if t.RefreshToken != current {
			return nil, &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant"}
		}
		current = fmt.Sprintf("r%d", n)
		return &oauth2.Token{AccessToken: fmt.Sprintf("a%d", n), RefreshToken: current, TokenType: "Bearer"}, nil
	})

	// Several Sources, each with its own FileStore on the same file, as
	// several processes would have. None is given a token.
	const sources = 6
	var srcs []*refresher.Source
	for range sources {
		srcs = append(srcs, refresher.NewSource(endpoint, refresher.WithStore(refresher.NewFileStore(path))))
	}
	for _, src := range srcs {
		tok, err := src.Token(ctx)
		require.NoError(t, err, "the first token comes from the file")
		assert.Equal(t, "a0", tok.AccessToken)
	}

	// All of them find the token rejected at once.
	var wg sync.WaitGroup
	toks := make([]*oauth2.Token, sources)
	for i, src := range srcs {
		wg.Go(func() {
			tok, err := src.Refresh(ctx, initial)
			assert.NoError(t, err)
			toks[i] = tok
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), calls.Load(), "endpoint calls")
	for i, tok := range toks {
		if assert.NotNil(t, tok, "source %d", i) {
			assert.Equal(t, "a1", tok.AccessToken, "source %d", i)
		}
	}
	stored, err := refresher.NewFileStore(path).Load(ctx)
	require.NoError(t, err)
	assert.Equal(t, "r1", stored.RefreshToken)
}

func init() {
	helperRoles["try-lock"] = helperTryLock
	helperRoles["cas-loop"] = helperCASLoop
}

// helperTryLock uses the store once (Lock and unlock), says "ready", then
// for each line "try" tries to take the lock within 100 ms, and answers
// "locked" (and unlocks), "busy" or "error <message>".
func helperTryLock(in *bufio.Scanner, out io.Writer) error {
	s := refresher.NewFileStore(os.Getenv(helperStoreEnv))
	unlock, err := s.Lock(context.Background())
	if err != nil {
		return err
	}
	if err := unlock(); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")
	for in.Scan() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		unlock, err := s.Lock(ctx)
		cancel()
		switch {
		case err == nil:
			fmt.Fprintln(out, "locked")
			unlock()
		case errors.Is(err, context.DeadlineExceeded):
			fmt.Fprintln(out, "busy")
		default:
			fmt.Fprintln(out, "error", err)
		}
	}
	return nil
}

// tryLockIn asks a try-lock helper for the lock and returns its answer.
func tryLockIn(h *fleet.Helper) string {
	h.Send("try")
	return h.Expect("")
}

func TestFileStoreDirectoryRemovedUnderHeldLockGivesNoSecondLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), helperTimeout)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "app")
	path := filepath.Join(dir, "token.json")
	a := refresher.NewFileStore(path)
	b := refresher.NewFileStore(path) // as another process would have
	require.NoError(t, a.Save(ctx, storetest.Token(1)))
	unlock, err := b.Lock(ctx)
	require.NoError(t, err)
	require.NoError(t, unlock())
	h := startHelper(t, "try-lock", helperStoreEnv+"="+path)
	h.Expect("ready")

	l, err := a.LockLease(ctx)
	require.NoError(t, err)
	require.NoError(t, l.Confirm(ctx))
	require.NoError(t, os.RemoveAll(dir)) // while a refreshes

	// Nobody else gets a lock while a holds its own.
	storetest.AssertLockBusy(t, b)
	assert.Equal(t, "busy", tryLockIn(h), "another process")
	// The holder learns it before presenting a refresh token.
	err = l.Confirm(ctx)
	assert.ErrorIs(t, err, refresher.ErrLeaseLost)
	assert.ErrorContains(t, err, "removed or replaced")
	require.NoError(t, l.Unlock())

	// Once a is done, the removed directory is not recreated by a lock.
	_, err = b.Lock(ctx)
	require.Error(t, err)
	assert.ErrorContains(t, err, "was removed")
	assert.NoDirExists(t, dir)
	assert.Contains(t, tryLockIn(h), "was removed")

	// A save (a new login) brings it back, and everyone follows.
	require.NoError(t, a.Save(ctx, storetest.Token(2)))
	unlock, err = b.Lock(ctx)
	require.NoError(t, err)
	assert.Equal(t, "busy", tryLockIn(h))
	storetest.AssertLockBusy(t, a)
	require.NoError(t, unlock())
	assert.Equal(t, "locked", tryLockIn(h))
	h.Finish()
}

func TestFileStoreLockFileReplacedUnderHeldLockGivesNoSecondLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), helperTimeout)
	defer cancel()
	path := tokenPath(t)
	a := refresher.NewFileStore(path)
	b := refresher.NewFileStore(path)
	unlock, err := b.Lock(ctx)
	require.NoError(t, err)
	require.NoError(t, unlock())

	l, err := a.LockLease(ctx)
	require.NoError(t, err)
	// Someone replaces the lock file.
	require.NoError(t, os.WriteFile(path+".lock.new", nil, 0o600))
	require.NoError(t, os.Rename(path+".lock.new", path+".lock"))

	storetest.AssertLockBusy(t, b)
	assert.ErrorIs(t, l.Confirm(ctx), refresher.ErrLeaseLost)
	require.NoError(t, l.Unlock())

	// b follows the path to the new file, and excludes a store that
	// opens it now.
	unlock, err = b.Lock(ctx)
	require.NoError(t, err)
	storetest.AssertLockBusy(t, refresher.NewFileStore(path))
	storetest.AssertLockBusy(t, a)
	require.NoError(t, unlock())
	l, err = a.LockLease(ctx)
	require.NoError(t, err)
	assert.NoError(t, l.Confirm(ctx), "a follows too")
	require.NoError(t, l.Unlock())
}

func TestFileStoreConfirmHoldsUntilUnlock(t *testing.T) {
	ctx := t.Context()
	s := refresher.NewFileStore(tokenPath(t))
	l, err := s.LockLease(ctx)
	require.NoError(t, err)
	assert.NoError(t, l.Confirm(ctx))
	assert.NoError(t, l.Confirm(ctx))
	require.NoError(t, l.Unlock())
	assert.NoError(t, l.Unlock(), "a second unlock does nothing")
	err = l.Confirm(ctx)
	assert.ErrorIs(t, err, refresher.ErrLeaseLost)
	assert.ErrorContains(t, err, "released")
	require.NoError(t, s.Close())
}

func TestFileStoreRefusesFilesOwnedByAnotherUser(t *testing.T) {
	skipOnWindows(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give a file to another user")
	}
	const other = 4242
	ctx := t.Context()
	path := tokenPath(t)
	s := refresher.NewFileStore(path)
	require.NoError(t, s.Save(ctx, storetest.Token(1)))
	require.NoError(t, os.Chown(path, other, other))

	got, err := s.Load(ctx)
	require.Error(t, err)
	assert.Nil(t, got)
	for _, want := range []string{path, "owned by uid 4242", "chown 0 " + path} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "refresh-1")
	_, err = s.CompareAndSwap(ctx, storetest.Token(1), storetest.Token(2))
	assert.ErrorContains(t, err, "owned by uid 4242", "a fenced save does not adopt it either")

	// The lock file too.
	require.NoError(t, os.Chown(path, 0, 0))
	require.NoError(t, os.WriteFile(path+".lock", nil, 0o600))
	require.NoError(t, os.Chown(path+".lock", other, other))
	_, err = s.Lock(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "lock file "+path+".lock is owned by uid 4242")
}

func TestFileStoreCompareAndSwap(t *testing.T) {
	tok := storetest.Token
	tests := []struct {
		name       string
		stored     *oauth2.Token
		prev, next *oauth2.Token
		swapped    bool
		want       *oauth2.Token
	}{
		{name: "absent, prev nil", prev: nil, next: tok(1), swapped: true, want: tok(1)},
		{name: "absent, prev set", prev: tok(1), next: tok(2), swapped: false, want: nil},
		{name: "match", stored: tok(1), prev: tok(1), next: tok(2), swapped: true, want: tok(2)},
		{name: "match on the refresh token alone", stored: tok(1),
			prev: &oauth2.Token{AccessToken: "other", RefreshToken: "refresh-1"}, next: tok(2), swapped: true, want: tok(2)},
		{name: "mismatch", stored: tok(3), prev: tok(1), next: tok(2), swapped: false, want: tok(3)},
		{name: "present, prev nil", stored: tok(3), prev: nil, next: tok(2), swapped: false, want: tok(3)},
		{name: "match, next nil removes", stored: tok(1), prev: tok(1), next: nil, swapped: true, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "nested", "token.json")
			s := refresher.NewFileStore(path)
			if tc.stored != nil {
				require.NoError(t, s.Save(ctx, tc.stored))
			}
			swapped, err := s.CompareAndSwap(ctx, tc.prev, tc.next)
			require.NoError(t, err)
			assert.Equal(t, tc.swapped, swapped, "swapped")
			got, err := s.Load(ctx)
			require.NoError(t, err)
			if tc.want == nil {
				assert.Nil(t, got)
				return
			}
			storetest.AssertSameToken(t, tc.want, got)
		})
	}

	t.Run("no directory is created for a token that is not there", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "gone")
		swapped, err := refresher.NewFileStore(filepath.Join(dir, "token.json")).CompareAndSwap(t.Context(), tok(1), tok(2))
		require.NoError(t, err)
		assert.False(t, swapped)
		assert.NoDirExists(t, dir)
	})
	t.Run("corrupt file", func(t *testing.T) {
		path := tokenPath(t)
		require.NoError(t, os.WriteFile(path, []byte("refresh-1 garbage"), 0o600))
		_, err := refresher.NewFileStore(path).CompareAndSwap(t.Context(), tok(1), tok(2))
		assert.ErrorContains(t, err, "corrupt")
		data, _ := os.ReadFile(path)
		assert.Equal(t, "refresh-1 garbage", string(data), "not overwritten")
	})
}

// A refresh's holder saves under its own lock: the fenced save neither
// waits for that lock nor for another process's.
func TestFileStoreCompareAndSwapUnderHeldLock(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), helperTimeout)
	defer cancel()
	path := tokenPath(t)
	s := refresher.NewFileStore(path)
	require.NoError(t, s.Save(ctx, storetest.Token(1)))
	unlock, err := s.Lock(ctx)
	require.NoError(t, err)
	swapped, err := s.CompareAndSwap(ctx, storetest.Token(1), storetest.Token(2))
	require.NoError(t, err)
	assert.True(t, swapped)
	swapped, err = refresher.NewFileStore(path).CompareAndSwap(ctx, storetest.Token(2), storetest.Token(3))
	require.NoError(t, err)
	assert.True(t, swapped, "another store, while the lock is held")
	require.NoError(t, unlock())
}

// Processes and goroutines advance a counter kept in the token file with
// fenced saves only (no refresh lock): each swap that reports success
// advances it by one, so the counter ends equal to the number of swaps
// that succeeded. A lost update would leave it short.
func TestFileStoreCompareAndSwapIsAtomicAcrossProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), helperTimeout)
	defer cancel()
	path := tokenPath(t)
	require.NoError(t, refresher.NewFileStore(path).Save(ctx, storetest.Token(0)))

	const processes, goroutines = 3, 3
	hs := helperBinary.StartN(t, processes, "cas-loop", helperStoreEnv+"="+path)
	for _, h := range hs {
		h.Expect("ready")
	}
	for _, h := range hs {
		h.Send("go")
	}
	var local atomic.Int64
	var wg sync.WaitGroup
	for range goroutines {
		s := refresher.NewFileStore(path)
		wg.Go(func() {
			n, err := casLoop(ctx, s)
			assert.NoError(t, err)
			local.Add(int64(n))
		})
	}
	wg.Wait()
	total := int(local.Load())
	for _, h := range hs {
		n, err := strconv.Atoi(h.Expect("swapped "))
		require.NoError(t, err)
		total += n
	}
	fleet.Stop(hs)

	got, err := refresher.NewFileStore(path).Load(ctx)
	require.NoError(t, err)
	n, err := strconv.Atoi(strings.TrimPrefix(got.AccessToken, "access-"))
	require.NoError(t, err)
	t.Logf("%d successful swaps from %d processes and %d goroutines", total, processes, goroutines)
	assert.Equal(t, total, n, "every successful swap advanced the counter by one")
	assert.Equal(t, casRounds*(processes+goroutines), total, "every swapper finished its rounds")
}

// casRounds is how many increments each swapper of
// TestFileStoreCompareAndSwapIsAtomicAcrossProcesses makes.
const casRounds = 40

// casLoop advances the counter in the token file casRounds times with
// fenced saves, retrying on a conflict, and returns how many swaps
// succeeded.
func casLoop(ctx context.Context, s *refresher.FileStore) (int, error) {
	swaps := 0
	for swaps < casRounds {
		cur, err := s.Load(ctx)
		if err != nil {
			return swaps, err
		}
		n, err := strconv.Atoi(strings.TrimPrefix(cur.AccessToken, "access-"))
		if err != nil {
			return swaps, err
		}
		ok, err := s.CompareAndSwap(ctx, cur, storetest.Token(n+1))
		if err != nil {
			return swaps, err
		}
		if ok {
			swaps++
		}
	}
	return swaps, nil
}

// helperCASLoop says "ready", waits for "go", runs casLoop and answers
// "swapped n".
func helperCASLoop(in *bufio.Scanner, out io.Writer) error {
	s := refresher.NewFileStore(os.Getenv(helperStoreEnv))
	fmt.Fprintln(out, "ready")
	if !in.Scan() {
		return in.Err()
	}
	n, err := casLoop(context.Background(), s)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "swapped", n)
	for in.Scan() {
	}
	return nil
}
