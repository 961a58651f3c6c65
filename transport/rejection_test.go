package transport_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
)

// TestRejectedAnswerFreesItsConnectionBeforeTheRefresh: the requests and
// the refresh share one base transport that allows one connection to the
// host, and the token endpoint is on that host. The 401's connection must
// go back to the pool before the refresh asks for one, or the refresh
// waits for the request that waits for the refresh.
func TestRejectedAnswerFreesItsConnectionBeforeTheRefresh(t *testing.T) {
	var mu sync.Mutex
	current := "access-0"
	var refreshes atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/token":
			refreshes.Add(1)
			current = fmt.Sprintf("access-%d", refreshes.Load())
			fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","refresh_token":"r"}`, current)
		default:
			if r.Header.Get("Authorization") != "Bearer "+current {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				http.Error(w, "token expired", http.StatusUnauthorized)
				return
			}
			io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	base := &http.Transport{MaxConnsPerHost: 1}
	defer base.CloseIdleConnections()
	shared := &http.Client{Transport: base}
	ep := refresher.EndpointFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/token", strings.NewReader("grant_type=refresh_token"))
		resp, err := shared.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var body strings.Builder
		io.Copy(&body, resp.Body)
		access := strings.Split(body.String(), `"`)[3]
		return &oauth2.Token{AccessToken: access, TokenType: "Bearer", RefreshToken: "r"}, nil
	})
	src := refresher.NewSource(ep, refresher.WithToken(&oauth2.Token{AccessToken: "stale", RefreshToken: "r", TokenType: "Bearer"}),
		refresher.WithRefreshTimeout(5*time.Second))
	c := transport.NewClient(src, transport.WithBase(base))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api", nil)
	resp, err := c.Do(req)
	require.NoError(t, err, "the refresh got a connection")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", readAll(t, resp))
	assert.Equal(t, int64(1), refreshes.Load())
}

// TestAdoptedTokenRejectedTooGetsOneMoreRefresh: another process refreshed
// and saved its token, then the server invalidated every access token
// issued so far. A request with the old token is rejected; the Source
// adopts the stored token, which the server rejects too; since that token
// was adopted, not issued after the rejection, the transport refreshes once
// more and the request succeeds.
func TestAdoptedTokenRejectedTooGetsOneMoreRefresh(t *testing.T) {
	a := newAuthServer(t)
	store := refresher.NewMemoryStore(a.issue())
	src := refresher.NewSource(a.endpoint(), refresher.WithStore(store))
	c := transport.NewClient(src)
	ctx := context.Background()
	_, err := src.Token(ctx)
	require.NoError(t, err)

	require.NoError(t, store.Save(ctx, a.issue())) // another process's rotation
	a.expireAccess()                               // then every access token is refused

	resp, err := c.Get(a.url("/echo"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(1), a.calls.Load(), "one refresh at the server")
	assert.Equal(t, int64(3), a.requests.Load(), "the request, its replay with the adopted token, and one more")

}
