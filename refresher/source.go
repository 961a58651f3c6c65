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
// refreshes it shortly before it expires (in the background, while callers
// go on using the valid token), and refreshes it on demand after a server
// rejected it; concurrent callers always share one refresh call.
//
// Each refresh is one transaction: it decides its outcome (a new token, a
// token adopted from the Store, the session over, a failure) without
// touching the Source's state, then commits it in one step. A token set
// meanwhile by [Source.SetToken] or [Source.Logout] starts a new generation,
// and an outcome of an older generation is neither saved nor published.
//
// A token is in one of these states:
//   - fresh: valid and not due; Token returns it without any lock.
//   - due: valid, but inside its refresh window; Token returns it and
//     starts (or joins) a background refresh.
//   - expired, rejected, or absent: callers wait for a refresh.
//
// and the Source itself may be backing off (the server asked to wait, or
// background refreshes keep failing) or over (the session ended; callers get
// [ErrReauthRequired] at once).
//
// A Source is safe for concurrent use by multiple goroutines. Tokens it
// returns are shared and must not be modified. The zero Source has no
// Endpoint: its methods return an error; make one with [NewSource].
type Source struct {
	// Set at construction, read-only afterwards.
	endpoint   Endpoint
	store      Store
	initial    *oauth2.Token
	now        func() time.Time
	leeway     time.Duration
	timeout    time.Duration
	blocking   bool   // WithBlockingRefresh: callers with a due token wait
	jitterSeed uint64 // spreads refresh points (see jitter)
	log        *slog.Logger
	onRefresh  func(old, new *oauth2.Token)
	onFailure  func(old *oauth2.Token, err error)
	login      func(ctx context.Context) (*oauth2.Token, error)
	observers  []Observer
	warnings   limiter // rate-limits warnings that repeat

	// sessionOver, if set (by Sessions), is told when the session ends.
	sessionOver atomic.Pointer[func(error)]

	// cur is the current token, read without locking on the fast path.
	// It is written only with mu held.
	cur atomic.Pointer[entry]

	// saving is held (a one-slot semaphore, so that waiting honours ctx)
	// across every Store write that replaces the session: a refresh's save
	// checks the generation while holding it, so a save of an older
	// generation never lands after SetToken's.
	saving chan struct{}

	mu        sync.Mutex    // guards the fields below, and serialises writes of cur
	gen       uint64        // bumped when the token is replaced from outside a refresh
	flight    *call         // the refresh in progress, if any
	over      error         // state over: why the session ended; nil while it lives
	overTok   *oauth2.Token // the token that was refused, not to be adopted again
	recheckAt time.Time     // state over: when the Store may be read again for a new token
	backoff   error         // the last failure, returned until retryAt
	retryAt   time.Time     // no refresh before this time (the server's Retry-After)
	bgFails   int           // consecutive failed refreshes while the token lived
	bgRetryAt time.Time     // no refresh of a still-valid token before this time
}

// entry is an immutable snapshot of the current token.
type entry struct {
	tok       *oauth2.Token
	refreshAt time.Time // when it becomes due; zero: never (expiry unknown, or due on arrival)
	validTo   time.Time // when it is no longer served; zero: expiry unknown
	unsaved   bool      // not yet in the Store: save it before use
	adopted   bool      // taken from the Store, saved there by another holder
	initial   bool      // with unsaved: given at construction, saved only to an empty Store
	prev      *oauth2.Token
}

// call is one refresh shared by every caller that asked while it ran.
type call struct {
	done       chan struct{} // closed when tok and err are set
	tok        *oauth2.Token
	err        error
	gen        uint64        // the generation it started in
	from       *entry        // the current token when it started
	over       error         // the Source was over when it started
	overTok    *oauth2.Token // the refused token, then
	background bool
	rejected   *oauth2.Token // with no current token: the token its caller had rejected
	waiters    int           // callers that waited for it; guarded by Source.mu
	savedOnly  bool          // it only saved an unsaved token; set before done is closed
	phase      string        // what user-supplied code it is in, for panics; own goroutine only
}

// Limits of the Source's waits.
const (
	// MaxRetryAfter caps how long a server's Retry-After holds refreshes
	// back, whatever it asked for (delay-seconds or an HTTP-date).
	MaxRetryAfter = 5 * time.Minute
	// overRecheck is how often a Source whose session is over re-reads its
	// Store, without the lock, for a token saved by another process.
	overRecheck = time.Second
	// Back-off of refreshes that fail while the token is still valid.
	minBackgroundRetry = time.Second
	maxBackgroundRetry = 30 * time.Second
	// warnEvery rate-limits warnings that repeat.
	warnEvery = 30 * time.Second
)

// errZeroSource is returned by the methods of a Source not made by NewSource.
var errZeroSource = errors.New("refresher: the Source has no Endpoint (make one with NewSource)")

// NewSource returns a Source that refreshes tokens through e. It panics if
// e is nil.
func NewSource(e Endpoint, opts ...Option) *Source {
	if e == nil {
		panic("refresher: NewSource called with a nil Endpoint")
	}
	s := &Source{
		endpoint:   e,
		now:        time.Now,
		leeway:     DefaultLeeway,
		timeout:    DefaultRefreshTimeout,
		jitterSeed: randomSeed(),
		saving:     make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.initial != nil {
		e := s.newEntry(s.initial, false)
		// A token given at construction is saved (if the Store holds
		// none) before its first use, so that it survives the process.
		e.unsaved, e.initial = s.store != nil, true
		s.cur.Store(e)
	}
	return s
}

// Token returns a valid access token. A fresh token is returned at once. A
// due token is returned too, while one refresh runs in the background (with
// [WithBlockingRefresh], the caller waits for that refresh instead, and gets
// the current token if it fails transiently). Without a valid token, the
// caller waits for the refresh, or for the first token from the Store or
// the login callback. The returned token must not be modified.
func (s *Source) Token(ctx context.Context) (*oauth2.Token, error) {
	e := s.cur.Load()
	if e != nil && !e.unsaved && (e.refreshAt.IsZero() || s.now().Before(e.refreshAt)) {
		return e.tok, nil // fresh
	}
	return s.dueToken(ctx, e)
}

// dueToken serves a token that is due, expired, unsaved or absent.
func (s *Source) dueToken(ctx context.Context, e *entry) (*oauth2.Token, error) {
	if e == nil || e.unsaved {
		return s.Refresh(ctx, nil)
	}
	if !s.now().Before(e.validTo) {
		return s.Refresh(ctx, e.tok) // expired: wait
	}
	if !s.blocking {
		s.refreshInBackground(ctx, e)
		return e.tok, nil
	}
	if s.retryingLater(e) {
		return e.tok, nil
	}
	t, err := s.Refresh(ctx, e.tok)
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrReauthRequired) && s.now().Before(e.validTo) {
		s.warn(ctx, "refresh-failed-live", "refresher: refresh failed; using the current token until it expires", err)
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
	if s.endpoint == nil {
		return nil, errZeroSource
	}
	for {
		s.mu.Lock()
		c, tok, err := s.joinLocked(ctx, stale)
		s.mu.Unlock()
		if c == nil {
			return tok, err
		}
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if !c.savedOnly || c.err != nil || stale == nil || !sameToken(c.tok, stale) {
			return c.tok, c.err
		}
		// That refresh only saved the token the caller holds (one given at
		// construction, or one the Store had refused): now refresh it.
	}
}

// joinLocked decides, with s.mu held, whether a caller of Refresh gets an
// answer at once or waits for a refresh, which it starts if none runs.
func (s *Source) joinLocked(ctx context.Context, stale *oauth2.Token) (*call, *oauth2.Token, error) {
	cur := s.cur.Load()
	if cur != nil && !cur.unsaved && (stale == nil || !sameToken(cur.tok, stale)) {
		return nil, cur.tok, nil
	}
	now := s.now()
	if s.over != nil && s.login == nil {
		if s.store == nil || now.Before(s.recheckAt) {
			return nil, nil, s.over // over: fail fast
		}
		s.recheckAt = now.Add(overRecheck)
	}
	if s.backoff != nil && now.Before(s.retryAt) {
		return nil, nil, s.backoff // the server asked to wait
	}
	c := s.flight
	if c == nil {
		c = s.startLocked(ctx, cur, false, stale)
	}
	c.waiters++
	return c, nil, nil
}

// refreshInBackground starts a refresh of the due token e, unless one runs
// already, e is no longer current, or refreshes are backing off.
func (s *Source) refreshInBackground(ctx context.Context, e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if s.flight != nil || s.cur.Load() != e || s.over != nil ||
		now.Before(s.retryAt) || now.Before(s.bgRetryAt) {
		return
	}
	s.startLocked(ctx, e, true, nil)
}

// retryingLater reports whether a refresh of the still-valid token e failed
// recently and is not to be tried again yet.
func (s *Source) retryingLater(e *entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Load() == e && s.now().Before(s.bgRetryAt)
}

// startLocked starts a refresh of from (nil: no token) on its own goroutine.
// stale is the token its caller had rejected: with no current token (a
// Source opened again by Sessions between a request's Token and its
// Refresh), the same token in the Store is not newer.
func (s *Source) startLocked(ctx context.Context, from *entry, background bool, stale *oauth2.Token) *call {
	c := &call{
		done:       make(chan struct{}),
		gen:        s.gen,
		from:       from,
		over:       s.over,
		overTok:    s.overTok,
		background: background,
	}
	if from == nil {
		c.rejected = stale
	}
	s.flight = c
	go s.run(context.WithoutCancel(ctx), c)
	return c
}

// SetToken replaces the current token, for example after the user logged in
// again, and ends the over state that follows ErrReauthRequired. The token
// is saved to the Store first; if that fails, nothing changes. A refresh
// running meanwhile is superseded: its outcome is neither saved nor
// published, and its callers get this token.
func (s *Source) SetToken(ctx context.Context, t *oauth2.Token) error {
	if s.endpoint == nil {
		return errZeroSource
	}
	if t == nil || t.AccessToken == "" {
		return errors.New("refresher: SetToken needs a token with an access token")
	}
	t = cloneToken(t)
	release, err := s.holdSaving(ctx)
	if err != nil {
		return err
	}
	defer release()
	if s.store != nil {
		if err := s.store.Save(ctx, t); err != nil {
			return fmt.Errorf("refresher: save token: %w", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.cur.Store(s.newEntry(t, false))
	s.liveLocked()
	return nil
}

// liveLocked records, with s.mu held, that the session lives and nothing
// holds refreshes back.
func (s *Source) liveLocked() {
	s.over, s.overTok = nil, nil
	s.clearBackoffLocked()
}

// overLocked ends the session, with s.mu held: callers get err until a new
// token comes, and rejected (if not nil) is never adopted again.
func (s *Source) overLocked(err error, rejected *oauth2.Token) {
	s.cur.Store(nil)
	s.over, s.recheckAt = err, s.now().Add(overRecheck)
	if rejected != nil {
		s.overTok = rejected
	}
	s.clearBackoffLocked()
}

// clearBackoffLocked forgets, with s.mu held, what held refreshes back.
func (s *Source) clearBackoffLocked() {
	s.backoff, s.retryAt, s.bgFails, s.bgRetryAt = nil, time.Time{}, 0, time.Time{}
}

// holdSaving takes the saving semaphore, or gives up when ctx is done.
func (s *Source) holdSaving(ctx context.Context) (release func(), err error) {
	select {
	case s.saving <- struct{}{}:
		return func() { <-s.saving }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Adopted reports whether t is the current token and was taken from the
// Store, saved there by another holder, rather than issued to this Source.
// Such a token may have been rejected by the server already (access tokens
// invalidated before their expiry, by revocation or a key rotation): the
// transport package then allows one more refresh for a request whose
// replay with it was rejected too.
func (s *Source) Adopted(_ context.Context, t *oauth2.Token) bool {
	e := s.cur.Load()
	return e != nil && e.adopted && sameToken(e.tok, t)
}

// TokenSource returns an [oauth2.TokenSource] backed by s, for use with the
// golang.org/x/oauth2 ecosystem. Its Token method calls s.Token with
// [context.Background].
func (s *Source) TokenSource() oauth2.TokenSource { return tokenSource{s} }

type tokenSource struct{ s *Source }

func (ts tokenSource) Token() (*oauth2.Token, error) { return ts.s.Token(context.Background()) }

// observed reports whether c is a refresh that Observers see start and end:
// not a flight that only saves an unsaved token, nor one that only looks at
// the Store of a session that is over.
func (c *call) observed() bool {
	return !(c.from != nil && c.from.unsaved) && c.over == nil
}

// The refresh path. run decides the outcome of one refresh on its own
// goroutine without touching shared state, then commits it in one step.

// outcome is what a refresh decided.
type outcome struct {
	kind     outcomeKind
	tok      *oauth2.Token // the token to publish (refreshed, adopted, logged in, unsaved)
	old      *oauth2.Token // the token it replaces (for the refresh hook)
	prev     *oauth2.Token // kindUnsaved: what the Store should hold when saved again
	rejected *oauth2.Token // kindOver: the token that was refused
	err      error
}

type outcomeKind int

const (
	kindFailed     outcomeKind = iota // nothing new; err says why
	kindRefreshed                     // the Endpoint issued tok
	kindLoggedIn                      // the login callback issued tok
	kindAdopted                       // the Store held tok, newer than ours
	kindSaved                         // an unsaved tok is now in the Store
	kindUnsaved                       // tok was issued but the Store refused it
	kindOver                          // the session is over
	kindSuperseded                    // the token was replaced meanwhile (SetToken, Logout)
)

// run performs one refresh and publishes its outcome to c. A panic or
// runtime.Goexit in anything it calls ends the refresh with an error; the
// flight is always cleared and its callers always released.
func (s *Source) run(trigger context.Context, c *call) {
	ctx := trigger
	if c.observed() {
		for _, o := range s.observers {
			ctx = s.observeStart(ctx, o, c)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	var out outcome
	decided := false
	defer func() {
		if !decided {
			out = outcome{err: panicError(c.phase, recover())}
			s.log.LogAttrs(ctx, slog.LevelError, "refresher: refresh aborted", slog.String("error", out.err.Error()))
		}
		s.finish(ctx, c, out, time.Since(start))
	}()
	out = s.decide(ctx, c)
	decided = true
}

// decide computes the refresh's outcome: adopt a newer token from the
// Store (read first without the lock, then under it), else exchange the
// refresh token (or log in) and save the result.
func (s *Source) decide(ctx context.Context, c *call) outcome {
	if c.from != nil && c.from.unsaved {
		return s.saveAgain(ctx, c)
	}
	known := c.known()
	if out, done := s.lookWithoutLock(ctx, c, known); done {
		return out
	}
	lease, err := s.lock(ctx, c)
	if err != nil {
		return outcome{err: err}
	}
	defer s.unlock(ctx, c, lease)
	basis, held := known, known
	if s.store != nil {
		st, err := s.load(ctx, c)
		switch {
		case err != nil:
			return outcome{err: err}
		case s.adoptable(st, known):
			return outcome{kind: kindAdopted, tok: st, old: known}
		}
		held = st
		if st != nil && st.AccessToken != "" && !sameToken(st, c.overTok) {
			basis = st // newer than ours but due: refresh that one
		}
	}
	return s.exchange(ctx, c, lease, basis, held)
}

// known returns the token the refresh knows of, not to be taken from the
// Store as newer: the current one, the one refused when the session ended,
// or the one the caller saw rejected.
func (c *call) known() *oauth2.Token {
	switch {
	case c.over != nil:
		return c.overTok
	case c.from != nil:
		return c.from.tok
	}
	return c.rejected
}

// lookWithoutLock reads the Store without its lock: a newer token that is
// not due is adopted, and a session that is over with nothing new stays
// over, with no lock taken either way.
func (s *Source) lookWithoutLock(ctx context.Context, c *call, known *oauth2.Token) (outcome, bool) {
	if s.store == nil {
		return outcome{}, false
	}
	st, err := s.load(ctx, c)
	switch {
	case err != nil:
		return outcome{err: err}, true
	case s.adoptable(st, known):
		return outcome{kind: kindAdopted, tok: st, old: known}, true
	case c.over != nil && s.login == nil:
		return outcome{kind: kindOver, err: c.over}, true
	}
	return outcome{}, false
}

// exchange obtains a new token for basis from the Endpoint, or from the
// login callback when there is nothing to refresh, and saves it over held.
func (s *Source) exchange(ctx context.Context, c *call, lease Lease, basis, held *oauth2.Token) outcome {
	switch {
	case c.over != nil && sameToken(basis, c.overTok):
		return s.relogin(ctx, c, basis, held, c.over)
	case basis == nil:
		return s.relogin(ctx, c, nil, held, ErrNoToken)
	case basis.RefreshToken == "":
		return s.relogin(ctx, c, basis, held, sessionOver("the token has no refresh token"))
	}
	nt, err := s.callEndpoint(ctx, c, lease, basis)
	if err != nil {
		if !errors.Is(err, ErrReauthRequired) {
			return outcome{err: err, old: basis}
		}
		if st := s.storedNewer(ctx, c, basis); st != nil {
			return outcome{kind: kindAdopted, tok: st, old: basis}
		}
		return s.relogin(ctx, c, basis, held, err)
	}
	if nt.RefreshToken == "" {
		nt.RefreshToken = basis.RefreshToken // RFC 6749 §6: keep the old one
	}
	return s.persist(ctx, c, kindRefreshed, basis, held, nt)
}

// callEndpoint presents basis's refresh token, once the lease (if any) is
// confirmed, and returns a copy of the new token or a *RefreshError.
func (s *Source) callEndpoint(ctx context.Context, c *call, lease Lease, basis *oauth2.Token) (*oauth2.Token, error) {
	if lease != nil {
		ctx = withLeaseCheck(ctx, lease)
		if _, checks := s.endpoint.(fenceChecker); !checks {
			if err := confirmLease(ctx, lease); err != nil {
				return nil, &RefreshError{Err: err}
			}
		}
	}
	c.phase = "the Endpoint"
	nt, err := s.endpoint.Refresh(ctx, basis)
	c.phase = ""
	if err == nil && (nt == nil || nt.AccessToken == "") {
		err = &RefreshError{Err: errors.New("the endpoint returned no access token")}
	}
	if err != nil {
		return nil, asRefreshError(err)
	}
	return s.stamped(nt), nil
}

// stamped returns a copy of a token just issued, with the lifetime it was
// issued with recorded in ExpiresIn, so that a process that adopts it from
// the Store later knows its refresh window.
func (s *Source) stamped(t *oauth2.Token) *oauth2.Token {
	t = cloneToken(t)
	if t.ExpiresIn <= 0 && !t.Expiry.IsZero() {
		t.ExpiresIn = max(int64(t.Expiry.Sub(s.now()).Round(time.Second)/time.Second), 0)
	}
	return t
}

// relogin asks the login callback for a new token, or ends the session
// with cause. basis, if not nil, is the token that can no longer be
// refreshed; it is remembered, so that it is not adopted again.
func (s *Source) relogin(ctx context.Context, c *call, basis, held *oauth2.Token, cause error) outcome {
	if s.login == nil {
		return outcome{kind: kindOver, rejected: basis, err: cause}
	}
	c.phase = "the login callback"
	nt, err := s.login(ctx)
	c.phase = ""
	if err == nil && (nt == nil || nt.AccessToken == "") {
		err = errors.New("the login callback returned no access token")
	}
	if err != nil {
		return outcome{kind: kindOver, rejected: basis, err: fmt.Errorf("%w: login: %w", ErrReauthRequired, err)}
	}
	return s.persist(ctx, c, kindLoggedIn, basis, held, s.stamped(nt))
}

// saveAgain saves a token that is not yet in the Store (one the Store
// refused, or the token given at construction), under the lock unless the
// Store can compare and swap.
func (s *Source) saveAgain(ctx context.Context, c *call) outcome {
	if _, cas := s.store.(CompareAndSwapper); !cas {
		lease, err := s.lock(ctx, c)
		if err != nil {
			return outcome{err: err}
		}
		defer s.unlock(ctx, c, lease)
		if c.from.initial {
			if out, done := s.takeStoredOverInitial(ctx, c, lease); done {
				return out
			}
		}
	}
	return s.persist(ctx, c, kindSaved, c.from.prev, c.from.prev, c.from.tok)
}

// takeStoredOverInitial handles the token given at construction with a
// Store that cannot compare and swap (CompareAndSwap(nil, t) does the same): a token the Store holds already is
// the newer one, adopted (or refreshed, if due) instead of overwritten.
func (s *Source) takeStoredOverInitial(ctx context.Context, c *call, lease Lease) (outcome, bool) {
	st, err := s.load(ctx, c)
	switch {
	case err != nil:
		return outcome{err: err}, true
	case st == nil || st.AccessToken == "":
		return outcome{}, false
	case sameToken(st, c.from.tok):
		return outcome{kind: kindSaved, tok: c.from.tok}, true
	case s.adoptable(st, nil):
		return outcome{kind: kindAdopted, tok: st, old: c.from.tok}, true
	}
	return s.exchange(ctx, c, lease, st, st), true
}

// persist saves nt in place of held, unless the token was replaced
// meanwhile (a newer generation) or, with a [CompareAndSwapper], the Store
// no longer holds held: then the stored token is adopted.
func (s *Source) persist(ctx context.Context, c *call, kind outcomeKind, old, held, nt *oauth2.Token) outcome {
	if s.store == nil {
		return outcome{kind: kind, tok: nt, old: old}
	}
	release, err := s.holdSaving(ctx)
	if err != nil {
		return unsaved(nt, held, err)
	}
	defer release()
	if s.generation() != c.gen {
		return outcome{kind: kindSuperseded}
	}
	c.phase = "the Store"
	defer func() { c.phase = "" }()
	swapped := true
	if cas, ok := s.store.(CompareAndSwapper); ok {
		swapped, err = cas.CompareAndSwap(ctx, held, nt)
	} else {
		err = s.store.Save(ctx, nt)
	}
	switch {
	case err != nil:
		return unsaved(nt, held, err)
	case !swapped:
		return s.adoptAfterConflict(ctx, c, old, nt)
	}
	return outcome{kind: kind, tok: nt, old: old}
}

// unsaved is the outcome of a token nt that could not be saved in place of
// held: it is kept, to be saved before use.
func unsaved(nt, held *oauth2.Token, err error) outcome {
	return outcome{kind: kindUnsaved, tok: nt, prev: held, err: &RefreshError{Err: fmt.Errorf("save token: %w", err)}}
}

// adoptAfterConflict adopts what the Store holds after a fenced save found
// another holder's token there: it is never overwritten. If the Store was
// emptied meanwhile, nt is kept as unsaved rather than lost: it is the
// only live token of the session.
func (s *Source) adoptAfterConflict(ctx context.Context, c *call, old, nt *oauth2.Token) outcome {
	st, err := s.load(ctx, c)
	if err == nil && (st == nil || st.AccessToken == "") {
		err = &RefreshError{Err: errors.New("save token: the Store was emptied during the refresh")}
	}
	if err != nil {
		return outcome{kind: kindUnsaved, tok: nt, err: err}
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "refresher: the Store changed during the refresh; adopted its token instead of overwriting it")
	return outcome{kind: kindAdopted, tok: st, old: old}
}

// finish runs the hooks, commits the outcome and releases the callers.
func (s *Source) finish(ctx context.Context, c *call, out outcome, d time.Duration) {
	if out.kind == kindRefreshed && s.onRefresh != nil {
		s.guard(ctx, "the refresh hook", func() { s.onRefresh(out.old, out.tok) })
	}
	s.mu.Lock()
	tok, err, ended := s.commitLocked(c, out)
	waiters := c.waiters
	s.flight = nil
	s.mu.Unlock()

	if err != nil {
		s.logFailure(ctx, c, err)
		if s.onFailure != nil {
			s.guard(ctx, "the failure hook", func() { s.onFailure(out.old, err) })
		}
	} else if out.kind != kindSuperseded {
		s.logSuccess(ctx, out)
	}
	s.emit(ctx, c, out, err, ended, waiters, d)
	if ended {
		s.reportOver(ctx, err)
	}
	c.tok, c.err, c.savedOnly = tok, err, out.kind == kindSaved
	close(c.done)
}

// commitLocked applies out to the Source, with s.mu held, and returns what
// the callers get and whether the session just ended. An outcome of an
// older generation changes nothing.
func (s *Source) commitLocked(c *call, out outcome) (tok *oauth2.Token, err error, ended bool) {
	if s.gen != c.gen || out.kind == kindSuperseded {
		if cur := s.cur.Load(); cur != nil && !cur.unsaved {
			return cur.tok, nil, false
		}
		if s.over != nil {
			return nil, s.over, false
		}
		return nil, ErrNoToken, false
	}
	now := s.now()
	switch out.kind {
	case kindRefreshed, kindLoggedIn, kindAdopted, kindSaved:
		e := s.newEntry(out.tok, false)
		if out.kind != kindAdopted && !e.refreshAt.IsZero() && !now.Before(e.refreshAt) {
			// Due on arrival (a skewed clock, a server that lies about
			// expiry): refreshing it on every use would not help; rely
			// on the server's rejection instead.
			e.refreshAt = time.Time{}
		}
		e.adopted = out.kind == kindAdopted
		s.cur.Store(e)
		s.liveLocked()
		return out.tok, nil, false
	case kindOver:
		ended = s.over == nil
		s.overLocked(out.err, out.rejected)
		return nil, out.err, ended
	case kindUnsaved:
		e := s.newEntry(out.tok, true)
		e.prev = out.prev
		s.cur.Store(e)
		return nil, out.err, false
	}
	s.backOffLocked(c, out.err, now)
	return nil, out.err, false
}

// backOffLocked records a failed refresh: a server's Retry-After (capped at
// MaxRetryAfter) holds every refresh back; a failure while the token is
// still valid holds back the next refresh of that token, exponentially.
func (s *Source) backOffLocked(c *call, err error, now time.Time) {
	var re *RefreshError
	if errors.As(err, &re) && re.RetryAfter > 0 {
		s.backoff, s.retryAt = err, now.Add(min(re.RetryAfter, MaxRetryAfter))
	}
	if e := s.cur.Load(); e != nil && e == c.from && now.Before(e.validTo) {
		s.bgFails++
		delay := minBackgroundRetry << min(s.bgFails-1, 16)
		s.bgRetryAt = now.Add(min(delay, maxBackgroundRetry))
	}
}

// Steps that call into the Store, each recording its phase for panics.

// load reads the Store.
func (s *Source) load(ctx context.Context, c *call) (*oauth2.Token, error) {
	c.phase = "the Store"
	defer func() { c.phase = "" }()
	st, err := s.store.Load(ctx)
	if err != nil {
		return nil, &RefreshError{Err: fmt.Errorf("load token: %w", err)}
	}
	return st, nil
}

// adoptable reports whether st, read from the Store, is a token to take as
// it is: another holder saved it (it is not known), and it is not due.
func (s *Source) adoptable(st, known *oauth2.Token) bool {
	if st == nil || st.AccessToken == "" || sameToken(st, known) {
		return false
	}
	e := s.newEntry(st, false)
	return e.refreshAt.IsZero() || s.now().Before(e.refreshAt)
}

// storedNewer returns the Store's token if it differs from old: another
// process rotated the token while this one was refreshing without a lock.
func (s *Source) storedNewer(ctx context.Context, c *call, old *oauth2.Token) *oauth2.Token {
	if s.store == nil {
		return nil
	}
	st, err := s.load(ctx, c)
	if err != nil || st == nil || st.AccessToken == "" || sameToken(st, old) {
		return nil
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "refresher: refresh token rejected, but the Store holds a newer token; adopted it")
	return st
}

// lock takes the Store's lock, if it has one, reporting the wait.
func (s *Source) lock(ctx context.Context, c *call) (Lease, error) {
	start := time.Now()
	c.phase = "the Store's lock"
	defer func() { c.phase = "" }()
	var lease Lease
	switch l := s.store.(type) {
	case LeaseLocker:
		var err error
		if lease, err = l.LockLease(ctx); err != nil {
			return nil, &RefreshError{Err: fmt.Errorf("lock store: %w", err)}
		}
	case Locker:
		unlock, err := l.Lock(ctx)
		if err != nil {
			return nil, &RefreshError{Err: fmt.Errorf("lock store: %w", err)}
		}
		lease = plainLock(unlock)
	default:
		return nil, nil
	}
	wait := time.Since(start)
	for _, o := range s.observers {
		s.guard(ctx, "an Observer", func() { o.LockAcquired(ctx, wait) })
	}
	return lease, nil
}

// unlock releases the lock taken by lock.
func (s *Source) unlock(ctx context.Context, c *call, lease Lease) {
	if lease == nil {
		return
	}
	c.phase = "the Store's unlock"
	defer func() { c.phase = "" }()
	if err := lease.Unlock(); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "refresher: unlock store", slog.String("error", err.Error()))
	}
}

// plainLock is the Lease of a [Locker] that cannot lapse.
type plainLock func() error

func (plainLock) Confirm(context.Context) error { return nil }
func (u plainLock) Unlock() error               { return u() }

// newEntry computes when t becomes due, spread by jitter over the first
// half of its refresh window, and until when it is served. The window is
// the leeway, capped at half the token's lifetime: the lifetime it was
// issued with (ExpiresIn, which the Source records and the stores keep), or
// else what remains of it now.
func (s *Source) newEntry(t *oauth2.Token, unsaved bool) *entry {
	e := &entry{tok: t, unsaved: unsaved}
	if !t.Expiry.IsZero() {
		life := time.Duration(t.ExpiresIn) * time.Second
		if life <= 0 {
			life = t.Expiry.Sub(s.now())
		}
		lead := max(min(s.leeway, life/2), 0)
		e.refreshAt = t.Expiry.Add(-lead + jitter(s.jitterSeed, t, lead/2))
		e.validTo = t.Expiry.Add(-min(expirySafety, lead/4))
	}
	return e
}

// expirySafety is how long before its expiry a token stops being served
// while a refresh runs: a request sent later might arrive expired. For a
// short window it shrinks to a quarter of the window, so that a quarter of
// the window always separates the latest refresh point from it, for the
// background refresh (and a wait for the Store's lock) to finish.
const expirySafety = 5 * time.Second

// generation returns the current generation.
func (s *Source) generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// entryToken returns e's token, or nil.
func entryToken(e *entry) *oauth2.Token {
	if e == nil {
		return nil
	}
	return e.tok
}

// sameToken reports whether a and b are the same token pair.
func sameToken(a, b *oauth2.Token) bool {
	return a == b || (a != nil && b != nil &&
		a.AccessToken == b.AccessToken && a.RefreshToken == b.RefreshToken)
}
