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
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/tokenjson"
)

// Polling bounds of the wait for another process's lock.
const (
	minLockPoll = time.Millisecond
	maxLockPoll = 25 * time.Millisecond
)

// FileStore is a [Store] that keeps the token in a JSON file readable by its
// owner only, and a [Locker] that coordinates every process (and goroutine)
// sharing that file, so that a rotating refresh token is presented once.
//
// Save replaces the file atomically: it writes a temporary file in the same
// directory with mode 0600, syncs it, renames it over the token file and
// syncs the directory, so that a crash leaves either the old token or the
// new one, never a torn file. A crash may leave a temporary file named
// after the token file with a ".tmp-" suffix behind; Load ignores it.
// The parent directory is created with mode 0700 if it does not exist.
//
// Load returns (nil, nil) when the file does not exist yet. It refuses a
// file that its group or others may read or write, and reports a corrupt
// file without quoting its contents.
//
// Lock takes an advisory lock (flock(2) on Unix, LockFileEx on Windows) on
// the sibling file path+".lock", which is created with mode 0600 and never
// removed. The operating system releases the lock when its holder exits,
// however it exits, so a crashed process never blocks the others.
//
// Only the token's AccessToken, TokenType, RefreshToken and Expiry are
// stored; extra fields such as an ID token are not.
//
// A FileStore is safe for concurrent use by multiple goroutines. Make one
// with [NewFileStore]; the zero value is not usable.
type FileStore struct {
	path string
	sem  chan struct{} // holds a value while a caller of Lock holds the lock

	// write writes the encoded token to the temporary file. Tests replace
	// it to interrupt a save half-way.
	write func(f *os.File, data []byte) error
}

// NewFileStore returns a FileStore that keeps the token in the file at path.
// Nothing is read or created until the first call.
func NewFileStore(path string) *FileStore {
	return &FileStore{
		path:  path,
		sem:   make(chan struct{}, 1),
		write: writeAll,
	}
}

func writeAll(f *os.File, data []byte) error {
	_, err := f.Write(data)
	return err
}

// Path returns the path of the token file.
func (s *FileStore) Path() string { return s.path }

// Load reads the token from the file. It returns (nil, nil) if the file does
// not exist, and an error if the file is accessible to its group or others,
// or is not a token file written by a FileStore.
func (s *FileStore) Load(ctx context.Context) (*oauth2.Token, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path)
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
		return nil, fmt.Errorf("refresher: token file %s is not a regular file (mode %s)", s.path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("refresher: token file %s has mode %04o: group or others may read or write it; "+
			"restrict it with \"chmod 600 %s\"", s.path, perm, s.path)
	}
	data, err := io.ReadAll(io.LimitReader(f, tokenjson.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("refresher: read token file: %w", err)
	}
	t, why := tokenjson.Decode(data)
	if why != "" {
		return nil, fmt.Errorf("refresher: token file %s is corrupt: %s", s.path, why)
	}
	return t, nil
}

// Save replaces the file's token with t, atomically, with mode 0600.
func (s *FileStore) Save(ctx context.Context, t *oauth2.Token) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if t == nil || t.AccessToken == "" {
		return errors.New("refresher: save token file: the token has no access token")
	}
	compact, err := tokenjson.Encode(t)
	if err != nil {
		return fmt.Errorf("refresher: save token file: %w", err)
	}
	// The file is indented and ends with a newline, for people who read it.
	var buf bytes.Buffer
	if err := json.Indent(&buf, compact, "", "  "); err != nil {
		return fmt.Errorf("refresher: save token file: %w", err)
	}
	buf.WriteByte('\n')
	data := buf.Bytes()
	if err := s.replace(data); err != nil {
		return fmt.Errorf("refresher: save token file: %w", err)
	}
	return nil
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
// the function that releases it. The lock excludes every other caller of
// Lock on a FileStore for the same path, in this process or another. A wait
// for another process polls the lock every few milliseconds. Calling the
// returned function more than once has no further effect.
func (s *FileStore) Lock(ctx context.Context) (unlock func() error, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Callers in this process queue here, without polling.
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	release := func() { <-s.sem }

	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		release()
		return nil, fmt.Errorf("refresher: lock token file: %w", err)
	}
	// A new Flock opens its own file description: flock(2) locks held
	// through different descriptions exclude each other, even within one
	// process.
	fl := flock.New(s.path+".lock", flock.SetPermissions(0o600))
	if err := waitLock(ctx, fl); err != nil {
		release()
		return nil, err
	}

	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			if uerr := fl.Unlock(); uerr != nil {
				err = fmt.Errorf("refresher: unlock token file: %w", uerr)
			}
			release()
		})
		return err
	}, nil
}

// waitLock takes fl's exclusive lock, polling with a growing delay until it
// is free or ctx is done.
func waitLock(ctx context.Context, fl *flock.Flock) error {
	delay := minLockPoll
	var timer *time.Timer
	for {
		ok, err := fl.TryLock()
		if err != nil {
			return fmt.Errorf("refresher: lock token file: %w", err)
		}
		if ok {
			if timer != nil {
				timer.Stop()
			}
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
			timer.Stop()
			return ctx.Err()
		}
		delay = min(2*delay, maxLockPoll)
	}
}
