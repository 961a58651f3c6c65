package transport_test

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"golang.org/x/oauth2"
)

// The README's quick start, against the bundled test server: after the
// server expired every access token, the request gets a 401, the token is
// refreshed once and the request replayed.
func ExampleNewClient() {
	srv := testserver.New(testserver.Config{})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer srv.Close()
	conf := &oauth2.Config{ClientID: testserver.PublicClientID, Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken}}
	tok, err := conf.PasswordCredentialsToken(context.Background(), testserver.DemoUser, testserver.DemoPassword)
	if err != nil {
		panic(err)
	}

	src := refresher.NewSource(&refresher.OAuth2Endpoint{Config: conf}, refresher.WithToken(tok))
	client := transport.NewClient(src)
	srv.ExpireAccessTokens()
	resp, err := client.Get(srv.URL() + testserver.PathMe) // token attached; a 401 is refreshed once and replayed
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)

	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	fmt.Println("401s:", srv.Stats().Unauthorized, "refreshes:", srv.Stats().Rotations)
	// Output:
	// 200 {"user":"demo"}
	// 401s: 1 refreshes: 1
}
