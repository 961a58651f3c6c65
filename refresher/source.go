package refresher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// Source owns one session's token. It hands out the current access token,
// refreshes it shortly before it expires, and refreshes it on demand after a
// server rejected it; concurrent callers always share one refresh call.
//
// A Source is safe for concurrent use by multiple goroutines. Tokens it
// returns are shared and must not be modified.
type Source struct {
	// Set at construction, read-only afterwards.
	endpoint  Endpoint
	store     Store
	initial   *oauth2.Token
	now       func() time.Time
	leeway    time.Duration
	timeout   time.Duration
	log       *slog.Logger
	onRefresh func(old, new *oauth2.Token)
	onFailure func(old *oauth2.Token, err error)
	login     func(ctx context.Context) (*oauth2.Token, error)

	// cur is the current token, read without locking on the fast path.
	// It is written only with mu held.
	cur atomic.Pointer[entry]

	mu      sync.Mutex    // guards flight, dead, backoff and retryAt, and serialises writes of cur
	flight  *call         // the refresh in progress, if any
	dead    error         // why the session is over; nil while it lives
	deadTok *oauth2.Token // the token whose refresh was refused, to tell it from a new one in the Store
	backoff error         // the last failure, returned until retryAt
	retryAt time.Time     // no refresh before this time (the server's Retry-After)
}

// entry is an immutable snapshot of the current token.
type entry struct {
	tok       *oauth2.Token
	refreshAt time.Time // when to refresh proactively; zero: expiry unknown
	unsaved   bool      // the Store refused it: save again before use
}

// call is one refresh shared by every caller that asked while it ran.
type call struct {
	done chan struct{} // closed when tok and err are set
	tok  *oauth2.Token
	err  error
}

// NewSource returns a Source that refreshes tokens through e. It panics if
// e is nil.
func NewSource(e Endpoint, opts ...Option) *Source {
	if e == nil {
		panic("refresher: NewSource called with a nil Endpoint")
	}
	s := &Source{
		endpoint: e,
		now:      time.Now,
		leeway:   DefaultLeeway,
		timeout:  DefaultRefreshTimeout,
	}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.initial != nil {
		s.cur.Store(s.newEntry(s.initial, false))
	}
	return s
}

// newEntry computes when t is due for a proactive refresh.
func (s *Source) newEntry(t *oauth2.Token, unsaved bool) *entry {
	e := &entry{tok: t, unsaved: unsaved}
	if !t.Expiry.IsZero() {
		lead := min(s.leeway, t.Expiry.Sub(s.now())/2)
		e.refreshAt = t.Expiry.Add(-max(lead, 0))
	}
	return e
}

// Token returns a valid access token. A token within the leeway of its
// expiry is refreshed first (shared with every concurrent caller); if that
// refresh fails transiently while the token has not expired yet, the token
// is returned anyway. Without a token, the first one comes from the Store or
// the login callback. The returned token must not be modified.
func (s *Source) Token(ctx context.Context) (*oauth2.Token, error) {
	e := s.cur.Load()
	if e != nil && !e.unsaved && (e.refreshAt.IsZero() || s.now().Before(e.refreshAt)) {
		return e.tok, nil
	}
	if e == nil {
		return s.Refresh(ctx, nil)
	}
	t, err := s.Refresh(ctx, e.tok)
	if err != nil && !e.unsaved && s.now().Before(e.tok.Expiry) &&
		ctx.Err() == nil && !errors.Is(err, ErrReauthRequired) {
		s.log.LogAttrs(ctx, slog.LevelWarn, "refresher: proactive refresh failed; using the current token until it expires",
			slog.String("error", err.Error()))
		return e.tok, nil
	}
	return t, err
}

// Refresh returns a token newer than stale. If stale is no longer the
// current token (another caller refreshed it already), the current token is
// returned without a call to the Endpoint. Otherwise one refresh runs, shared
// by every caller that asks before it ends. Refresh(ctx, nil) returns the
// current token, obtaining a first one if there is none.
//
// The refresh runs on its own context, bounded by the refresh timeout; when
// ctx is done, Refresh returns ctx.Err() at once while the refresh goes on
// for the others. The returned token must not be modified.
func (s *Source) Refresh(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	s.mu.Lock()
	cur := s.cur.Load()
	if cur != nil && !cur.unsaved && (stale == nil || !sameToken(cur.tok, stale)) {
		s.mu.Unlock()
		return cur.tok, nil
	}
	if s.dead != nil && s.login == nil && s.store == nil {
		// Nothing can revive the session but SetToken. (With a Store,
		// the refresh below looks for a token saved by another process.)
		err := s.dead
		s.mu.Unlock()
		return nil, err
	}
	if s.backoff != nil && s.now().Before(s.retryAt) {
		// The server asked to wait (Retry-After): fail fast until then.
		err := s.backoff
		s.mu.Unlock()
		return nil, err
	}
	c := s.flight
	if c == nil {
		c = &call{done: make(chan struct{})}
		s.flight = c
		go s.run(context.WithoutCancel(ctx), c, cur)
	}
	s.mu.Unlock()

	select {
	case <-c.done:
		return c.tok, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// SetToken replaces the current token, for example after the user logged in
// again, and ends the failed state that follows ErrReauthRequired. The token
// is saved to the Store first; if that fails, nothing changes.
func (s *Source) SetToken(ctx context.Context, t *oauth2.Token) error {
	if t == nil || t.AccessToken == "" {
		return errors.New("refresher: SetToken needs a token with an access token")
	}
	t = cloneToken(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.store != nil {
		if err := s.store.Save(ctx, t); err != nil {
			return fmt.Errorf("refresher: save token: %w", err)
		}
	}
	s.cur.Store(s.newEntry(t, false))
	s.dead, s.deadTok, s.backoff = nil, nil, nil
	return nil
}

// TokenSource returns an [oauth2.TokenSource] backed by s, for use with the
// golang.org/x/oauth2 ecosystem. Its Token method calls s.Token with
// [context.Background].
func (s *Source) TokenSource() oauth2.TokenSource { return tokenSource{s} }

type tokenSource struct{ s *Source }

func (ts tokenSource) Token() (*oauth2.Token, error) { return ts.s.Token(context.Background()) }

// run performs one shared refresh and publishes its outcome to c.
func (s *Source) run(ctx context.Context, c *call, cur *entry) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	var old *oauth2.Token
	if cur != nil {
		old = cur.tok
	}
	tok, err := s.obtain(ctx, cur)
	if err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "refresher: refresh failed", errorAttrs(err)...)
		if s.onFailure != nil {
			s.onFailure(old, err)
		}
	}

	s.mu.Lock()
	if now := s.cur.Load(); now != cur && now != nil {
		// SetToken replaced the token while this refresh ran (the user
		// logged in again): its token wins over whatever this produced.
		s.flight = nil
		c.tok, c.err = now.tok, nil
		close(c.done)
		s.mu.Unlock()
		return
	}
	s.backoff, s.retryAt = nil, time.Time{}
	if re := (*RefreshError)(nil); errors.As(err, &re) && re.RetryAfter > 0 && !errors.Is(err, ErrReauthRequired) {
		s.backoff, s.retryAt = err, s.now().Add(re.RetryAfter)
	}
	switch {
	case err == nil:
		e := s.newEntry(tok, false)
		if !e.refreshAt.IsZero() && !s.now().Before(e.refreshAt) {
			// A token that is due on arrival (a skewed clock, a server
			// that lies about expiry) would be refreshed again on every
			// use: rely on the server's 401 instead.
			s.log.LogAttrs(ctx, slog.LevelWarn, "refresher: the new token is already due by the local clock; refreshing it only when rejected",
				slog.Time("expiry", tok.Expiry))
			e.refreshAt = time.Time{}
		}
		s.cur.Store(e)
		s.dead, s.deadTok = nil, nil
	case errors.Is(err, ErrReauthRequired):
		// The session is over: forget the token so that every caller
		// fails fast until a new one is set.
		s.cur.Store(nil)
		s.dead = err
	case tok != nil:
		// The token was rotated but the Store refused it: keep it, so it
		// is not lost, and save it again before anyone uses it.
		s.cur.Store(s.newEntry(tok, true))
		tok = nil
	}
	s.flight = nil
	c.tok, c.err = tok, err
	close(c.done)
	s.mu.Unlock()
}

// obtain produces the next token: from the Store if another holder already
// refreshed, else from the Endpoint (or the login callback when the session
// is over). On a failed Save it returns the new token and the error.
func (s *Source) obtain(ctx context.Context, cur *entry) (*oauth2.Token, error) {
	s.mu.Lock()
	dead, known := s.dead, s.deadTok
	s.mu.Unlock()
	var old *oauth2.Token
	if cur != nil {
		old, known = cur.tok, cur.tok
	}
	if l, ok := s.store.(Locker); ok {
		unlock, err := l.Lock(ctx)
		if err != nil {
			return nil, &RefreshError{Err: fmt.Errorf("lock store: %w", err)}
		}
		defer func() {
			if err := unlock(); err != nil {
				s.log.LogAttrs(ctx, slog.LevelWarn, "refresher: unlock store", slog.String("error", err.Error()))
			}
		}()
	}
	if cur != nil && cur.unsaved {
		if err := s.store.Save(ctx, cur.tok); err != nil {
			return cur.tok, &RefreshError{Err: fmt.Errorf("save token: %w", err)}
		}
		return cur.tok, nil
	}
	if s.store != nil {
		st, err := s.store.Load(ctx)
		if err != nil {
			return nil, &RefreshError{Err: fmt.Errorf("load token: %w", err)}
		}
		if st != nil && st.AccessToken != "" && (known == nil || !sameToken(st, known)) {
			// Another holder of the Store refreshed or logged in (or
			// this is the first token): adopt it unless it is itself due.
			dead = nil
			if e := s.newEntry(st, false); e.refreshAt.IsZero() || s.now().Before(e.refreshAt) {
				s.log.LogAttrs(ctx, slog.LevelDebug, "refresher: adopted the stored token")
				return st, nil
			}
			old = st
		}
	}
	switch {
	case dead != nil:
		return s.relogin(ctx, old, dead)
	case old == nil:
		return s.relogin(ctx, nil, ErrNoToken)
	case old.RefreshToken == "":
		return s.relogin(ctx, old, &RefreshError{Err: fmt.Errorf("%w: the token has no refresh token", ErrReauthRequired)})
	}

	nt, err := s.endpoint.Refresh(ctx, old)
	if err == nil && (nt == nil || nt.AccessToken == "") {
		err = &RefreshError{Err: errors.New("the endpoint returned no access token")}
	}
	if err != nil {
		err = asRefreshError(err)
		if errors.Is(err, ErrReauthRequired) {
			if st := s.storedNewer(ctx, old); st != nil {
				return st, nil
			}
			return s.relogin(ctx, old, err)
		}
		return nil, err
	}
	nt = cloneToken(nt)
	if nt.RefreshToken == "" {
		nt.RefreshToken = old.RefreshToken
	}
	return s.keep(ctx, old, nt, "refresher: token refreshed")
}

// storedNewer returns the Store's token if it differs from old: another
// process rotated the token while this one was refreshing without a lock.
func (s *Source) storedNewer(ctx context.Context, old *oauth2.Token) *oauth2.Token {
	if s.store == nil {
		return nil
	}
	st, err := s.store.Load(ctx)
	if err != nil || st == nil || st.AccessToken == "" || sameToken(st, old) {
		return nil
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "refresher: refresh token rejected, but the Store holds a newer token; adopted it")
	return st
}

// relogin asks the login callback for a new token, or returns cause. old,
// if not nil, is the token that can no longer be refreshed: it is
// remembered, so that it is not adopted again from the Store.
func (s *Source) relogin(ctx context.Context, old *oauth2.Token, cause error) (*oauth2.Token, error) {
	if old != nil {
		s.mu.Lock()
		s.deadTok = old
		s.mu.Unlock()
	}
	if s.login == nil {
		return nil, cause
	}
	nt, err := s.login(ctx)
	if err == nil && (nt == nil || nt.AccessToken == "") {
		err = errors.New("the login callback returned no access token")
	}
	if err != nil {
		return nil, fmt.Errorf("%w: login: %w", ErrReauthRequired, err)
	}
	return s.keep(ctx, old, cloneToken(nt), "refresher: logged in")
}

// keep saves nt, runs the refresh hook and logs; on a failed Save it returns
// nt with the error so that the token is not lost.
func (s *Source) keep(ctx context.Context, old, nt *oauth2.Token, msg string) (*oauth2.Token, error) {
	if s.store != nil {
		if err := s.store.Save(ctx, nt); err != nil {
			return nt, &RefreshError{Err: fmt.Errorf("save token: %w", err)}
		}
	}
	if s.onRefresh != nil {
		s.onRefresh(old, nt)
	}
	attrs := []slog.Attr{slog.Bool("rotated", old == nil || old.RefreshToken != nt.RefreshToken)}
	if !nt.Expiry.IsZero() {
		attrs = append(attrs, slog.Duration("expires_in", nt.Expiry.Sub(s.now()).Round(time.Second)))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, msg, attrs...)
	return nt, nil
}

// errorAttrs describes err for the log without any token value.
func errorAttrs(err error) []slog.Attr {
	attrs := []slog.Attr{slog.String("error", err.Error()),
		slog.Bool("reauth_required", errors.Is(err, ErrReauthRequired))}
	var re *RefreshError
	if errors.As(err, &re) {
		attrs = append(attrs, slog.Bool("temporary", re.Temporary()))
		if re.StatusCode != 0 {
			attrs = append(attrs, slog.Int("status", re.StatusCode))
		}
	}
	return attrs
}

// sameToken reports whether a and b are the same token pair.
func sameToken(a, b *oauth2.Token) bool {
	return a == b || (a != nil && b != nil &&
		a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken)
}
