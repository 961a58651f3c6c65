package refresher_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/autorefresh/autorefresh/internal/safebuf"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// rotator is an Endpoint that rotates the refresh token on every call and
// rejects a reused one, as a server with reuse detection does.
type rotator struct {
	mu   sync.Mutex // guards live, n
	live string
	n    int

	calls atomic.Int64
	// gate, when set, holds each call until it is closed or ctx ends.
	gate chan struct{}
	// started, when set, receives one value per call as it starts.
	started chan struct{}
	// fail, when set, is returned instead of a token.
	fail error
	// expiresIn, when set, gives new tokens an expiry on clock.
	expiresIn time.Duration
	clock     func() time.Time
	// keepRefresh answers without a refresh token (no rotation).
	keepRefresh bool
}

func newRotator() (*rotator, *oauth2.Token) {
	r := &rotator{clock: time.Now}
	r.live = "refresh-0"
	return r, &oauth2.Token{AccessToken: "access-0", RefreshToken: "refresh-0", TokenType: "Bearer"}
}

func (r *rotator) Refresh(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
	r.calls.Add(1)
	if r.started != nil {
		r.started <- struct{}{}
	}
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, &refresher.RefreshError{Err: ctx.Err()}
		}
	}
	if r.fail != nil {
		return nil, r.fail
	}
	if err := ctx.Err(); err != nil {
		return nil, &refresher.RefreshError{Err: err}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur.RefreshToken != r.live {
		return nil, &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant"}
	}
	r.n++
	t := &oauth2.Token{AccessToken: fmt.Sprintf("access-%d", r.n), TokenType: "Bearer"}
	if !r.keepRefresh {
		r.live = fmt.Sprintf("refresh-%d", r.n)
		t.RefreshToken = r.live
	}
	if r.expiresIn > 0 {
		t.Expiry = r.clock().Add(r.expiresIn)
	}
	return t, nil
}

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestRefreshWithStaleTokenReturnsCurrentWithoutCall(t *testing.T) {
	r, tok := newRotator()
	src := refresher.NewSource(r, refresher.WithToken(tok))
	ctx := context.Background()

	fresh, err := src.Refresh(ctx, tok)
	require.NoError(t, err)
	require.Equal(t, int64(1), r.calls.Load())

	again, err := src.Refresh(ctx, tok) // tok is stale now
	require.NoError(t, err)
	assert.Equal(t, fresh.AccessToken, again.AccessToken)
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls")

	// A stale copy (not the same pointer) is recognised too.
	cp := *tok
	again, err = src.Refresh(ctx, &cp)
	require.NoError(t, err)
	assert.Equal(t, fresh.AccessToken, again.AccessToken)
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls")
}

func TestResponseWithoutRefreshTokenKeepsTheOldOne(t *testing.T) {
	r, tok := newRotator()
	r.keepRefresh = true
	store := refresher.NewMemoryStore(nil)
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithStore(store))

	fresh, err := src.Refresh(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, "access-1", fresh.AccessToken)
	assert.Equal(t, tok.RefreshToken, fresh.RefreshToken)
	saved, _ := store.Load(context.Background())
	assert.Equal(t, tok.RefreshToken, saved.RefreshToken)
}

// orderStore records, for each token saved, whether any caller had already
// received it at the time it was saved.
type orderStore struct {
	refresher.MemoryStore
	handedOut func(access string) bool
	lateSaves atomic.Int64
	saves     atomic.Int64
}

func (s *orderStore) Save(ctx context.Context, t *oauth2.Token) error {
	s.record(t)
	return s.MemoryStore.Save(ctx, t)
}

func (s *orderStore) CompareAndSwap(ctx context.Context, prev, next *oauth2.Token) (bool, error) {
	s.record(next)
	return s.MemoryStore.CompareAndSwap(ctx, prev, next)
}

func (s *orderStore) record(t *oauth2.Token) {
	s.saves.Add(1)
	if s.handedOut(t.AccessToken) {
		s.lateSaves.Add(1)
	}
}

func TestRotatedTokenIsSavedBeforeAnyCallerGetsIt(t *testing.T) {
	r, tok := newRotator()
	var seen sync.Map
	store := &orderStore{handedOut: func(a string) bool { _, ok := seen.Load(a); return ok }}
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithStore(store))

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			cur, err := src.Token(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			seen.Store(cur.AccessToken, true)
			fresh, err := src.Refresh(context.Background(), cur)
			if err != nil {
				t.Error(err)
				return
			}
			seen.Store(fresh.AccessToken, true)
		})
	}
	wg.Wait()
	assert.Equal(t, r.calls.Load()+1, store.saves.Load(), "one save per refresh, and one of the token given at construction")
	assert.Zero(t, store.lateSaves.Load(), "tokens saved after a caller had them")
	saved, _ := store.Load(context.Background())
	cur, _ := src.Token(context.Background())
	assert.Equal(t, cur.RefreshToken, saved.RefreshToken, "the store holds the live refresh token")
}

func TestWaiterWhoseContextEndsReturnsPromptly(t *testing.T) {
	r, tok := newRotator()
	r.gate = make(chan struct{})
	r.started = make(chan struct{}, 1)
	src := refresher.NewSource(r, refresher.WithToken(tok))

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := src.Refresh(ctx, tok)
		first <- err
	}()
	<-r.started // the shared refresh is running, started by the first caller

	second := make(chan *oauth2.Token, 1)
	go func() {
		got, err := src.Refresh(context.Background(), tok)
		if err != nil {
			t.Error(err)
		}
		second <- got
	}()

	cancel()
	// The first caller returns while the refresh is still held.
	assert.ErrorIs(t, <-first, context.Canceled)
	select {
	case <-second:
		t.Fatal("the second caller returned before the refresh ended")
	default:
	}

	close(r.gate)
	got := <-second
	require.NotNil(t, got)
	assert.Equal(t, "access-1", got.AccessToken, "the refresh completed for the others")
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls")
}

func TestSharedRefreshIsBoundedByItsOwnTimeout(t *testing.T) {
	r, tok := newRotator()
	r.gate = make(chan struct{}) // never opened: only the timeout ends it
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithRefreshTimeout(50*time.Millisecond))

	_, err := src.Refresh(context.Background(), tok)
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Temporary(), "a timed-out refresh is temporary")
	assert.NotErrorIs(t, err, refresher.ErrReauthRequired)
}

func TestInvalidGrantEndsSessionAndLaterCallsFailFast(t *testing.T) {
	r, tok := newRotator()
	r.fail = &refresher.RefreshError{StatusCode: 403, Code: "invalid_grant", Description: "revoked"}
	src := refresher.NewSource(r, refresher.WithToken(tok))
	ctx := context.Background()

	_, err := src.Refresh(ctx, tok)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	_, err = src.Token(ctx)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	_, err = src.Refresh(ctx, tok)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls")
}

func TestEndpointReturningErrReauthRequiredEndsSession(t *testing.T) {
	r, tok := newRotator()
	r.fail = fmt.Errorf("custom backend said no: %w", refresher.ErrReauthRequired)
	src := refresher.NewSource(r, refresher.WithToken(tok))

	_, err := src.Refresh(context.Background(), tok)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	var re *refresher.RefreshError
	assert.ErrorAs(t, err, &re, "errors are typed")
}

func TestLoginCallbackReplacesDeadSession(t *testing.T) {
	r, tok := newRotator()
	var logins atomic.Int64
	src := refresher.NewSource(r, refresher.WithToken(&oauth2.Token{AccessToken: "x", RefreshToken: "unknown"}),
		refresher.WithLogin(func(context.Context) (*oauth2.Token, error) {
			logins.Add(1)
			return tok, nil
		}))

	got, err := src.Refresh(context.Background(), &oauth2.Token{AccessToken: "x", RefreshToken: "unknown"})
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, got.AccessToken)
	assert.Equal(t, int64(1), logins.Load())

	// The new session refreshes normally.
	got, err = src.Refresh(context.Background(), got)
	require.NoError(t, err)
	assert.Equal(t, "access-1", got.AccessToken)
}

func TestSourceWithoutTokenFailsWithErrNoToken(t *testing.T) {
	r, _ := newRotator()
	src := refresher.NewSource(r)
	_, err := src.Token(context.Background())
	assert.ErrorIs(t, err, refresher.ErrNoToken)
	assert.ErrorIs(t, err, refresher.ErrReauthRequired)
	assert.Zero(t, r.calls.Load())
}

func TestSourceLoadsFirstTokenFromStore(t *testing.T) {
	r, tok := newRotator()
	src := refresher.NewSource(r, refresher.WithStore(refresher.NewMemoryStore(tok)))
	got, err := src.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, got.AccessToken)
	assert.Zero(t, r.calls.Load())
}

func TestTokenNearExpiryIsRefreshedBeforeUse(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.expiresIn, r.clock = 5*time.Minute, clock.Now
	tok.Expiry = clock.Now().Add(5 * time.Minute)
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now), refresher.WithBlockingRefresh())
	ctx := context.Background()

	clock.Advance(5*time.Minute - 31*time.Second) // just outside the leeway
	got, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "access-0", got.AccessToken)

	clock.Advance(17 * time.Second) // 14 s left: past the jittered refresh point
	got, err = src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "access-1", got.AccessToken)
	assert.Equal(t, int64(1), r.calls.Load())
}

func TestLeewayIsConfigurable(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	tok.Expiry = clock.Now().Add(10 * time.Minute)
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now),
		refresher.WithLeeway(2*time.Minute), refresher.WithBlockingRefresh())

	clock.Advance(7 * time.Minute) // 3 min left
	got, _ := src.Token(context.Background())
	assert.Equal(t, "access-0", got.AccessToken)
	clock.Advance(2 * time.Minute) // 59 s left: past the jittered refresh point
	got, _ = src.Token(context.Background())
	assert.Equal(t, "access-1", got.AccessToken)
}

func TestUnknownExpiryIsReactiveOnly(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator() // no Expiry
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now))
	clock.Advance(100 * 365 * 24 * time.Hour)
	got, err := src.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "access-0", got.AccessToken)
	assert.Zero(t, r.calls.Load())
}

func TestShortLivedTokenIsNotRefreshedOnEveryUse(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.expiresIn, r.clock = 10*time.Second, clock.Now // shorter than the 30 s leeway
	tok.Expiry = clock.Now().Add(10 * time.Second)
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now), refresher.WithBlockingRefresh())

	for range 10 {
		_, err := src.Token(context.Background())
		require.NoError(t, err)
	}
	assert.Zero(t, r.calls.Load(), "refreshes while the token is young")
	clock.Advance(7500 * time.Millisecond) // past its jittered refresh point (5 s to 2.5 s before expiry)
	got, err := src.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "access-1", got.AccessToken)
}

func TestProactiveTransientFailureKeepsUsingTheValidToken(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.fail = &refresher.RefreshError{StatusCode: 503}
	tok.Expiry = clock.Now().Add(5 * time.Minute)
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now), refresher.WithBlockingRefresh())

	clock.Advance(4*time.Minute + 50*time.Second)
	got, err := src.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "access-0", got.AccessToken, "still valid for 10 s")

	clock.Advance(10 * time.Second) // expired now
	_, err = src.Token(context.Background())
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Temporary())
}

// failingStore refuses to save while fail is set.
type failingStore struct {
	refresher.MemoryStore
	fail atomic.Bool
}

func (s *failingStore) Save(ctx context.Context, t *oauth2.Token) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.MemoryStore.Save(ctx, t)
}

func (s *failingStore) CompareAndSwap(ctx context.Context, prev, next *oauth2.Token) (bool, error) {
	if s.fail.Load() {
		return false, errors.New("disk full")
	}
	return s.MemoryStore.CompareAndSwap(ctx, prev, next)
}

func TestFailedSaveIsReportedAndTheTokenIsNotLost(t *testing.T) {
	r, tok := newRotator()
	store := &failingStore{}
	ctx := context.Background()
	require.NoError(t, store.Save(ctx, tok))
	src := refresher.NewSource(r, refresher.WithStore(store))
	_, err := src.Token(ctx)
	require.NoError(t, err)
	store.fail.Store(true)

	_, err = src.Refresh(ctx, tok)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "disk full")
	_, err = src.Token(ctx)
	require.Error(t, err, "an unsaved token is not handed out")

	store.fail.Store(false)
	got, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "access-1", got.AccessToken, "the rotated token was kept")
	saved, _ := store.Load(ctx)
	assert.Equal(t, "refresh-1", saved.RefreshToken)
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls: the rotated token was not refreshed again")
}

func TestRefreshAndFailureHooksReceiveTokens(t *testing.T) {
	r, tok := newRotator()
	var gotOld, gotNew *oauth2.Token
	var failOld *oauth2.Token
	var failErr error
	src := refresher.NewSource(r, refresher.WithToken(tok),
		refresher.WithRefreshHook(func(old, new *oauth2.Token) { gotOld, gotNew = old, new }),
		refresher.WithFailureHook(func(old *oauth2.Token, err error) { failOld, failErr = old, err }))

	fresh, err := src.Refresh(context.Background(), tok)
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, gotOld.AccessToken)
	assert.Equal(t, fresh.AccessToken, gotNew.AccessToken)

	r.fail = &refresher.RefreshError{StatusCode: 500}
	_, err = src.Refresh(context.Background(), fresh)
	require.Error(t, err)
	// The hook runs before the waiters are released; read after return.
	assert.Equal(t, fresh.AccessToken, failOld.AccessToken)
	var re *refresher.RefreshError
	require.ErrorAs(t, failErr, &re)
	assert.Equal(t, 500, re.StatusCode)
}

func TestLoggerNeverPrintsTokens(t *testing.T) {
	r, tok := newRotator()
	var buf safebuf.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithLogger(logger))
	ctx := context.Background()

	fresh, err := src.Refresh(ctx, tok)
	require.NoError(t, err)
	r.fail = &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant"}
	_, err = src.Refresh(ctx, fresh)
	require.Error(t, err)

	out := buf.String()
	require.Contains(t, out, "token refreshed")
	require.Contains(t, out, "refresh failed")
	for _, secret := range []string{tok.AccessToken, tok.RefreshToken, fresh.AccessToken, fresh.RefreshToken} {
		assert.NotContains(t, out, secret)
	}
}

func TestTokenSourceInteropsWithOAuth2(t *testing.T) {
	r, tok := newRotator()
	var ts oauth2.TokenSource = refresher.NewSource(r, refresher.WithToken(tok)).TokenSource()
	got, err := ts.Token()
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, got.AccessToken)
}

func TestRefreshErrorMessageNamesStatusAndCode(t *testing.T) {
	err := &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant", Description: "token revoked"}
	assert.Equal(t, "refresher: refresh failed: status 400: invalid_grant: token revoked", err.Error())
	assert.ErrorIs(t, err, refresher.ErrReauthRequired)
	assert.False(t, err.Temporary())
	assert.True(t, (&refresher.RefreshError{StatusCode: 429}).Temporary())
	assert.False(t, (&refresher.RefreshError{StatusCode: 404}).Temporary())
}

func TestRetryAfterIsHonouredBeforeTheNextRefresh(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.fail = &refresher.RefreshError{StatusCode: 429, RetryAfter: time.Minute}
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now))
	ctx := context.Background()

	_, err := src.Refresh(ctx, tok)
	require.Error(t, err)
	_, err = src.Refresh(ctx, tok)
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 429, re.StatusCode, "the waiting caller gets the server's answer")
	assert.Equal(t, int64(1), r.calls.Load(), "no call while the server asked to wait")

	clock.Advance(time.Minute)
	r.fail = nil
	got, err := src.Refresh(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, "access-1", got.AccessToken)
	assert.Equal(t, int64(2), r.calls.Load(), "endpoint calls")
}

func TestDeadSourcePicksUpTokenSavedByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	r, tok := newRotator()
	store := refresher.NewMemoryStore(nil)
	src := refresher.NewSource(r, refresher.WithStore(store), refresher.WithClock(clock.Now))
	_, err := src.Token(ctx)
	require.ErrorIs(t, err, refresher.ErrNoToken)

	// Another process logs in and saves its token to the shared Store:
	// the over Source re-reads the Store once a second.
	require.NoError(t, store.Save(ctx, tok))
	_, err = src.Token(ctx)
	require.ErrorIs(t, err, refresher.ErrNoToken, "within the second, it fails fast")
	clock.Advance(time.Second)
	got, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, got.AccessToken)
	assert.Zero(t, r.calls.Load(), "endpoint calls")
}

func TestRejectedTokenInStoreIsNotAdoptedAgain(t *testing.T) {
	ctx := context.Background()
	r, tok := newRotator()
	r.fail = &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant"}
	store := refresher.NewMemoryStore(tok)
	src := refresher.NewSource(r, refresher.WithStore(store))

	first, err := src.Token(ctx)
	require.NoError(t, err)
	_, err = src.Refresh(ctx, first)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	for range 5 {
		_, err = src.Token(ctx)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
	}
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls: the dead token in the Store is not refreshed again")
}

func TestTokenDueOnArrivalIsNotRefreshedOnEveryUse(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.expiresIn, r.clock = -time.Minute, clock.Now // the server's tokens look expired here
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now))
	ctx := context.Background()

	fresh, err := src.Refresh(ctx, tok)
	require.NoError(t, err)
	for range 10 {
		got, err := src.Token(ctx)
		require.NoError(t, err)
		assert.Equal(t, fresh.AccessToken, got.AccessToken)
	}
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls")

	// A rejection still refreshes it.
	got, err := src.Refresh(ctx, fresh)
	require.NoError(t, err)
	assert.Equal(t, "access-2", got.AccessToken)
}

func TestSetTokenDuringAFailingRefreshIsNotUndone(t *testing.T) {
	ctx := context.Background()
	r, tok := newRotator()
	r.fail = &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant"}
	r.gate = make(chan struct{})
	r.started = make(chan struct{}, 1)
	src := refresher.NewSource(r, refresher.WithToken(tok))

	waiter := make(chan error, 1)
	go func() {
		_, err := src.Refresh(ctx, tok)
		waiter <- err
	}()
	<-r.started
	login := &oauth2.Token{AccessToken: "after-login", RefreshToken: "r2"}
	require.NoError(t, src.SetToken(ctx, login))
	close(r.gate) // the refresh now fails with invalid_grant

	require.NoError(t, <-waiter, "the waiter gets the token set meanwhile")
	got, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "after-login", got.AccessToken)
}
