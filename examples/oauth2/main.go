// Command oauth2 shows a client built from an [oauth2.Config] whose rotated
// refresh tokens are persisted through the refresh hook, so that a restart
// continues the session instead of logging the user in again. The second
// "process" here reads the token the first one saved.
//
//	go run ./examples/oauth2
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"golang.org/x/oauth2"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "oauth2:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	srv := testserver.New(testserver.Config{})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer srv.Close()

	dir, err := os.MkdirTemp("", "oauth2-example")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	saved := filepath.Join(dir, "token.json")

	conf := &oauth2.Config{
		ClientID:     testserver.ConfidentialClientID,
		ClientSecret: testserver.ConfidentialClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken},
	}
	ctx := context.Background()
	tok, err := conf.PasswordCredentialsToken(ctx, testserver.DemoUser, testserver.DemoPassword)
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}

	// persist is the refresh hook: it runs after every refresh, before any
	// request uses the new token. (refresher.NewFileStore does the same
	// with atomic writes and a lock shared by processes.)
	persist := func(_, t *oauth2.Token) {
		b, _ := json.Marshal(t)
		if err := os.WriteFile(saved, b, 0o600); err != nil {
			fmt.Fprintln(out, "could not save the token:", err)
		}
	}
	refreshes := 0
	failures := 0
	for process := 1; process <= 2; process++ {
		if process == 2 {
			// A restart: the token comes from what the hook saved.
			b, err := os.ReadFile(saved)
			if err != nil {
				return fmt.Errorf("read the saved token: %w", err)
			}
			tok = new(oauth2.Token)
			if err := json.Unmarshal(b, tok); err != nil {
				return err
			}
			fmt.Fprintln(out, "restarted with the saved token")
		}
		src := refresher.NewSource(&refresher.OAuth2Endpoint{Config: conf},
			refresher.WithToken(tok),
			refresher.WithRefreshHook(func(old, new *oauth2.Token) {
				refreshes++
				persist(old, new)
				fmt.Fprintln(out, "refreshed; the rotated token was saved")
			}))
		// It is also an oauth2.TokenSource, for code that wants one.
		var _ oauth2.TokenSource = src.TokenSource()
		client := transport.NewClient(src)

		srv.ExpireAccessTokens()
		resp, err := client.Get(srv.URL() + testserver.PathMe)
		if err != nil {
			failures++
			fmt.Fprintln(out, "request failed:", err)
			continue
		}
		resp.Body.Close()
		fmt.Fprintf(out, "process %d: GET %s → %d\n", process, testserver.PathMe, resp.StatusCode)
		if resp.StatusCode != http.StatusOK {
			failures++
		}
	}
	st := srv.Stats()
	fmt.Fprintf(out, "summary: refreshes=%d reuse-detections=%d failures=%d\n", refreshes, st.ReuseDetections, failures)
	if failures > 0 || st.ReuseDetections > 0 {
		return fmt.Errorf("%d requests failed, %d reuse detections", failures, st.ReuseDetections)
	}
	return nil
}
