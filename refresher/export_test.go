package refresher

import (
	"os"
	"time"
)

// SetFileStoreWrite replaces the function with which s writes an encoded
// token to its temporary file, so that a test can interrupt a save.
func SetFileStoreWrite(s *FileStore, write func(f *os.File, data []byte) error) {
	s.write = write
}

// RefreshAt returns when the Source's current token becomes due (zero if it
// has none, or never becomes due).
func RefreshAt(s *Source) time.Time {
	if e := s.cur.Load(); e != nil {
		return e.refreshAt
	}
	return time.Time{}
}

// Waiters returns how many callers wait for the refresh in progress.
func Waiters(s *Source) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.flight == nil {
		return 0
	}
	return s.flight.waiters
}

// Refreshing reports whether a refresh is in progress.
func Refreshing(s *Source) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flight != nil
}
