// Command oauth2 shows a client built from an [oauth2.Config] whose tokens
// are persisted in a file through a [refresher.FileStore]: the token of the
// login is saved before its first use and every rotated token before any
// request uses it, so that a restart continues the session instead of
// logging the user in again. The second "process" here starts from the
// file alone.
//
//	go run ./examples/oauth2
package main

import (
	"context"
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
	path := filepath.Join(dir, "token.json")

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

	refreshes := 0
	failures := 0
	for process := 1; process <= 2; process++ {
		opts := []refresher.Option{
			// The Store is the persistence: written atomically, mode 0600,
			// locked against other processes; a failed save fails the
			// refresh instead of losing the token.
			refresher.WithStore(refresher.NewFileStore(path)),
			refresher.WithRefreshHook(func(_, _ *oauth2.Token) { refreshes++ }), // counts refreshes; saving is the Store's job
		}
		if process == 1 {
			opts = append(opts, refresher.WithToken(tok)) // saved to the file before its first use
		} else {
			fmt.Fprintln(out, "restarted: the token comes from", filepath.Base(path))
		}
		src := refresher.NewSource(&refresher.OAuth2Endpoint{Config: conf}, opts...)
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
		fmt.Fprintf(out, "process %d: GET %s → %d (the rotated token was saved before the replay)\n", process, testserver.PathMe, resp.StatusCode)
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
