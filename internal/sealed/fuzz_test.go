package sealed_test

import (
	"errors"
	"testing"

	"github.com/autorefresh/autorefresh/internal/sealed"
)

// FuzzOpen checks that no record, however damaged, panics Open or IsSealed,
// that Open fails with one of its typed errors, and that only the record
// that was sealed opens, to its plaintext.
func FuzzOpen(f *testing.F) {
	r, err := sealed.NewRing(key("k1", 1))
	if err != nil {
		f.Fatal(err)
	}
	good, err := sealed.Seal(r, binding, []byte(plain))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(plain))
	f.Add([]byte(`{"sealed":1}`))
	f.Add([]byte(`{"sealed":1,"alg":"A256GCM","kid":"k1","nonce":"AAAAAAAAAAAAAAAA","ciphertext":"AAAAAAAAAAAAAAAAAAAAAA=="}`))
	f.Add([]byte(`{"sealed":"1"}`))
	f.Add([]byte(" \n{\"sealed\":"))
	f.Fuzz(func(t *testing.T, record []byte) {
		isSealed := sealed.IsSealed(record)
		got, err := sealed.Open(r, binding, record)
		if err == nil {
			if string(got) != plain {
				t.Fatalf("opened to %q, want %q", got, plain)
			}
			if !isSealed {
				t.Fatal("a record that opens is not IsSealed")
			}
			return
		}
		var se *sealed.Error
		if !errors.As(err, &se) {
			t.Fatalf("error %T is not a *sealed.Error: %v", err, err)
		}
		if !errors.Is(err, sealed.ErrMalformedRecord) && !errors.Is(err, sealed.ErrNotAuthentic) && !errors.Is(err, sealed.ErrUnknownKey) {
			t.Fatalf("error has no known reason: %v", err)
		}
		if !isSealed && !errors.Is(err, sealed.ErrMalformedRecord) {
			t.Fatalf("a record that is not IsSealed failed with %v, want malformed", err)
		}
	})
}
