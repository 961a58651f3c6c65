package testserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Paths served by a [Server].
const (
	// PathToken is the RFC 6749 token endpoint of the OAuth2 API.
	PathToken = "/oauth/token"
	// PathRevoke is the RFC 7009 revocation endpoint of the OAuth2 API.
	PathRevoke = "/oauth/revoke"
	// PathMe answers {"user": sub} to a valid access token.
	PathMe = "/api/me"
	// PathEcho answers any method with the method, path, length and SHA-256
	// of the request body; paths below it (PathEcho + "/...") echo too.
	PathEcho = "/api/echo"
	// PathAdmin needs an access token with scope "admin". It is a protected
	// resource, unrelated to the control API under [PathControl].
	PathAdmin = "/api/admin"
	// PathExpressLogin is the Express API's login.
	PathExpressLogin = "/api/v1/users/login"
	// PathExpressRefresh is the Express API's refresh endpoint.
	PathExpressRefresh = "/api/v1/users/refresh-token"
	// PathExpressLogout is the Express API's logout.
	PathExpressLogout = "/api/v1/users/logout"
	// PathExpressCurrentUser is the Express API's protected resource.
	PathExpressCurrentUser = "/api/v1/users/current-user"
	// PathControl is the prefix of the control API and of its live page
	// (GET PathControl); see [Config.AdminToken].
	PathControl = "/admin/"
)

// Former names of the Express API paths.
const (
	// Deprecated: use [PathExpressLogin].
	PathLogin = PathExpressLogin
	// Deprecated: use [PathExpressLogout].
	PathLogout = PathExpressLogout
	// Deprecated: use [PathExpressCurrentUser].
	PathCurrentUser = PathExpressCurrentUser
)

// ScopeAdmin is the scope [PathAdmin] requires.
const ScopeAdmin = "admin"

// Server is an OAuth2-style authorization server and resource server for
// tests. It speaks two contracts over one token store: the OAuth2 API, the
// RFC 6749 token endpoint with password and refresh_token grants, and the
// Express API, the JSON and cookie API common to Node.js/Express backends.
//
// Access tokens are HS256 JWTs. Refresh tokens are opaque and kept only as
// SHA-256 hashes, grouped in families (one per login). Every refresh rotates
// the refresh token; presenting an already rotated one revokes the family
// (see [Config.ReuseGrace] for the one exception), and a family expires after
// [Config.RefreshIdle] without use or [Config.RefreshAbsolute] after its login,
// both measured with [Server.Clock].
//
// All methods are safe for concurrent use by multiple goroutines.
type Server struct {
	cfg      Config
	clock    *Clock
	store    *store
	handler  http.Handler
	done     chan struct{} // closed by Close: ends holds, delays and event streams
	stopping chan struct{} // closed by Shutdown or Close: ends event streams
	stopOnce sync.Once     // closes stopping

	epoch      atomic.Uint64 // access token epoch, see ExpireAccessTokens
	revokedMu  sync.Mutex    // guards revokedJTI
	revokedJTI map[string]struct{}

	dpop     *dpopVerifier // nil unless Config.DPoP; one for the whole origin
	faults   faults
	counters counters
	reqLog   requestLog
	events   eventLog

	holdsMu sync.Mutex // guards holds
	holds   []func()   // releases of the holds opened through the control API

	mu       sync.Mutex // guards the fields below
	srv      *http.Server
	served   chan struct{} // closed when the serving goroutine returns
	client   *http.Client  // made by Client
	url      string
	closed   bool
	inflight sync.WaitGroup // handlers running; Add only under mu while !closed
}

// New returns a Server configured by cfg. It does not listen: call
// [Server.Start], or mount [Server.Handler] on a server of your own.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{
		cfg:        cfg,
		clock:      cfg.Clock,
		store:      newStore(),
		done:       make(chan struct{}),
		stopping:   make(chan struct{}),
		revokedJTI: make(map[string]struct{}),
	}
	s.store.emit = s.emit
	if cfg.DPoP {
		s.dpop = newDPoPVerifier(s.clock.Now, dpopSettings{})
	}
	mux := http.NewServeMux()
	mux.HandleFunc(PathToken, s.handleToken)
	mux.HandleFunc(PathRevoke, s.handleRevoke)
	mux.HandleFunc(PathMe, s.handleMe)
	mux.HandleFunc(PathEcho, s.handleEcho)
	mux.HandleFunc(PathEcho+"/", s.handleEcho)
	mux.HandleFunc(PathAdmin, s.handleAdmin)
	mux.HandleFunc(PathExpressLogin, s.handleExpressLogin)
	mux.HandleFunc(PathExpressRefresh, s.handleExpressRefresh)
	mux.HandleFunc(PathExpressLogout, s.handleExpressLogout)
	mux.HandleFunc(PathExpressCurrentUser, s.handleExpressCurrentUser)
	root := http.NewServeMux()
	root.Handle(PathControl, s.control())
	root.Handle("/", s.record(mux))
	s.handler = root
	return s
}

// NewTest returns a Server started on 127.0.0.1 at a free port, closed when
// tb and its subtests complete. It fails tb if the server cannot start.
func NewTest(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s := New(cfg)
	if err := s.Start("127.0.0.1:0"); err != nil {
		tb.Fatalf("testserver: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// Start listens on addr (e.g. "127.0.0.1:0" for a free port) and serves in
// the background. It returns once the server is listening, so [Server.URL]
// is usable. A Server can be started only once.
func (s *Server) Start(addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("testserver: server closed")
	}
	if s.srv != nil {
		return errors.New("testserver: server already started")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("testserver: %w", err)
	}
	srv := &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	s.srv, s.served = srv, served
	s.url = "http://" + ln.Addr().String()
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	return nil
}

// Client returns an HTTP client for the server, as [httptest.Server.Client]
// does: it has a transport of its own, without proxy, whose idle
// connections [Server.Close] closes. Every call returns the same client.
func (s *Server) Client() *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.client == nil {
		s.client = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	return s.client
}

// URL returns the base URL of a started server, like
// "http://127.0.0.1:PORT", or "" before [Server.Start].
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}

// Handler returns the server's HTTP handler, to mount on a server of your
// own (an [net/http/httptest.Server], for instance). It still stops serving
// (503) once [Server.Close] is called.
func (s *Server) Handler() http.Handler { return s.handler }

// Clock returns the server's clock: [Config.Clock], or the real-time clock
// made in its place.
func (s *Server) Clock() *Clock { return s.clock }

// Shutdown stops the server gracefully: it stops listening, ends the live
// page's event streams, then waits for the requests in flight until ctx is
// done (see [http.Server.Shutdown]). Refreshes held by
// [Server.HoldRefreshes] are not released; call [Server.Close] to end them.
// Close must still be called afterwards.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.stopping) })
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// Close stops the server at once: it closes the listener and every
// connection, ends holds, delays and event streams, waits for the handlers
// still running and for the serving goroutine, and closes the idle
// connections of [Server.Client]. It is idempotent, and valid on a server
// never started.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	s.stopOnce.Do(func() { close(s.stopping) })
	srv, served, client := s.srv, s.served, s.client
	s.mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Close()
		<-served
	}
	s.inflight.Wait()
	if client != nil {
		client.CloseIdleConnections()
	}
	return err
}

// enter registers a handler in flight; it reports false once the server is
// closed.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

// IssueToken issues a token pair to user without HTTP, as a password grant
// would: it starts a new refresh token family and counts as a login. The
// family is not bound to a client, so it can be refreshed through either
// contract. The token's Expiry is the access token's "exp", by the server
// clock. It fails if user is not one of [Config.Users].
func (s *Server) IssueToken(user string, scopes ...string) (*oauth2.Token, error) {
	if _, ok := s.cfg.Users[user]; !ok {
		return nil, fmt.Errorf("testserver: unknown user %q", user)
	}
	scope := joinScopes(scopes)
	sess := s.login(user, scope, "")
	access, exp := s.mintAccess(sess.user, sess.scope, sess.sid)
	tok := &oauth2.Token{
		AccessToken:  access,
		TokenType:    "Bearer",
		RefreshToken: sess.refresh,
		Expiry:       exp,
		ExpiresIn:    int64(s.cfg.AccessTTL / time.Second),
	}
	return tok.WithExtra(map[string]any{"scope": scope}), nil
}

// login starts a family and counts it.
func (s *Server) login(user, scope, client string) session {
	s.counters.logins.Add(1)
	return s.store.login(user, scope, client, s.clock.Now())
}

// rotate exchanges a refresh token, counting the outcome.
// jkt is the thumbprint of the request's DPoP key, "" without a proof.
func (s *Server) rotate(tok, client, scope, jkt string) (session, error) {
	sess, err := s.store.rotate(tok, client, scope, jkt, s.clock.Now(), lifetimes{
		idle:     s.cfg.RefreshIdle,
		absolute: s.cfg.RefreshAbsolute,
		grace:    s.cfg.ReuseGrace,
	})
	if err != nil {
		var ge *grantError
		if errors.As(err, &ge) && ge.reuse {
			s.counters.reuses.Add(1)
		}
		return session{}, err
	}
	s.counters.rotations.Add(1)
	return sess, nil
}
