package transport

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/autorefresh/autorefresh/internal/wire/challenge"
	"github.com/autorefresh/autorefresh/transport/dpop"
	"golang.org/x/oauth2"
)

// Source is what a Transport asks for tokens. [*refresher.Source] is one.
//
// Token returns the token to attach. Refresh returns a token newer than
// stale, the token that the server has just rejected; concurrent calls with
// the same stale token must share one refresh. Both must be safe for
// concurrent use by multiple goroutines; the tokens they return must not be
// modified.
type Source interface {
	Token(ctx context.Context) (*oauth2.Token, error)
	Refresh(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error)
}

// Transport is an [http.RoundTripper] that attaches the Source's access
// token as "Authorization: <type> <token>", and answers a 401 with one
// refresh and one replay of the request.
//
// It honours the RoundTripper contract: the caller's request is never
// modified and its body is closed on every path. A request is sent as it is,
// without token and without refresh, when it already carries an
// Authorization header, when its context was made by [SkipAuth], when it
// follows a redirect to another host or from https to http, or when its host
// is not in the allow-list set by [WithAllowedHosts]. A request that would
// carry a token over plain http to a host that is not loopback fails with
// [ErrInsecureHTTP] unless [WithInsecureHTTP] is given.
//
// A 401 answer (or another status set by [WithRefreshOn]) triggers a refresh
// unless its WWW-Authenticate header says a new token will not help: a
// challenge for the token's scheme with error="insufficient_scope" or
// error="invalid_request" (RFC 6750 §3.1), or challenges only for other
// schemes, such as Basic or Digest. Such an answer is returned untouched.
// [WithRefreshWhen] replaces this rule with a predicate of one's own.
//
// A request body is sent as it is read. When the request has no GetBody, a
// copy of the body is kept, up to the replay limit, for the replay; a body
// that outgrew the limit, or that is still being sent when its answer
// rejects the token (a full-duplex stream), is not replayed: the token is
// refreshed for the next request and the answer returned as it is.
//
// A Transport is safe for concurrent use by multiple goroutines. Make one
// with [New]; a Transport written as a literal, as x/oauth2 users do
// (&transport.Transport{Source: src, Base: base}), behaves like
// New(src, WithBase(base)) with its fields as they are at its first
// request. The zero Transport fails its requests with [ErrNilSource].
type Transport struct {
	// Source gives the tokens. It must not be nil.
	Source Source
	// Base sends the requests. If nil, [http.DefaultTransport] is used.
	Base http.RoundTripper

	made    bool       // by New; otherwise the literal's requests go to literal
	once    sync.Once  // guards literal
	literal *Transport // New(Source, WithBase(Base)), for a Transport not made by New
	misuse  error      // a miswiring found by New, returned by every request

	refreshOn   []int
	refreshWhen func(*http.Response) bool // nil: refreshOn and the challenges decide
	replayLimit int64
	log         *slog.Logger
	observers   []Observer // see WithObserver

	allowed      []allowed      // nil: every host; see WithAllowedHosts
	insecureHTTP bool           // see WithInsecureHTTP
	jar          http.CookieJar // non-nil: the session is in cookies; see WithCookieJar
	dpop         *dpop.Prover   // non-nil: DPoP-bound tokens go with proofs; see WithDPoP (dpop.go)

	// header caches the Authorization value of the last token attached,
	// so that a request with the same token builds no string.
	header atomic.Pointer[authHeader]
}

// authHeader is the Authorization value of one token.
type authHeader struct {
	tok   *oauth2.Token
	value string
}

// headerValue returns "<type> <token>" for tok. It is built once per
// token: a Source's tokens are never modified, so the pointer names the
// value.
func (t *Transport) headerValue(tok *oauth2.Token) string {
	if h := t.header.Load(); h != nil && h.tok == tok {
		return h.value
	}
	h := &authHeader{tok: tok, value: authScheme(tok) + " " + tok.AccessToken}
	t.header.Store(h)
	return h.value
}

// New returns a Transport that takes its tokens from src. It panics if src
// is nil.
func New(src Source, opts ...Option) *Transport {
	if src == nil {
		panic("transport: New called with a nil Source")
	}
	t := &Transport{
		Source:      src,
		made:        true,
		refreshOn:   []int{http.StatusUnauthorized},
		replayLimit: DefaultReplayLimit,
	}
	for _, o := range opts {
		o(t)
	}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.misuse = t.wireJar()
	return t
}

// NewClient returns an [http.Client] whose Transport is New(src, opts...).
// In a cookie session (see [WithCookieJar]), the client's Jar is the
// session's jar.
func NewClient(src Source, opts ...Option) *http.Client {
	t := New(src, opts...)
	return &http.Client{Transport: t, Jar: t.jar}
}

func (t *Transport) baseRT() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// CloseIdleConnections closes the idle connections of the base
// RoundTripper, if it has such a method. [http.Client.CloseIdleConnections]
// calls it.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.baseRT().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip implements [http.RoundTripper].
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.made {
		if t.Source == nil {
			closeBody(req)
			return nil, ErrNilSource
		}
		t.once.Do(func() { t.literal = New(t.Source, WithBase(t.Base)) })
		return t.literal.RoundTrip(req)
	}
	if t.misuse != nil {
		closeBody(req)
		return nil, t.misuse
	}
	return t.roundTrip(req)
}

// roundTrip sends req with the Source's token and, if the answer says the
// token was rejected, hands it to replay.
func (t *Transport) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if !t.attaches(req) {
		return t.baseRT().RoundTrip(req)
	}
	if err := checkScheme(req.URL, t.insecureHTTP); err != nil {
		t.observeWithheld(req, WithheldInsecureHTTP)
		closeBody(req)
		return nil, err
	}
	tok, err := t.Source.Token(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	first, again, tee := prepareBody(req, t.replayLimit)
	if tee != nil {
		defer tee.abortWhenDone(ctx)()
	}
	sent := t.authorize(req, tok, first, req.ContentLength)
	resp, err := t.send(sent, tok)
	if err == nil && resp == nil {
		err = fmt.Errorf("transport: the base RoundTripper (%T) returned neither an answer nor an error", t.baseRT())
	}
	if err == nil && t.nonceDemanded(tok, resp) {
		resp, tee, err = t.retryWithNonce(req, tok, resp, again, tee) // not a refresh: see WithDPoP
	}
	if err != nil || !t.rejected(sent, resp, tok) {
		if tee != nil {
			tee.release()
		}
		return resp, err
	}
	return t.replay(req, tok, resp, again, tee)
}

// replay answers resp, a rejection of tok: one refresh, shared with every
// request that saw tok rejected, and one replay of req with the new token
// (two, when the new token was adopted from the Store and is rejected too).
// A body that cannot be replayed gets the refresh for the next request, and
// the rejection is returned as it is.
func (t *Transport) replay(req *http.Request, tok *oauth2.Token, resp *http.Response, again replayFunc, tee *teeBody) (*http.Response, error) {
	ctx := req.Context()
	status := resp.StatusCode
	detachBody(resp) // its connection may be the one the refresh needs
	t.log.LogAttrs(ctx, slog.LevelDebug, "transport: token rejected; refreshing",
		slog.Int("status", resp.StatusCode), slog.String("method", req.Method), slog.String("host", req.URL.Host))
	var body io.ReadCloser
	size := req.ContentLength
	replayable := true
	if tee != nil {
		body, size, replayable = tee.replay(size)
	}
	if !replayable {
		// The body is gone, or still streaming: refresh for the next
		// request and return the answer as it is.
		if _, err := t.Source.Refresh(ctx, tok); err != nil {
			t.log.LogAttrs(ctx, slog.LevelWarn, "transport: refresh failed", slog.String("error", err.Error()))
		}
		t.observeRejected(req, status, ReplayNotReplayable)
		return resp, nil
	}
	fresh, err := t.Source.Refresh(ctx, tok)
	if err == nil && fresh.AccessToken == tok.AccessToken {
		closeReplay(body)
		t.observeRejected(req, status, ReplayNoRefresh)
		return resp, nil
	}
	drainClose(resp.Body)
	if err != nil {
		closeReplay(body)
		t.observeRejected(req, status, ReplayNoRefresh)
		return nil, err
	}
	if tee == nil {
		if body, err = again(); err != nil {
			t.observeRejected(req, status, ReplayNotReplayable)
			return nil, fmt.Errorf("transport: get request body for replay: %w", err)
		}
	}
	t.log.LogAttrs(ctx, slog.LevelDebug, "transport: replaying with the refreshed token",
		slog.String("method", req.Method), slog.String("host", req.URL.Host))
	sent := t.authorize(req, fresh, body, size)
	resp, err = t.send(sent, fresh)
	if err == nil && tee == nil && t.adopted(ctx, fresh) && t.rejected(sent, resp, fresh) {
		sent, fresh, resp, err = t.replayAdopted(req, again, size, sent, fresh, resp)
	}
	t.observeReplay(req, status, sent, fresh, resp, err)
	return resp, err
}

// adopted reports whether the Source took tok from its Store rather than
// having it issued (see refresher.Source.Adopted).
func (t *Transport) adopted(ctx context.Context, tok *oauth2.Token) bool {
	a, ok := t.Source.(interface {
		Adopted(context.Context, *oauth2.Token) bool
	})
	return ok && a.Adopted(ctx, tok)
}

// replayAdopted handles a replay rejected again when its token was not
// issued after the first rejection but adopted from the Store, saved there
// by another holder, which may have been rejected as well (access tokens
// invalidated before their expiry): one more refresh, and one more replay
// if it produced another token. Only a request whose body can be had again
// without a copy (none, or GetBody) gets it. Otherwise, or if the refresh
// fails, the rejection is returned as it is.
func (t *Transport) replayAdopted(req *http.Request, again replayFunc, size int64,
	sent *http.Request, tok *oauth2.Token, resp *http.Response) (*http.Request, *oauth2.Token, *http.Response, error) {
	ctx := req.Context()
	detachBody(resp)
	fresh, err := t.Source.Refresh(ctx, tok)
	if err != nil || fresh.AccessToken == tok.AccessToken {
		return sent, tok, resp, nil
	}
	body, err := again()
	if err != nil {
		return sent, tok, resp, nil
	}
	drainClose(resp.Body)
	t.log.LogAttrs(ctx, slog.LevelDebug, "transport: the adopted token was rejected too; replaying with a refreshed one",
		slog.String("method", req.Method), slog.String("host", req.URL.Host))
	sent = t.authorize(req, fresh, body, size)
	resp, err = t.send(sent, fresh)
	return sent, fresh, resp, err
}

// closeReplay closes the body of a replay that will not be sent.
func closeReplay(body io.ReadCloser) {
	if body != nil {
		body.Close()
	}
}

// attaches reports whether req is to carry the token: it does not carry its
// own Authorization header, was not made with [SkipAuth], and the scope
// rules (see scope.go) allow its destination.
func (t *Transport) attaches(req *http.Request) bool {
	switch {
	case req.URL == nil || ownAuthorization(req.Header) || skipped(req.Context()):
		return false
	case !redirectKeepsToken(req):
		t.log.LogAttrs(req.Context(), slog.LevelDebug, "transport: redirected off the original host or to http; sending without a token",
			slog.String("host", req.URL.Host))
		t.observeWithheld(req, WithheldRedirect)
		return false
	case t.allowed != nil && !slices.ContainsFunc(t.allowed, func(a allowed) bool { return a.match(req.URL) }):
		t.log.LogAttrs(req.Context(), slog.LevelDebug, "transport: host not in the allow-list; sending without a token",
			slog.String("host", req.URL.Host))
		t.observeWithheld(req, WithheldNotAllowed)
		return false
	}
	return true
}

// rejected reports whether resp, the answer to sent (which carried tok),
// means that the token was rejected and a refresh may heal it: by the
// predicate of [WithRefreshWhen], else by the default rule (a trigger
// status whose WWW-Authenticate challenges, if any, blame the token).
func (t *Transport) rejected(sent *http.Request, resp *http.Response, tok *oauth2.Token) bool {
	if resp.Request == nil {
		resp.Request = sent
	}
	if t.nonceDemanded(tok, resp) {
		return false // a nonce demanded again: no new token heals it
	}
	if t.refreshWhen != nil {
		return t.refreshWhen(resp)
	}
	if !slices.Contains(t.refreshOn, resp.StatusCode) {
		return false
	}
	if !challenge.RefreshMayHelp(resp.Header, tok.Type()) {
		t.log.LogAttrs(sent.Context(), slog.LevelDebug, "transport: the challenge does not ask for a new token; not refreshing",
			slog.Int("status", resp.StatusCode), slog.String("host", sent.URL.Host))
		return false
	}
	return true
}

// TokenRejected reports whether resp means that the token its request
// carried was rejected, so that a new one may help: the default rule of a
// Transport without [WithRefreshOn]. That is a 401 whose WWW-Authenticate
// header, if it can be read, has a challenge for the request's scheme
// ("Bearer" when the request carried no Authorization header) whose error
// is neither insufficient_scope nor invalid_request. Use it in a
// [WithRefreshWhen] predicate to keep the default rule for the other
// answers.
func TokenRejected(resp *http.Response) bool {
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		return false
	}
	scheme := "Bearer"
	if resp.Request != nil {
		if s, _, ok := strings.Cut(resp.Request.Header.Get("Authorization"), " "); ok && s != "" {
			scheme = s
		}
	}
	return challenge.RefreshMayHelp(resp.Header, scheme)
}

// authorize returns a copy of req that carries tok (or, in a cookie
// session, the jar's current cookies) and body.
func (t *Transport) authorize(req *http.Request, tok *oauth2.Token, body io.ReadCloser, size int64) *http.Request {
	r := req.Clone(req.Context())
	if t.jar != nil {
		applyJar(r, t.jar)
	} else {
		r.Header["Authorization"] = []string{t.headerValue(tok)} // the canonical key: Set without canonicalising it
	}
	r.Body = body
	r.ContentLength = size
	return r
}

// ownAuthorization reports whether h carries an Authorization header of
// the caller's own (h.Get("Authorization") != "", without canonicalising
// the key on every request).
func ownAuthorization(h http.Header) bool {
	v := h["Authorization"]
	return len(v) > 0 && v[0] != ""
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
