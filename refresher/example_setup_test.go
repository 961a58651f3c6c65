package refresher_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/autorefresh/autorefresh/refresher"
	"golang.org/x/oauth2"
)

// rotatingEndpoint is a refresh endpoint that hands out access-N and
// refresh-N on its Nth call, as a server rotating refresh tokens does.
func rotatingEndpoint(calls *int) refresher.Endpoint {
	return refresher.EndpointFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		*calls++
		return &oauth2.Token{AccessToken: fmt.Sprintf("access-%d", *calls), RefreshToken: fmt.Sprintf("refresh-%d", *calls)}, nil
	})
}

// A session that survives restarts: the token of the login is saved to the
// file before its first use, every rotated token before anyone uses it, and
// the next process starts from the file, with no login.
func ExampleNewFileStore() {
	dir, err := os.MkdirTemp("", "autorefresh-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "token.json")
	ctx := context.Background()
	calls := 0
	ep := rotatingEndpoint(&calls)

	// First process: a token from the login.
	login := &oauth2.Token{AccessToken: "access-0", RefreshToken: "refresh-0"}
	src := refresher.NewSource(ep, refresher.WithToken(login), refresher.WithStore(refresher.NewFileStore(path)))
	tok, _ := src.Token(ctx)
	saved, _ := refresher.NewFileStore(path).Load(ctx)
	fmt.Println("in use:", tok.AccessToken, "on disk:", saved.RefreshToken)
	tok, _ = src.Refresh(ctx, tok) // as after a 401
	saved, _ = refresher.NewFileStore(path).Load(ctx)
	fmt.Println("in use:", tok.AccessToken, "on disk:", saved.RefreshToken)

	// A restart: the Source loads the rotated token from the file.
	src = refresher.NewSource(ep, refresher.WithStore(refresher.NewFileStore(path)))
	tok, _ = src.Token(ctx)
	fmt.Println("after restart:", tok.AccessToken, "refresh calls:", calls)
	// Output:
	// in use: access-0 on disk: refresh-0
	// in use: access-1 on disk: refresh-1
	// after restart: access-1 refresh calls: 1
}

// A login callback: the Source calls it for its first token and again when
// the session is over (here the server refuses the refresh token), the way
// an application sends its user to the login page.
func ExampleWithLogin() {
	ctx := context.Background()
	logins := 0
	login := func(ctx context.Context) (*oauth2.Token, error) {
		logins++ // post the user's credentials, or ask them again
		return &oauth2.Token{AccessToken: fmt.Sprintf("login-%d", logins), RefreshToken: "r"}, nil
	}
	ep := refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return nil, &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant", Description: "refresh token revoked"}
	})
	src := refresher.NewSource(ep, refresher.WithLogin(login))

	tok, _ := src.Token(ctx) // no token yet: logs in
	fmt.Println(tok.AccessToken)
	tok, err := src.Refresh(ctx, tok) // as after a 401: the refresh is refused, the user logs in again
	fmt.Println(tok.AccessToken, err, "logins:", logins)
	// Output:
	// login-1
	// login-2 <nil> logins: 2
}
