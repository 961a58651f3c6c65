package tokenjson_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/tokenjson"
)

func TestEncodeWritesTheVersionedFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		tok  *oauth2.Token
		want string
	}{
		{
			"full",
			(&oauth2.Token{
				AccessToken:  "access-1",
				TokenType:    "Bearer",
				RefreshToken: "refresh-1",
				Expiry:       time.Date(2030, 1, 2, 3, 5, 5, 123456789, time.UTC),
			}).WithExtra(map[string]any{"id_token": "not kept"}),
			`{"version":1,"access_token":"access-1","token_type":"Bearer","refresh_token":"refresh-1","expiry":"2030-01-02T03:05:05.123456789Z"}`,
		},
		{
			"access token only",
			&oauth2.Token{AccessToken: "only-access"},
			`{"version":1,"access_token":"only-access"}`,
		},
		{
			"expiry keeps its offset",
			&oauth2.Token{AccessToken: "a", Expiry: time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))},
			`{"version":1,"access_token":"a","expiry":"2030-01-02T03:04:05+01:00"}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, err := tokenjson.Encode(tc.tok)
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(data))

			got, why := tokenjson.Decode(data)
			require.Empty(t, why)
			assert.Equal(t, tc.tok.AccessToken, got.AccessToken, "access token")
			assert.Equal(t, tc.tok.TokenType, got.TokenType, "token type")
			assert.Equal(t, tc.tok.RefreshToken, got.RefreshToken, "refresh token")
			assert.True(t, tc.tok.Expiry.Equal(got.Expiry), "expiry: got %v, want %v", got.Expiry, tc.tok.Expiry)
			assert.Nil(t, got.Extra("id_token"), "extra fields are not kept")
		})
	}
}

func TestEncodeRefusesEmptyToken(t *testing.T) {
	for _, tok := range []*oauth2.Token{nil, {RefreshToken: "refresh-only"}} {
		data, err := tokenjson.Encode(tok)
		assert.Error(t, err)
		assert.Nil(t, data)
	}
}

func TestDecodeReadsIndentedForm(t *testing.T) {
	data, err := tokenjson.Encode(&oauth2.Token{AccessToken: "a", RefreshToken: "r"})
	require.NoError(t, err)
	indented, err := json.MarshalIndent(json.RawMessage(data), "", "  ")
	require.NoError(t, err)
	got, why := tokenjson.Decode(append(indented, '\n'))
	require.Empty(t, why)
	assert.Equal(t, "a", got.AccessToken)
	assert.Equal(t, "r", got.RefreshToken)
}

func TestDecodeGivesReasonWithoutTheContents(t *testing.T) {
	const secret = "s3cr3t-token-value"
	for _, tc := range []struct {
		name, data, why string
	}{
		{"empty", "", "it is empty"},
		{"too large", `{"version":1,"access_token":"` + secret + strings.Repeat(" ", tokenjson.MaxSize) + `"}`,
			"it is larger than 1048576 bytes"},
		{"not JSON", "refresh_token=" + secret, "invalid JSON at byte 1 of 32"},
		{"bare secret", secret, "invalid JSON at byte 1 of 18"},
		{"truncated", `{"version":1,"access_token":"` + secret, "invalid JSON"},
		{"torn after a token", `{"version":1,"access_token":"` + secret + `"}` + secret, "invalid JSON at byte 50 of 67"},
		{"array", `["` + secret + `"]`, "it holds a JSON array, not an object"},
		{"wrong field type", `{"version":1,"access_token":["` + secret + `"]}`, `field "access_token" holds a JSON array`},
		{"object field", `{"version":1,"access_token":{"v":"` + secret + `"}}`, `field "access_token" holds a JSON object`},
		{"no version", `{"access_token":"` + secret + `"}`, "format version 0 is not supported (want 1)"},
		{"future version", `{"version":2,"access_token":"` + secret + `"}`, "format version 2 is not supported (want 1)"},
		{"unknown version", `{"version":7,"access_token":"` + secret + `"}`, "format version 7 is not supported (want 1)"},
		{"no access token", `{"version":1,"refresh_token":"` + secret + `"}`, "it has no access_token"},
		{"bad expiry", `{"version":1,"access_token":"a","expiry":"` + secret + `"}`, "expiry is not an RFC 3339 time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := tokenjson.Decode([]byte(tc.data))
			assert.Nil(t, got)
			assert.Contains(t, why, tc.why)
			assert.NotContains(t, why, secret, "the reason quotes the data")
		})
	}
}
