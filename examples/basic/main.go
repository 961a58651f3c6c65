// Command basic shows the smallest useful setup: bearer tokens from an RFC
// 6749 authorization server, refreshed through the refresh_token grant. It
// starts the bundled test server in-process, logs in with the password
// grant, then makes the server expire every access token: the next request
// gets a 401, the Transport refreshes once and replays it.
//
//	go run ./examples/basic
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"golang.org/x/oauth2"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "basic:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	srv := testserver.New(testserver.Config{})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer srv.Close()

	conf := &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}
	ctx := context.Background()
	tok, err := conf.PasswordCredentialsToken(ctx, testserver.DemoUser, testserver.DemoPassword)
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}

	// The five lines that matter.
	src := refresher.NewSource(&refresher.OAuth2Endpoint{Config: conf}, refresher.WithToken(tok))
	client := transport.NewClient(src)

	get := func() (int, error) {
		resp, err := client.Get(srv.URL() + testserver.PathMe)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Fprintf(out, "GET %s → %d %s", testserver.PathMe, resp.StatusCode, body)
		return resp.StatusCode, nil
	}
	failures := 0
	for i := range 2 {
		if i == 1 {
			srv.ExpireAccessTokens()
			fmt.Fprintln(out, "the server expired every access token")
		}
		code, err := get()
		if err != nil || code != http.StatusOK {
			failures++
			fmt.Fprintln(out, "request failed:", err)
		}
	}
	st := srv.Stats()
	fmt.Fprintf(out, "summary: requests=2 401s=%d refreshes=%d failures=%d\n", st.Unauthorized, st.Rotations, failures)
	if failures > 0 {
		return fmt.Errorf("%d requests failed", failures)
	}
	return nil
}
