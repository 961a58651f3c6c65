package refresher_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
)

// TestLogoutRevokesTheFamilyAtTheTestServer logs out on both contracts:
// the server revokes the family (the refresh token is refused afterwards),
// the Store is empty, and later calls fail fast without a network call.
func TestLogoutRevokesTheFamilyAtTheTestServer(t *testing.T) {
	for _, c := range contracts {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			s := testserver.NewTest(t, testserver.Config{})
			ep := c.new(s)
			if o, ok := ep.(*refresher.OAuth2Endpoint); ok {
				o.RevocationURL = s.URL() + testserver.PathRevoke
			}
			tok := issue(t, s)
			store := refresher.NewMemoryStore(tok)
			src := refresher.NewSource(ep, refresher.WithStore(store))
			first, err := src.Token(ctx)
			require.NoError(t, err)
			cur, err := src.Refresh(ctx, first) // a rotated token, so the family has two
			require.NoError(t, err)

			require.NoError(t, src.Logout(ctx))
			stored, err := store.Load(ctx)
			require.NoError(t, err)
			assert.Nil(t, stored, "the Store is empty")

			before := s.Stats().Refreshes
			_, err = src.Token(ctx)
			require.ErrorIs(t, err, refresher.ErrLoggedOut)
			assert.Equal(t, before, s.Stats().Refreshes, "no refresh after logout")

			// The server revoked the family: the last refresh token is refused.
			_, err = c.new(s).Refresh(ctx, &oauth2.Token{AccessToken: cur.AccessToken, RefreshToken: cur.RefreshToken})
			require.ErrorIs(t, err, refresher.ErrReauthRequired)
		})
	}
}
