package wire

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// MaxLifetime is the longest token lifetime taken at its word: an expires_in
// or a JWT exp further away than this is treated as unknown.
const MaxLifetime = 10 * 365 * 24 * time.Hour

// maxJWTPayload bounds the part of an access token decoded to find "exp".
const maxJWTPayload = 64 << 10

// InferExpiry returns when an access token received at now expires, and its
// lifetime in whole seconds (0 if unknown):
//
//  1. from expiresIn, the raw expires_in value (a JSON number, or a string
//     holding one), when it is present and plausible;
//  2. else from the "exp" claim of access when it is a JWT, read without
//     verifying the signature (the client cannot verify it and need not).
//     If date (the answer's Date header) is valid, the lifetime is measured
//     against the server's clock, so that a skewed local clock does not
//     shorten or lengthen it;
//  3. else unknown (the zero time): the token is refreshed reactively only.
//
// A value outside (0, 10 years] is ignored; note then says why, for a log.
func InferExpiry(now time.Time, expiresIn any, access, date string) (expiry time.Time, secs int64, note string) {
	if expiresIn != nil {
		s, err := seconds(expiresIn)
		switch {
		case err != nil:
			note = "expires_in is not a number; ignored"
		case s <= 0 || s > MaxLifetime.Seconds():
			note = fmt.Sprintf("expires_in of %g seconds is implausible; treated as unknown", s)
		default:
			d := time.Duration(s * float64(time.Second))
			return now.Add(d), int64(math.Round(s)), ""
		}
	}
	exp, ok := jwtExpiry(access)
	if !ok {
		return time.Time{}, 0, note
	}
	lifetime := exp.Sub(now)
	if t, err := http.ParseTime(date); err == nil {
		lifetime = exp.Sub(t)
	}
	if lifetime <= 0 || lifetime > MaxLifetime {
		if note != "" {
			note += "; "
		}
		return time.Time{}, 0, note + fmt.Sprintf("the access token's exp claim is %s away; treated as unknown", lifetime.Round(time.Second))
	}
	return now.Add(lifetime), int64(lifetime / time.Second), note
}

// seconds reads an expires_in value.
func seconds(v any) (float64, error) {
	var s string
	switch v := v.(type) {
	case json.Number:
		s = string(v)
	case string:
		s = strings.TrimSpace(v)
	case float64:
		return finite(v)
	case int64:
		return float64(v), nil
	case int:
		return float64(v), nil
	default:
		return 0, fmt.Errorf("expires_in is a %T", v)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return finite(f)
}

func finite(f float64) (float64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("expires_in is not finite")
	}
	return f, nil
}

// jwtExpiry returns the "exp" claim of a JWT (RFC 7519) without verifying
// it. It reports false if tok is not a JWT or has no usable exp claim.
func jwtExpiry(tok string) (time.Time, bool) {
	if strings.Count(tok, ".") != 2 {
		return time.Time{}, false
	}
	payload := tok[strings.IndexByte(tok, '.')+1 : strings.LastIndexByte(tok, '.')]
	payload = strings.TrimRight(payload, "=")
	if payload == "" || len(payload) > maxJWTPayload*4/3+4 {
		return time.Time{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp == "" {
		return time.Time{}, false
	}
	f, err := claims.Exp.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1e11 {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// NoteOnce logs the first expiry note of an endpoint, and only that one:
// an endpoint that always answers an absurd expires_in would otherwise
// fill the log.
type NoteOnce struct{ done atomic.Bool }

// Log logs note, if not empty, unless a note was logged before.
func (n *NoteOnce) Log(l *slog.Logger, note, url string) {
	if note == "" || l == nil || !n.done.CompareAndSwap(false, true) {
		return
	}
	l.LogAttrs(context.Background(), slog.LevelWarn, "refresher: "+note+" (logged once)", slog.String("endpoint", url))
}
