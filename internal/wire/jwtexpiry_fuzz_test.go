package wire

import (
	"encoding/base64"
	"math"
	"strconv"
	"testing"
	"time"
)

// FuzzJWTExpiry feeds arbitrary access tokens to the JWT "exp" reader, and
// JWTs built around an arbitrary exp value. The reader must never panic;
// an exp it accepts lies in (0, 1e11] seconds; a well-formed exp in that
// range is read back exactly; anything else reads as unknown. InferExpiry,
// given only the token, returns no expiry or one within ten years.
//
// Run it with: go test -run '^$' -fuzz '^FuzzJWTExpiry$' -fuzztime 30s ./internal/wire/
func FuzzJWTExpiry(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, tok string, exp float64) {
		if got, ok := jwtExpiry(tok); ok {
			if s := got.Unix(); s < 0 || s > 1e11 {
				t.Fatalf("jwtExpiry(%q) = %v: out of range", tok, got)
			}
		}
		if e, _, _ := InferExpiry(now, nil, tok, ""); !e.IsZero() && (!e.After(now) || e.After(now.Add(MaxLifetime))) {
			t.Fatalf("InferExpiry(%q) = %v: outside (now, now+10y]", tok, e)
		}

		payload := `{"sub":"demo","exp":` + strconv.FormatFloat(exp, 'g', -1, 64) + `}`
		jwt := "eyJhbGciOiJIUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2lnbmF0dXJl"
		got, ok := jwtExpiry(jwt)
		valid := !math.IsNaN(exp) && !math.IsInf(exp, 0) && exp > 0 && exp <= 1e11
		if ok != valid {
			t.Fatalf("jwtExpiry(exp %v): ok = %v, want %v", exp, ok, valid)
		}
		if ok {
			whole, frac := math.Modf(exp)
			diff := float64(got.Unix()) - whole + float64(got.Nanosecond())/1e9 - frac
			if math.Abs(diff) > 1e-3 {
				t.Fatalf("jwtExpiry(exp %v) = %v (%d.%09d), off by %gs", exp, got, got.Unix(), got.Nanosecond(), diff)
			}
		}
	})
}
