// Package tokenjson is the versioned JSON form in which refresher.FileStore
// and redisstore.Store keep an OAuth2 token: one codec for one format.
//
// The form is an object with a "version" field, the token's
// "access_token", and, when set, its "token_type", "refresh_token",
// "expiry" (RFC 3339) and "expires_in" (the lifetime it was issued with). Fields are only ever added; a change that older
// readers would misread bumps [Version].
package tokenjson

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
)

// Version is the version of the format written by [Encode]. [Decode]
// refuses any other version.
const Version = 1

// MaxSize bounds what [Decode] accepts: a token is a few kilobytes.
const MaxSize = 1 << 20

// storedToken is the stored form of a token.
type storedToken struct {
	Version      int    `json:"version"`
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Expiry       string `json:"expiry,omitempty"`     // RFC 3339; absent: unknown
	ExpiresIn    int64  `json:"expires_in,omitempty"` // the lifetime it was issued with, in seconds
}

// Encode returns the compact JSON form of t. Only t's AccessToken,
// TokenType, RefreshToken, Expiry and ExpiresIn are kept; extra fields such as an ID
// token are not. It returns an error if t is nil or has no access token.
func Encode(t *oauth2.Token) ([]byte, error) {
	if t == nil || t.AccessToken == "" {
		return nil, errors.New("tokenjson: the token has no access token")
	}
	st := storedToken{
		Version:      Version,
		AccessToken:  t.AccessToken,
		TokenType:    t.TokenType,
		RefreshToken: t.RefreshToken,
		ExpiresIn:    t.ExpiresIn,
	}
	if !t.Expiry.IsZero() {
		st.Expiry = t.Expiry.Format(time.RFC3339Nano)
	}
	return json.Marshal(st)
}

// Decode parses a token written by [Encode], indented or not. On failure it
// returns a nil token and a reason, such as "it is empty" or "invalid JSON
// at byte 3 of 10", that quotes nothing from data; on success the reason is
// "".
func Decode(data []byte) (*oauth2.Token, string) {
	if len(data) == 0 {
		return nil, "it is empty"
	}
	if len(data) > MaxSize {
		return nil, fmt.Sprintf("it is larger than %d bytes", MaxSize)
	}
	var st storedToken
	if err := json.Unmarshal(data, &st); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Sprintf("invalid JSON at byte %d of %d", syn.Offset, len(data))
		case errors.As(err, &typ) && typ.Field != "":
			return nil, fmt.Sprintf("field %q holds a JSON %s", typ.Field, typ.Value)
		case errors.As(err, &typ):
			return nil, fmt.Sprintf("it holds a JSON %s, not an object", typ.Value)
		}
		return nil, "invalid JSON"
	}
	if st.Version != Version {
		return nil, fmt.Sprintf("format version %d is not supported (want %d)", st.Version, Version)
	}
	if st.AccessToken == "" {
		return nil, "it has no access_token"
	}
	t := &oauth2.Token{
		AccessToken:  st.AccessToken,
		TokenType:    st.TokenType,
		RefreshToken: st.RefreshToken,
		ExpiresIn:    max(st.ExpiresIn, 0),
	}
	if st.Expiry != "" {
		exp, err := time.Parse(time.RFC3339Nano, st.Expiry)
		if err != nil {
			return nil, "expiry is not an RFC 3339 time"
		}
		t.Expiry = exp
	}
	return t, ""
}
