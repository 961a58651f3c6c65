package refresher_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/refresher"
)

// richAnswer is a token answer with the extra fields servers send: an ID
// token, the scopes, and a large profile nobody asked for.
var richAnswer = `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1","expires_in":60,` +
	`"scope":"read write","id_token":"eyJ.ID.TOKEN","profile":{"bio":"` + strings.Repeat("x", 1024) + `"}}`

func newOAuth2Endpoint(url string, keep ...string) *refresher.OAuth2Endpoint {
	ep := endpointKinds[1].new(url).(*refresher.OAuth2Endpoint)
	ep.KeepExtra = keep
	return ep
}

func TestATokenKeepsNoExtraFieldsByDefault(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(200, richAnswer))
	for _, k := range endpointKinds {
		t.Run(k.name, func(t *testing.T) {
			tok, err := k.new(srv.URL).Refresh(context.Background(), staleToken())
			require.NoError(t, err)
			assert.Equal(t, "SECRET-A1", tok.AccessToken)
			for _, name := range []string{"scope", "id_token", "profile", "access_token"} {
				assert.Nil(t, tok.Extra(name), "extra field %q", name)
			}
		})
	}
}

func TestATokenKeepsOnlyTheExtraFieldsAskedFor(t *testing.T) {
	srv := newAnswerServer(t, jsonAnswer(200, richAnswer))

	tok, err := newOAuth2Endpoint(srv.URL, "id_token", "scope", "absent").Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "eyJ.ID.TOKEN", tok.Extra("id_token"))
	assert.Equal(t, "read write", tok.Extra("scope"))
	assert.Nil(t, tok.Extra("profile"), "a field not asked for")
	assert.Nil(t, tok.Extra("absent"), "a field the answer lacks")
	assert.Nil(t, tok.Extra("refresh_token"), "a token field not asked for")

	json := &refresher.JSONEndpoint{URL: srv.URL, KeepExtra: []string{"profile"}}
	tok, err = json.Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	profile, ok := tok.Extra("profile").(map[string]any)
	require.True(t, ok, "an object asked for is kept whole: %#v", tok.Extra("profile"))
	assert.Len(t, profile["bio"], 1024)
	assert.Nil(t, tok.Extra("scope"), "a field not asked for")
}

func TestAFormAnswerKeepsOnlyTheExtraFieldsAskedFor(t *testing.T) {
	srv := newAnswerServer(t, answer(200, "application/x-www-form-urlencoded",
		"access_token=SECRET-A1&expires_in=60&scope=read+write&id_token=eyJ.ID.TOKEN&ttl=30"))
	tok, err := newOAuth2Endpoint(srv.URL, "scope", "ttl").Refresh(context.Background(), staleToken())
	require.NoError(t, err)
	assert.Equal(t, "read write", tok.Extra("scope"))
	assert.Equal(t, int64(30), tok.Extra("ttl"), "a form's number reads as oauth2 reads it")
	assert.Empty(t, tok.Extra("id_token"), "a field not asked for")
}
