package refresher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/tokenjson"
)

// Polling bounds of the wait for another process's lock.
const (
	minLockPoll = time.Millisecond
	maxLockPoll = 25 * time.Millisecond
)

// FileStore is a [Store] that keeps the token in a JSON file readable by its
// owner only; a [CompareAndSwapper]; and a [LeaseLocker] that coordinates
// every process (and goroutine) sharing that file, so that a rotating
// refresh token is presented once.
//
// Save replaces the file atomically: it writes a temporary file in the same
// directory with mode 0600, syncs it, renames it over the token file and
// syncs the directory, so that a crash leaves either the old token or the
// new one, never a torn file. A crash may leave a temporary file named
// after the token file with a ".tmp-" suffix behind; Load ignores it.
// Save creates the parent directory with mode 0700 if it does not exist.
//
// Load returns (nil, nil) when the file does not exist yet. It refuses a
// file that its group or others may read or write, or that another user
// owns, and reports a corrupt file without quoting its contents.
//
// # Writes
//
// Save and CompareAndSwap hold a short advisory lock on the sibling file
// path+".cas.lock" while they read, compare and rename: every write by a
// FileStore, in any process, is atomic with respect to every other. That
// lock is not the refresh lock: CompareAndSwap works the same whether or
// not its caller holds [FileStore.Lock], and never waits for a refresh.
//
// # The refresh lock
//
// Lock takes an advisory lock (flock(2) on Unix, LockFileEx on Windows) on
// the sibling file path+".lock", created with mode 0600 and never removed.
// The operating system releases the lock when its holder exits, however it
// exits, so a crashed process never blocks the others.
//
// A FileStore keeps its lock file open from its first Lock on, and locks
// that open file, not whatever the path names later: if the directory is
// removed, or the lock file removed or replaced, while a process holds the
// lock, every FileStore that had opened the old file still waits for that
// holder. Once it has the old lock (no holder of it is refreshing), it
// follows the path: it locks the file the path names now, creating it if
// the directory still exists. It does not recreate a directory that was
// removed under it: Lock fails, with an error saying so, until a Save (a
// new login) or a person recreates it. The holder's
// [Lease.Confirm] reports [ErrLeaseLost] as soon as the path no longer
// names the file it locked, so the Source presents no refresh token then.
// Only a FileStore whose first Lock comes after the removal creates a new
// directory and lock file on its own, as on first use. Files the lock uses
// must belong to the current user.
//
// # Encryption
//
// With [WithFileEncryption], the file holds the token sealed with
// AES-256-GCM under a [Keyring]'s primary key, bound to the file's path;
// a file written in the clear before is read, and sealed by the next save.
// Mode 0600 still applies.
//
// Only the token's AccessToken, TokenType, RefreshToken and Expiry are
// stored; extra fields such as an ID token are not.
//
// A FileStore is safe for concurrent use by multiple goroutines. Make one
// with [NewFileStore]; the zero value is not usable.
type FileStore struct {
	path string

	// sem holds a value while a caller of Lock holds the lock, and while
	// Close runs; lf belongs to whoever holds it.
	sem chan struct{}
	lf  *os.File // the lock file this store locks, open from the first Lock on

	// write writes the encoded token to the temporary file. Tests replace
	// it to interrupt a save half-way.
	write func(f *os.File, data []byte) error

	keys    *Keyring // seals the token; nil: kept in the clear
	binding []byte   // what a sealed token is bound to: see fileBinding
}

var (
	_ LeaseLocker       = (*FileStore)(nil)
	_ CompareAndSwapper = (*FileStore)(nil)
)

// NewFileStore returns a FileStore that keeps the token in the file at path,
// configured by opts, such as [WithFileEncryption]. Nothing is read or
// created until the first call.
func NewFileStore(path string, opts ...FileStoreOption) *FileStore {
	s := &FileStore{
		path:  path,
		sem:   make(chan struct{}, 1),
		write: writeAll,
	}
	for _, o := range opts {
		o(s)
	}
	if s.keys != nil {
		s.binding = fileBinding(path)
	}
	return s
}

func writeAll(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}

// Path returns the path of the token file.
func (s *FileStore) Path() string { return s.path }

// Load reads the token from the file. It returns (nil, nil) if the file does
// not exist, and an error if the file is accessible to its group or others,
// is owned by another user, or is not a token file written by a FileStore.
func (s *FileStore) Load(ctx context.Context) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.readTokenFile()
}

// readTokenFile reads the token file; see [FileStore.Load].
func (s *FileStore) readTokenFile() (*oauth2.Token, error) {
	path := s.path
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("refresher: read token file: %w", err)
	}
	defer f.Close()

	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("refresher: read token file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("refresher: token file %s is not a regular file (mode %s)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("refresher: token file %s has mode %04o: group or others may read or write it; "+
			"restrict it with \"chmod 600 %s\"", path, perm, path)
	}
	if err := checkOwner("token file", path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("refresher: read token file: %w", err)
	}
	if data, err = s.open(data); err != nil {
		return nil, err
	}
	t, why := tokenjson.Decode(data)
	if why != "" {
		return nil, fmt.Errorf("refresher: token file %s is corrupt: %s", path, why)
	}
	return t, nil
}

// checkOwner refuses a file that another user owns: in a directory others
// can write to, it may have been planted (a token to adopt, a lock to hold).
func checkOwner(what, path string, fi fs.FileInfo) error {
	uid, ok := fileOwner(fi)
	if !ok {
		return nil
	}
	if me := os.Geteuid(); uid != me {
		return fmt.Errorf("refresher: %s %s is owned by uid %d, not by this process's user (uid %d): "+
			"refusing to use it; if it is yours, \"chown %d %s\", else remove it", what, path, uid, me, me, path)
	}
	return nil
}

// encodeTokenFile returns the contents of a token file holding t: sealed
// if the store encrypts, else indented; ending with a newline, for people
// who read it.
func (s *FileStore) encodeTokenFile(t *oauth2.Token) ([]byte, error) {
	if t == nil || t.AccessToken == "" {
		return nil, errors.New("the token has no access token")
	}
	compact, err := tokenjson.Encode(t)
	if err != nil {
		return nil, err
	}
	if s.keys != nil {
		return s.seal(compact)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "", "  "); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// Save replaces the file's token with t, atomically, with mode 0600.
func (s *FileStore) Save(ctx context.Context, t *oauth2.Token) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := s.encodeTokenFile(t)
	if err != nil {
		return fmt.Errorf("refresher: save token file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("refresher: save token file: %w", err)
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.replace(data); err != nil {
		return fmt.Errorf("refresher: save token file: %w", err)
	}
	return nil
}

// CompareAndSwap saves next if the file holds a token with the
// [Fingerprint] of prev (prev nil: if there is no token file), and reports
// whether it saved; next nil removes the token file. It reads, compares and
// renames under the write lock (see "Writes" in [FileStore]), so it is
// atomic with respect to every Save and CompareAndSwap on the path, in
// every process, whether or not its caller holds the refresh lock. If prev
// is not nil and the directory does not exist, it reports false without
// recreating the directory.
func (s *FileStore) CompareAndSwap(ctx context.Context, prev, next *oauth2.Token) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	var data []byte
	if next != nil {
		var err error
		if data, err = s.encodeTokenFile(next); err != nil {
			return false, fmt.Errorf("refresher: save token file: %w", err)
		}
	}
	dir := filepath.Dir(s.path)
	if prev == nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, fmt.Errorf("refresher: save token file: %w", err)
		}
	} else if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	cur, err := s.readTokenFile()
	if err != nil {
		return false, err
	}
	if Fingerprint(cur) != Fingerprint(prev) {
		return false, nil
	}
	if next == nil {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("refresher: remove token file: %w", err)
		}
		return true, syncDir(dir)
	}
	if err := s.replace(data); err != nil {
		return false, fmt.Errorf("refresher: save token file: %w", err)
	}
	return true, nil
}

// replace writes data to a temporary file and renames it over the token
// file, syncing both the file and the directory.
func (s *FileStore) replace(data []byte) (err error) {
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(s.path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// CreateTemp already uses 0600; say so in case that ever changes.
	if err := f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return err
	}
	if err := s.write(f, data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. File systems that cannot sync a
// directory, and Windows, where a directory cannot be opened for it, are
// left as they are.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, errors.ErrUnsupported) {
		return err
	}
	return nil
}

// Lock waits until it holds the store's lock, or ctx is done, and returns
// the function that releases it: it is [FileStore.LockLease] without the
// confirmation.
func (s *FileStore) Lock(ctx context.Context) (unlock func() error, err error) {
	l, err := s.LockLease(ctx)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// LockLease waits until it holds the store's lock, or ctx is done. The lock
// excludes every other holder on a FileStore for the same path, in this
// process or another, even if the directory is removed or the lock file
// replaced meanwhile (see "The refresh lock" in [FileStore]). A wait for
// another process polls the lock every few milliseconds.
//
// The lease's Confirm checks that the path still names the lock file this
// holder locked, and returns an error wrapping [ErrLeaseLost] if it does
// not. Unlock releases the lock; calling it more than once has no further
// effect.
func (s *FileStore) LockLease(ctx context.Context) (Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Callers in this process queue here, without polling.
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	f, err := s.lockAnchor(ctx)
	if err != nil {
		<-s.sem
		return nil, err
	}
	return &fileLease{s: s, f: f}, nil
}

// maxFollows bounds how many times in a row Lock follows a lock file that
// is being replaced.
const maxFollows = 8

// lockAnchor locks s.lf, opening it first if this store never has, then
// follows the path if the lock file was replaced (see "The refresh lock" in
// [FileStore]). It returns the locked file. The caller holds s.sem.
func (s *FileStore) lockAnchor(ctx context.Context) (*os.File, error) {
	lockPath := s.path + ".lock"
	if s.lf == nil {
		// First use: create what is missing.
		if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
			return nil, fmt.Errorf("refresher: lock token file: %w", err)
		}
		f, err := openLockFile(lockPath)
		if err != nil {
			return nil, err
		}
		s.lf = f
	}
	if err := waitLockFile(ctx, s.lf); err != nil {
		return nil, err
	}
	for range maxFollows {
		same, err := isFileAt(s.lf, lockPath)
		if err != nil {
			unlockFile(s.lf)
			return nil, fmt.Errorf("refresher: lock token file: %w", err)
		}
		if same {
			return s.lf, nil
		}
		// The path no longer names the file this store locked. Every
		// process that opened that file waits for us now, so none is
		// refreshing: follow the path, unless the directory is gone.
		if _, err := os.Stat(filepath.Dir(s.path)); errors.Is(err, fs.ErrNotExist) {
			unlockFile(s.lf)
			return nil, fmt.Errorf("refresher: lock token file: the directory %s was removed while the token file was in use; "+
				"not recreating it, since a process may still be refreshing with the token it held: "+
				"save a token (log in again) or recreate the directory to go on", filepath.Dir(s.path))
		}
		nf, err := openLockFile(lockPath)
		if err != nil {
			unlockFile(s.lf)
			return nil, err
		}
		if err := waitLockFile(ctx, nf); err != nil {
			nf.Close()
			unlockFile(s.lf)
			return nil, err
		}
		unlockFile(s.lf)
		s.lf.Close()
		s.lf = nf
	}
	unlockFile(s.lf)
	return nil, fmt.Errorf("refresher: lock token file: %s was replaced %d times while being locked", lockPath, maxFollows)
}

// openLockFile opens the lock file at path, creating it with mode 0600 if
// it does not exist, and refuses one that another user owns.
func openLockFile(path string) (*os.File, error) {
	flags := os.O_CREATE | os.O_RDONLY
	if runtime.GOOS == "aix" || runtime.GOOS == "solaris" || runtime.GOOS == "illumos" {
		flags = os.O_CREATE | os.O_RDWR
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("refresher: lock token file: %w", err)
	}
	fi, err := f.Stat()
	if err == nil {
		err = checkOwner("lock file", path, fi)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// isFileAt reports whether path names the file f has open. A missing path
// is not an error: it names no file.
func isFileAt(f *os.File, path string) (bool, error) {
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	named, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, named), nil
}

// waitLockFile takes f's exclusive lock, polling with a growing delay until
// it is free or ctx is done.
func waitLockFile(ctx context.Context, f *os.File) error {
	delay := minLockPoll
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		ok, err := tryLockFile(f)
		if err != nil {
			return fmt.Errorf("refresher: lock token file: %w", err)
		}
		if ok {
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(delay)
		} else {
			timer.Reset(delay)
		}
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, maxLockPoll)
	}
}

// lockWrites takes the write lock on path+".cas.lock" (see "Writes" in
// [FileStore]) and returns the function that releases it. The directory
// must exist.
func (s *FileStore) lockWrites(ctx context.Context) (unlock func(), err error) {
	path := s.path + ".cas.lock"
	for range maxFollows {
		f, err := openLockFile(path)
		if err != nil {
			return nil, err
		}
		if err := waitLockFile(ctx, f); err != nil {
			f.Close()
			return nil, err
		}
		// Another writer may have locked a file that was replaced since
		// we opened ours: lock the one the path names.
		same, err := isFileAt(f, path)
		if err == nil && same {
			return func() {
				unlockFile(f)
				f.Close()
			}, nil
		}
		unlockFile(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("refresher: lock token file for writing: %w", err)
		}
	}
	return nil, fmt.Errorf("refresher: lock token file for writing: %s was replaced %d times while being locked", path, maxFollows)
}

// Close closes the lock file the store keeps open between locks, waiting
// for a holder of the lock to release it first. A FileStore that is no
// longer used may be left to the garbage collector instead; one used again
// after Close opens its lock file anew.
func (s *FileStore) Close() error {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.lf == nil {
		return nil
	}
	err := s.lf.Close()
	s.lf = nil
	return err
}

// fileLease is the lock held through a FileStore.
type fileLease struct {
	s        *FileStore
	f        *os.File    // the locked lock file
	released atomic.Bool // Unlock was called
	once     sync.Once   // guards the release
	uerr     error       // the release's outcome
}

// Confirm checks that the path still names the lock file this holder
// locked. It returns an error wrapping [ErrLeaseLost] if the lock file, or
// its directory, was removed or replaced (a process that opens the path
// now would lock another file), or if Unlock was called.
func (l *fileLease) Confirm(ctx context.Context) error {
	lockPath := l.s.path + ".lock"
	if l.released.Load() {
		return fmt.Errorf("refresher: lock on %s was released: %w", lockPath, ErrLeaseLost)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	same, err := isFileAt(l.f, lockPath)
	if err != nil {
		return fmt.Errorf("refresher: confirm lock on %s: %w", lockPath, err)
	}
	if !same {
		return fmt.Errorf("refresher: lock file %s was removed or replaced while held: %w", lockPath, ErrLeaseLost)
	}
	return nil
}

// Unlock releases the lock.
func (l *fileLease) Unlock() error {
	l.once.Do(func() {
		l.released.Store(true)
		if err := unlockFile(l.f); err != nil {
			l.uerr = fmt.Errorf("refresher: unlock token file: %w", err)
		}
		<-l.s.sem
	})
	return l.uerr
}

// Clear deletes the token file, for [Source.Logout]. It removes what it
// read, compared and swapped like a save, so a token another process saved
// meanwhile is not removed unseen.
func (s *FileStore) Clear(ctx context.Context) error {
	for range 3 {
		cur, err := s.Load(ctx)
		if err != nil || cur == nil {
			return err
		}
		swapped, err := s.CompareAndSwap(ctx, cur, nil)
		if err != nil || swapped {
			return err
		}
	}
	return errors.New("refresher: clear token file: it kept changing")
}
