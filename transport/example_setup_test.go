package transport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"golang.org/x/oauth2"
)

// startServer starts the bundled test server for an example.
func startServer() *testserver.Server {
	srv := testserver.New(testserver.Config{})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		panic(err)
	}
	return srv
}

// get sends a GET through client and prints the answer's status and the
// user it names.
func get(client *http.Client, url string) {
	resp, err := client.Get(url)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var answer struct{ Data struct{ Username string } }
	json.NewDecoder(resp.Body).Decode(&answer)
	fmt.Println(resp.StatusCode, answer.Data.Username)
}

// A JSON refresh API of one's own (here the Express API of the test
// server), with bearer tokens: the README's quick start for JSON APIs.
func ExampleNewClient_jsonAPI() {
	srv := startServer()
	defer srv.Close()
	tok, err := srv.IssueToken(testserver.DemoUser) // the token your login produced
	if err != nil {
		panic(err)
	}
	baseURL := srv.URL()

	ep := refresher.ExpressEndpoint(baseURL) // or &refresher.JSONEndpoint{URL: ..., AccessTokenPath: "data.accessToken", ...}
	client := transport.NewClient(refresher.NewSource(ep, refresher.WithToken(tok)))
	srv.ExpireAccessTokens()
	get(client, baseURL+testserver.PathExpressCurrentUser) // a 401, one refresh, a replay

	fmt.Println("refreshes:", srv.Stats().Rotations)
	// Output:
	// 200 demo
	// refreshes: 1
}

// A session kept in httpOnly cookies, as a browser keeps it: the jar is
// named once, as the refresh endpoint's, and the refresh call, the
// Transport's replay and the http.Client all use it. The README's quick
// start for cookie sessions.
func ExampleNewClient_cookieSession() {
	srv := startServer()
	defer srv.Close()
	baseURL := srv.URL()

	jar, _ := cookiejar.New(nil)
	ep := refresher.ExpressEndpoint(baseURL)
	ep.Jar = jar // the one place the jar is named
	login := func(ctx context.Context) (*oauth2.Token, error) {
		resp, err := (&http.Client{Jar: jar}).Post(baseURL+testserver.PathExpressLogin, "application/json",
			strings.NewReader(`{"username":"demo","password":"demo"}`))
		if err != nil {
			return nil, err
		}
		return ep.ParseResponse(resp) // the login answer has the refresh answer's shape
	}
	client := transport.NewClient(refresher.NewSource(ep, refresher.WithLogin(login)))

	get(client, baseURL+testserver.PathExpressCurrentUser) // logs in first
	srv.ExpireAccessTokens()
	get(client, baseURL+testserver.PathExpressCurrentUser) // a 401, one refresh through the jar, a replay with the new cookie
	st := srv.Stats()
	fmt.Println("client.Jar is the jar:", client.Jar == jar)
	fmt.Println("logins:", st.Logins, "401s:", st.Unauthorized, "refreshes:", st.Rotations)
	// Output:
	// 200 demo
	// 200 demo
	// client.Jar is the jar: true
	// logins: 1 401s: 1 refreshes: 1
}

// Tokens go only to the API's host: a request to another host (here a
// third-party service reached through the same client) carries no token.
func ExampleWithAllowedHosts() {
	seen := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Printf("%s got Authorization %q\n", name, r.Header.Get("Authorization"))
		}))
	}
	api, other := seen("api"), seen("other")
	defer api.Close()
	defer other.Close()

	src := refresher.NewSource(refresher.EndpointFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return nil, fmt.Errorf("no refresh in this example")
	}), refresher.WithToken(&oauth2.Token{AccessToken: "secret-token"}))
	client := transport.NewClient(src, transport.WithAllowedHosts(api.URL)) // an origin: scheme, host and port

	for _, u := range []string{api.URL, other.URL} {
		resp, err := client.Get(u)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
	}
	// Output:
	// api got Authorization "Bearer secret-token"
	// other got Authorization ""
}
