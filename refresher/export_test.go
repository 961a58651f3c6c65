package refresher

import "os"

// SetFileStoreWrite replaces the function with which s writes an encoded
// token to its temporary file, so that a test can interrupt a save.
func SetFileStoreWrite(s *FileStore, write func(f *os.File, data []byte) error) {
	s.write = write
}
