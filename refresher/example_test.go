package refresher_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/autorefresh/autorefresh/refresher"
	"golang.org/x/oauth2"
)

// Refresh with a stale token: the first caller refreshes, a caller that
// still holds the old token gets the new one without another call.
func ExampleSource_Refresh() {
	calls := 0
	ep := refresher.EndpointFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		calls++
		return &oauth2.Token{AccessToken: fmt.Sprintf("access-%d", calls), RefreshToken: fmt.Sprintf("refresh-%d", calls)}, nil
	})
	old := &oauth2.Token{AccessToken: "access-0", RefreshToken: "refresh-0"}
	src := refresher.NewSource(ep, refresher.WithToken(old))

	a, _ := src.Refresh(context.Background(), old)
	b, _ := src.Refresh(context.Background(), old) // old is stale now
	fmt.Println(a.AccessToken, b.AccessToken, "endpoint calls:", calls)
	// Output: access-1 access-1 endpoint calls: 1
}

// A rejected refresh token ends the session: errors.Is tells it apart from
// a transient failure, and the Source fails fast until it gets a new token.
func ExampleErrReauthRequired() {
	ep := refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return nil, &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant", Description: "refresh token revoked"}
	})
	old := &oauth2.Token{AccessToken: "a", RefreshToken: "r"}
	src := refresher.NewSource(ep, refresher.WithToken(old))

	_, err := src.Refresh(context.Background(), old)
	fmt.Println(errors.Is(err, refresher.ErrReauthRequired))
	fmt.Println(err)

	_ = src.SetToken(context.Background(), &oauth2.Token{AccessToken: "after-login", RefreshToken: "r2"})
	tok, _ := src.Token(context.Background())
	fmt.Println(tok.AccessToken)
	// Output:
	// true
	// refresher: refresh failed: status 400: invalid_grant: refresh token revoked
	// after-login
}
