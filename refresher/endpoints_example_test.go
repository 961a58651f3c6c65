package refresher_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/autorefresh/autorefresh/refresher"
	"golang.org/x/oauth2"
)

// A refresh API of its own, which wraps its tokens in a "data" object.
func ExampleJSONEndpoint() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":{"accessToken":"access-2","refreshToken":"refresh-2"}}`)
	}))
	defer api.Close()

	ep := &refresher.JSONEndpoint{
		URL:               api.URL + "/auth/refresh",
		RefreshTokenField: "refreshToken",
		AccessTokenPath:   "data.accessToken",
		RefreshTokenPath:  "data.refreshToken",
	}
	tok, err := ep.Refresh(context.Background(), &oauth2.Token{RefreshToken: "refresh-1"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tok.AccessToken, tok.RefreshToken)
	// Output: access-2 refresh-2
}

// An RFC 6749 authorization server behind a Source; a rejected refresh
// token ends the session.
func ExampleOAuth2Endpoint() {
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_grant","error_description":"refresh token revoked"}`)
	}))
	defer as.Close()

	ep := &refresher.OAuth2Endpoint{Config: &oauth2.Config{
		ClientID: "my-app",
		Endpoint: oauth2.Endpoint{TokenURL: as.URL + "/oauth/token"},
	}}
	tok := &oauth2.Token{AccessToken: "a", RefreshToken: "r"}
	src := refresher.NewSource(ep, refresher.WithToken(tok))
	_, err := src.Refresh(context.Background(), tok) // as after a 401 answer to tok
	fmt.Println(errors.Is(err, refresher.ErrReauthRequired))
	fmt.Println(err)
	// Output:
	// true
	// refresher: refresh failed: status 400: invalid_grant: refresh token revoked
}
