//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || windows)

package refresher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
)

// tryLockFile fails: this system has no file lock a FileStore can use.
func tryLockFile(*os.File) (bool, error) {
	return false, fmt.Errorf("file locks on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

func unlockFile(*os.File) error { return nil }

// fileOwner reports no owner.
func fileOwner(fs.FileInfo) (uid int, ok bool) { return 0, false }
