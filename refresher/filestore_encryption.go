package refresher

import (
	"fmt"
	"path/filepath"

	"github.com/autorefresh/autorefresh/internal/sealed"
)

// FileStoreOption configures a [FileStore].
type FileStoreOption func(*FileStore)

// maxTokenFileSize bounds what a FileStore reads: a sealed token; the
// plain record in it, or a plain file, is bounded by tokenjson.MaxSize.
const maxTokenFileSize = sealed.MaxSize

// WithFileEncryption encrypts the token file with keys (AES-256-GCM, see
// [Keyring]): every save seals the token with the primary key, and a file
// sealed with any of the keys opens. The file then holds one line of JSON
// naming the key ("kid"), with the token encrypted in it.
//
// The record is bound to the file's absolute path, as it was when the
// FileStore was made: a token file copied or moved to another path (another
// account's) does not open there. To move a token, load it through a
// FileStore of the old path and save it through one of the new path.
//
// A file written before encryption was turned on is read as it is, and
// sealed by the next save. Without this option, a FileStore that finds a
// sealed file fails with a [*DecryptError] wrapping [ErrNoKeyring]: it
// never reports an empty store. A nil keys turns encryption off.
func WithFileEncryption(keys *Keyring) FileStoreOption {
	return func(s *FileStore) { s.keys = keys }
}

// fileBinding names the place of the token file at path for its
// encryption: "file:" and the path made absolute.
func fileBinding(path string) []byte {
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	return []byte("file:" + filepath.Clean(path))
}

// seal returns the contents of a token file holding the plain record rec:
// rec itself if the store does not encrypt, else rec sealed, on one line.
func (s *FileStore) seal(rec []byte) ([]byte, error) {
	if s.keys == nil {
		return rec, nil
	}
	data, err := s.keys.Seal(s.binding, rec)
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// open returns the plain record of a token file's contents: data itself
// if it is not sealed (a file written before encryption was turned on).
func (s *FileStore) open(data []byte) ([]byte, error) {
	plain, err := s.keys.OpenRecord(s.binding, data)
	if err != nil {
		return nil, fmt.Errorf("%w (token file %s)", err, s.path)
	}
	return plain, nil
}
