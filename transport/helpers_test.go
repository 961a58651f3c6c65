package transport_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"golang.org/x/oauth2"
)

// authServer is a resource server on loopback that accepts only the access
// token most recently issued by its refresh endpoint, and records what it
// saw. Its Endpoint rotates the refresh token and rejects a reused one.
type authServer struct {
	srv *httptest.Server

	mu      sync.Mutex // guards access, refresh, gen, bodies
	access  string     // the one access token accepted
	refresh string     // the one live refresh token
	gen     int
	bodies  []string // SHA-256 of every body received, in order

	calls        atomic.Int64 // refresh endpoint calls
	unauthorized atomic.Int64 // 401s served
	requests     atomic.Int64 // resource requests received

	// gate, when set, makes the endpoint wait until it is closed (or the
	// refresh context ends).
	gate chan struct{}
	// noRotate makes the endpoint answer without a refresh token.
	noRotate bool
	// expiresIn, when set, gives issued tokens an expiry on clock.
	expiresIn time.Duration
	clock     func() time.Time
	// onUnauthorized, when set, is called with the running count of 401s.
	onUnauthorized func(n int64)
}

func newAuthServer(t *testing.T) *authServer {
	t.Helper()
	a := &authServer{clock: time.Now}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *authServer) url(path string) string { return a.srv.URL + path }

// issue mints a new token pair; from now on only it is accepted.
func (a *authServer) issue() *oauth2.Token {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.issueLocked()
}

func (a *authServer) issueLocked() *oauth2.Token {
	a.gen++
	a.access = fmt.Sprintf("access-%d-%d", a.gen, time.Now().UnixNano())
	a.refresh = fmt.Sprintf("refresh-%d-%d", a.gen, time.Now().UnixNano())
	t := &oauth2.Token{AccessToken: a.access, RefreshToken: a.refresh, TokenType: "Bearer"}
	if a.expiresIn > 0 {
		t.Expiry = a.clock().Add(a.expiresIn)
	}
	return t
}

// expireAccess makes the server refuse every access token issued so far.
func (a *authServer) expireAccess() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.access = ""
}

func (a *authServer) currentAccess() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.access
}

func (a *authServer) bodyHashes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.bodies...)
}

// endpoint is the refresh Endpoint of this server.
func (a *authServer) endpoint() refresher.Endpoint {
	return refresher.EndpointFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		a.calls.Add(1)
		if a.gate != nil {
			select {
			case <-a.gate:
			case <-ctx.Done():
				return nil, &refresher.RefreshError{Err: ctx.Err()}
			}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if cur.RefreshToken != a.refresh {
			return nil, &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant", Description: "refresh token reused"}
		}
		t := a.issueLocked()
		if a.noRotate {
			a.refresh = cur.RefreshToken
			t.RefreshToken = ""
		}
		return t, nil
	})
}

// serve answers /echo (any method) with the body's length and SHA-256,
// after checking the access token; /forbidden always answers 403.
func (a *authServer) serve(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/forbidden" {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	a.mu.Lock()
	valid := ok && tok != "" && tok == a.access
	sum := sha256.Sum256(body)
	a.bodies = append(a.bodies, hex.EncodeToString(sum[:]))
	a.mu.Unlock()
	if !valid {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		n := a.unauthorized.Add(1)
		if a.onUnauthorized != nil {
			a.onUnauthorized(n)
		}
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"method": r.Method, "length": len(body), "sha256": hex.EncodeToString(sum[:])})
}

// countingBody is a request body that counts its Close calls.
type countingBody struct {
	io.Reader
	closes atomic.Int32
}

func (b *countingBody) Close() error {
	b.closes.Add(1)
	return nil
}

// readAll reads and closes a response body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read response body: %v", err)
	}
	return string(b)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
