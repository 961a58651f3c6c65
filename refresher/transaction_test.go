package refresher_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
)

// plainStore is a Store without compare-and-swap or lock, as a user might
// write one.
type plainStore struct {
	mu  sync.Mutex // guards tok
	tok *oauth2.Token
	// saving, when set, receives one value per Save as it starts;
	// gate, when set, holds each Save until it is closed.
	saving chan struct{}
	gate   chan struct{}
}

func (s *plainStore) Load(context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tok, nil
}

func (s *plainStore) Save(ctx context.Context, t *oauth2.Token) error {
	if s.saving != nil {
		s.saving <- struct{}{}
	}
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *t
	s.tok = &c
	return nil
}

// lockingStore is a MemoryStore with a Locker that counts its uses.
type lockingStore struct {
	refresher.MemoryStore
	mu    sync.Mutex
	locks atomic.Int64
	loads atomic.Int64
}

func (s *lockingStore) Lock(ctx context.Context) (func() error, error) {
	s.locks.Add(1)
	s.mu.Lock()
	return func() error { s.mu.Unlock(); return nil }, nil
}

func (s *lockingStore) Load(ctx context.Context) (*oauth2.Token, error) {
	s.loads.Add(1)
	return s.MemoryStore.Load(ctx)
}

func TestReloginDuringASuccessfulRefreshWinsInTheStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store refresher.Store
	}{
		{"compare-and-swap store", refresher.NewMemoryStore(nil)},
		{"plain store", &plainStore{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			r, tok := newRotator()
			r.gate = make(chan struct{})
			r.started = make(chan struct{}, 1)
			require.NoError(t, tc.store.Save(ctx, tok))
			src := refresher.NewSource(r, refresher.WithStore(tc.store))
			first, err := src.Token(ctx)
			require.NoError(t, err)

			waiter := make(chan *oauth2.Token, 1)
			go func() {
				got, err := src.Refresh(ctx, first)
				assert.NoError(t, err)
				waiter <- got
			}()
			<-r.started // the refresh is at the server
			login := &oauth2.Token{AccessToken: "other-account", RefreshToken: "other-refresh"}
			require.NoError(t, src.SetToken(ctx, login))
			close(r.gate) // the server rotates the old session's token

			assert.Equal(t, "other-account", (<-waiter).AccessToken, "the waiter gets the login's token")
			stored, err := tc.store.Load(ctx)
			require.NoError(t, err)
			assert.Equal(t, "other-account", stored.AccessToken, "the Store holds the new login, not the old session")
			cur, err := src.Token(ctx)
			require.NoError(t, err)
			assert.Equal(t, "other-account", cur.AccessToken)
		})
	}
}

func TestRefreshHonoursItsContextWhileSetTokenSaves(t *testing.T) {
	r, tok := newRotator()
	store := &plainStore{tok: tok, saving: make(chan struct{}, 1), gate: make(chan struct{})}
	src := refresher.NewSource(r, refresher.WithStore(store))
	first, err := src.Token(context.Background())
	require.NoError(t, err)

	setDone := make(chan error, 1)
	go func() {
		setDone <- src.SetToken(context.Background(), &oauth2.Token{AccessToken: "login", RefreshToken: "r"})
	}()
	<-store.saving // SetToken is inside Store.Save, which hangs

	ctx, cancel := context.WithCancel(context.Background())
	refreshed := make(chan error, 1)
	go func() {
		_, err := src.Refresh(ctx, first)
		refreshed <- err
	}()
	got, err := src.Token(context.Background())
	require.NoError(t, err, "Token is not blocked by the save")
	assert.Equal(t, first.AccessToken, got.AccessToken)
	cancel()
	assert.ErrorIs(t, <-refreshed, context.Canceled, "Refresh returns when its context ends")

	close(store.gate)
	require.NoError(t, <-setDone)
	got, err = src.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "login", got.AccessToken)
}

func TestAbsurdRetryAfterHoldsRefreshesBackAtMostMaxRetryAfter(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.fail = &refresher.RefreshError{StatusCode: 503, RetryAfter: 315360000 * time.Second} // ten years
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now))
	ctx := context.Background()

	_, err := src.Refresh(ctx, tok)
	require.Error(t, err)
	clock.Advance(refresher.MaxRetryAfter - time.Second)
	_, err = src.Refresh(ctx, tok)
	require.Error(t, err)
	assert.Equal(t, int64(1), r.calls.Load(), "no call before the cap")

	clock.Advance(time.Second)
	r.fail = nil
	got, err := src.Refresh(ctx, tok)
	require.NoError(t, err)
	assert.Equal(t, "access-1", got.AccessToken)
	assert.Equal(t, int64(2), r.calls.Load(), "endpoint calls")
}

// panicking describes a user-supplied piece that panics or exits.
type panicking struct {
	name   string
	source func(r *rotator, tok *oauth2.Token, blow func()) *refresher.Source
}

// hookStore calls blow from the Store method named by at.
type hookStore struct {
	refresher.MemoryStore
	at   string
	blow func()
	on   atomic.Bool // armed
}

func (s *hookStore) maybe(at string) {
	if s.at == at && s.on.Load() {
		s.blow()
	}
}

func (s *hookStore) Load(ctx context.Context) (*oauth2.Token, error) {
	s.maybe("load")
	return s.MemoryStore.Load(ctx)
}

func (s *hookStore) CompareAndSwap(ctx context.Context, prev, next *oauth2.Token) (bool, error) {
	s.maybe("save")
	return s.MemoryStore.CompareAndSwap(ctx, prev, next)
}

func (s *hookStore) LockLease(ctx context.Context) (refresher.Lease, error) {
	s.maybe("lock")
	return hookLease{s}, nil
}

func (s *hookStore) Lock(ctx context.Context) (func() error, error) {
	l, err := s.LockLease(ctx)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

type hookLease struct{ s *hookStore }

func (l hookLease) Confirm(context.Context) error { l.s.maybe("confirm"); return nil }
func (l hookLease) Unlock() error                 { l.s.maybe("unlock"); return nil }

func storeBlowing(at string) func(r *rotator, tok *oauth2.Token, blow func()) *refresher.Source {
	return func(r *rotator, tok *oauth2.Token, blow func()) *refresher.Source {
		st := &hookStore{at: at, blow: blow}
		_ = st.Save(context.Background(), tok)
		st.on.Store(true)
		return refresher.NewSource(r, refresher.WithStore(st))
	}
}

func TestPanicOrGoexitInUserCodeBecomesTheRefreshsError(t *testing.T) {
	pieces := []panicking{
		{"endpoint", func(r *rotator, tok *oauth2.Token, blow func()) *refresher.Source {
			var once sync.Once
			ep := refresher.EndpointFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
				fired := false
				once.Do(func() { fired = true })
				if fired {
					blow()
				}
				return r.Refresh(ctx, cur)
			})
			return refresher.NewSource(ep, refresher.WithToken(tok))
		}},
		{"store load", storeBlowing("load")},
		{"store save", storeBlowing("save")},
		{"store lock", storeBlowing("lock")},
		{"lease confirm", storeBlowing("confirm")},
		{"store unlock", storeBlowing("unlock")},
		{"login callback", func(r *rotator, tok *oauth2.Token, blow func()) *refresher.Source {
			return refresher.NewSource(r, refresher.WithLogin(func(context.Context) (*oauth2.Token, error) {
				blow()
				return tok, nil
			}))
		}},
	}
	for _, p := range pieces {
		for _, mode := range []string{"panic", "goexit"} {
			t.Run(p.name+"/"+mode, func(t *testing.T) {
				r, tok := newRotator()
				blow := func() { panic("boom from " + p.name) }
				if mode == "goexit" {
					blow = runtime.Goexit
				}
				src := p.source(r, tok, blow)
				ctx := context.Background()
				cur, _ := src.Token(ctx) // may already fail (lock, login)
				_, err := src.Refresh(ctx, cur)
				require.Error(t, err)
				var pe *refresher.PanicError
				require.ErrorAs(t, err, &pe, "the refresh fails with the panic")
				if mode == "panic" {
					assert.Equal(t, "boom from "+p.name, pe.Value)
					assert.NotEmpty(t, pe.Stack)
				} else {
					assert.Contains(t, err.Error(), "runtime.Goexit")
				}
				// The flight was cleared: later calls are answered, not hung.
				done := make(chan struct{})
				go func() {
					defer close(done)
					_, _ = src.Refresh(ctx, cur)
				}()
				<-done
			})
		}
	}
}

func TestPanicInAHookOrObserverIsRecoveredAndTheTokenKept(t *testing.T) {
	r, tok := newRotator()
	src := refresher.NewSource(r, refresher.WithToken(tok),
		refresher.WithRefreshHook(func(old, new *oauth2.Token) { panic("refresh hook") }),
		refresher.WithFailureHook(func(*oauth2.Token, error) { panic("failure hook") }),
		refresher.WithObserver(panickingObserver{}))
	got, err := src.Refresh(context.Background(), tok)
	require.NoError(t, err, "a hook's panic does not undo a saved refresh")
	assert.Equal(t, "access-1", got.AccessToken)

	r.fail = &refresher.RefreshError{StatusCode: 500}
	_, err = src.Refresh(context.Background(), got)
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 500, re.StatusCode)
}

type panickingObserver struct{ refresher.NopObserver }

func (panickingObserver) RefreshStarted(context.Context, refresher.RefreshStart) context.Context {
	panic("observer")
}
func (panickingObserver) RefreshEnded(context.Context, refresher.RefreshEvent) { panic("observer") }

func TestOverSessionWithAStoreFailsFastWithoutTheLock(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.fail = &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant"}
	store := &lockingStore{}
	require.NoError(t, store.Save(context.Background(), tok))
	src := refresher.NewSource(r, refresher.WithStore(store), refresher.WithClock(clock.Now))
	ctx := context.Background()
	first, err := src.Token(ctx)
	require.NoError(t, err)
	_, err = src.Refresh(ctx, first)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	locks, loads := store.locks.Load(), store.loads.Load()

	for range 1000 {
		_, err = src.Token(ctx)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
	}
	assert.Equal(t, locks, store.locks.Load(), "no lock taken while the session is over")
	assert.Equal(t, loads, store.loads.Load(), "no Store read within the re-read interval")

	clock.Advance(time.Second)
	for range 1000 {
		_, err = src.Token(ctx)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
	}
	assert.Equal(t, locks, store.locks.Load(), "no lock taken while the session is over")
	assert.Equal(t, loads+1, store.loads.Load(), "one Store read per interval")
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls")
}

func TestAdoptedTokenThatIsDueIsRefreshedNotAdopted(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.expiresIn, r.clock = 10*time.Minute, clock.Now
	store := refresher.NewMemoryStore(nil)
	events := newEventLog()
	src := refresher.NewSource(r, refresher.WithStore(store), refresher.WithClock(clock.Now), refresher.WithObserver(events))
	ctx := context.Background()

	// Another process saved a token issued for 10 minutes that has 14 s
	// left: it is due (past even the latest jittered refresh point).
	tok.Expiry, tok.ExpiresIn = clock.Now().Add(14*time.Second), 600
	require.NoError(t, store.Save(ctx, tok))
	cur, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "access-1", cur.AccessToken)
	ev := events.next(t)
	assert.Equal(t, refresher.KindRefresh, ev.Kind, "refreshed, not adopted")
	assert.Equal(t, refresher.OutcomeOK, ev.Outcome)
	stored, _ := store.Load(ctx)
	assert.Equal(t, "refresh-1", stored.RefreshToken)
}

func TestLostLeaseAbortsTheRefreshBeforeTheTokenIsPresented(t *testing.T) {
	r, tok := newRotator()
	store := &lapsingStore{}
	require.NoError(t, store.Save(context.Background(), tok))
	src := refresher.NewSource(r, refresher.WithStore(store))
	ctx := context.Background()
	first, err := src.Token(ctx)
	require.NoError(t, err)

	store.lapsed.Store(true)
	_, err = src.Refresh(ctx, first)
	require.ErrorIs(t, err, refresher.ErrLeaseLost, "reported as an error, never as success")
	assert.NotErrorIs(t, err, refresher.ErrReauthRequired, "the session is not over")
	assert.Zero(t, r.calls.Load(), "the refresh token was not presented")

	store.lapsed.Store(false)
	got, err := src.Refresh(ctx, first)
	require.NoError(t, err)
	assert.Equal(t, "access-1", got.AccessToken)
}

// lapsingStore is a MemoryStore whose lease is lost while lapsed is set.
type lapsingStore struct {
	refresher.MemoryStore
	lapsed atomic.Bool
}

func (s *lapsingStore) LockLease(context.Context) (refresher.Lease, error) {
	return lapsingLease{s}, nil
}
func (s *lapsingStore) Lock(ctx context.Context) (func() error, error) {
	return func() error { return nil }, nil
}

type lapsingLease struct{ s *lapsingStore }

func (l lapsingLease) Confirm(context.Context) error {
	if l.s.lapsed.Load() {
		return errors.New("lease expired")
	}
	return nil
}
func (l lapsingLease) Unlock() error { return nil }

func TestFencedSaveAdoptsWhatAnotherHolderSaved(t *testing.T) {
	ctx := context.Background()
	r, tok := newRotator()
	r.gate = make(chan struct{})
	r.started = make(chan struct{}, 1)
	store := refresher.NewMemoryStore(tok)
	src := refresher.NewSource(r, refresher.WithStore(store))
	first, err := src.Token(ctx)
	require.NoError(t, err)

	result := make(chan *oauth2.Token, 1)
	go func() {
		got, err := src.Refresh(ctx, first)
		assert.NoError(t, err)
		result <- got
	}()
	<-r.started
	// Another holder (whose lease this one wrongly outlived) saved a
	// newer token meanwhile.
	other := &oauth2.Token{AccessToken: "other-holder", RefreshToken: "other-refresh"}
	require.NoError(t, store.Save(ctx, other))
	close(r.gate)

	assert.Equal(t, "other-holder", (<-result).AccessToken, "the stored token is adopted")
	stored, _ := store.Load(ctx)
	assert.Equal(t, "other-refresh", stored.RefreshToken, "and never overwritten")
}

func TestTokenGivenAtConstructionIsSavedBeforeFirstUse(t *testing.T) {
	ctx := context.Background()
	r, tok := newRotator()
	store := refresher.NewMemoryStore(nil)
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithStore(store))
	got, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, tok.AccessToken, got.AccessToken)
	stored, err := store.Load(ctx)
	require.NoError(t, err)
	require.NotNil(t, stored, "a process that exits now leaves its session behind")
	assert.Equal(t, tok.RefreshToken, stored.RefreshToken)

	// A Store that holds a token already keeps it: it is the newer one.
	newer := &oauth2.Token{AccessToken: "rotated-elsewhere", RefreshToken: "r9"}
	for _, st := range []refresher.Store{refresher.NewMemoryStore(newer), &plainStore{tok: newer}} {
		src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithStore(st))
		got, err := src.Token(ctx)
		require.NoError(t, err)
		assert.Equal(t, "rotated-elsewhere", got.AccessToken)
		stored, _ := st.Load(ctx)
		assert.Equal(t, "r9", stored.RefreshToken)
	}
	assert.Zero(t, r.calls.Load(), "endpoint calls")
}

func TestZeroSourceReturnsAnErrorInsteadOfPanicking(t *testing.T) {
	var src refresher.Source
	_, err := src.Token(context.Background())
	require.ErrorContains(t, err, "NewSource")
	_, err = src.Refresh(context.Background(), nil)
	require.ErrorContains(t, err, "NewSource")
	require.ErrorContains(t, src.SetToken(context.Background(), &oauth2.Token{AccessToken: "a"}), "NewSource")
}
