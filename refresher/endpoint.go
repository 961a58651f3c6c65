package refresher

import (
	"context"

	"golang.org/x/oauth2"
)

// Endpoint exchanges a refresh token for a new token (pair).
//
// Refresh is given the current token, whose RefreshToken it presents to the
// server. It returns the new token; a returned token with an empty
// RefreshToken means the server did not rotate it, and the Source keeps the
// old one (RFC 6749 §6). A returned error should be a [*RefreshError] (or wrap
// [ErrReauthRequired] when the session is over) so that the Source can tell a
// dead session from a transient failure.
//
// Refresh must be safe for concurrent use by multiple goroutines, although a
// Source never calls it concurrently for the same session. The given token
// must not be modified.
type Endpoint interface {
	Refresh(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error)
}

// EndpointFunc adapts an ordinary function to the [Endpoint] interface.
type EndpointFunc func(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error)

// Refresh calls f(ctx, current).
func (f EndpointFunc) Refresh(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	return f(ctx, current)
}
