package testserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/autorefresh/autorefresh/testserver"
	"golang.org/x/oauth2"
)

// A password grant with golang.org/x/oauth2, then a protected resource.
func Example() {
	s := testserver.New(testserver.Config{})
	if err := s.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer s.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)

	cfg := oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: s.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}
	tok, err := cfg.PasswordCredentialsToken(ctx, testserver.DemoUser, testserver.DemoPassword)
	if err != nil {
		panic(err)
	}
	resp, err := cfg.Client(ctx, tok).Get(s.URL() + testserver.PathMe)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var me struct{ User string }
	json.NewDecoder(resp.Body).Decode(&me)
	fmt.Println(resp.StatusCode, me.User)
	// Output: 200 demo
}

// Reuse detection: presenting a rotated refresh token revokes the family.
func ExampleServer_IssueToken() {
	s := testserver.New(testserver.Config{Clock: testserver.NewClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))})
	if err := s.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	defer s.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, client)

	tok, err := s.IssueToken(testserver.DemoUser)
	if err != nil {
		panic(err)
	}
	fmt.Println("expires:", tok.Expiry.Format(time.RFC3339))

	cfg := oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: s.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}
	stale := *tok
	stale.Expiry = time.Now().Add(-time.Second) // make oauth2 refresh
	if _, err := cfg.TokenSource(ctx, &stale).Token(); err != nil {
		panic(err)
	}
	_, err = cfg.TokenSource(ctx, &stale).Token() // the same refresh token again
	fmt.Println("reuse refused:", err != nil)
	fmt.Printf("%+v\n", s.Stats())
	// Output:
	// expires: 2025-01-01T00:10:00Z
	// reuse refused: true
	// {Logins:1 Refreshes:2 Rotations:1 ReuseDetections:1 Unauthorized:0 RefreshFailures:1 InjectedFailures:0 Drops:0}
}
