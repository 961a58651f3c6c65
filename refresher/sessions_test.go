package refresher_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/autorefresh/autorefresh/refresher"
)

// accounts is a set of per-account rotators and Stores, as a service
// keeping one connected account per customer has.
type accounts struct {
	mu     sync.Mutex
	ep     map[string]*rotator
	stores map[string]*refresher.MemoryStore
	opens  atomic.Int64
}

func newAccounts(keys ...string) *accounts {
	a := &accounts{ep: map[string]*rotator{}, stores: map[string]*refresher.MemoryStore{}}
	for _, k := range keys {
		r, tok := newRotator()
		tok.AccessToken = "access-of-" + k
		a.ep[k], a.stores[k] = r, refresher.NewMemoryStore(tok)
	}
	return a
}

func (a *accounts) open(ctx context.Context, key string) (*refresher.Source, error) {
	a.opens.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.ep[key]
	if !ok {
		return nil, fmt.Errorf("no account %q", key)
	}
	return refresher.NewSource(r, refresher.WithStore(a.stores[key])), nil
}

func TestSessionsServeEachAccountItsOwnToken(t *testing.T) {
	a := newAccounts("alice", "bob")
	s := refresher.NewSessions(a.open)
	for _, k := range []string{"alice", "bob", "alice"} {
		got, err := s.Token(refresher.WithSession(context.Background(), k))
		require.NoError(t, err)
		assert.Equal(t, "access-of-"+k, got.AccessToken)
	}
	assert.Equal(t, int64(2), a.opens.Load(), "each account opened once")
}

func TestRequestWithoutSessionFailsClearly(t *testing.T) {
	s := refresher.NewSessions(newAccounts().open)
	_, err := s.Token(context.Background())
	require.ErrorIs(t, err, refresher.ErrNoSession)
	_, err = s.Refresh(context.Background(), nil)
	require.ErrorIs(t, err, refresher.ErrNoSession)
	_, err = s.Get(context.Background(), "")
	require.Error(t, err)
}

func TestConcurrentFirstUseOfAKeyOpensItOnce(t *testing.T) {
	a := newAccounts("alice")
	gate := make(chan struct{})
	s := refresher.NewSessions(func(ctx context.Context, key string) (*refresher.Source, error) {
		<-gate
		return a.open(ctx, key)
	})
	var wg sync.WaitGroup
	srcs := make([]*refresher.Source, 50)
	for i := range srcs {
		wg.Go(func() {
			src, err := s.Get(context.Background(), "alice")
			assert.NoError(t, err)
			srcs[i] = src
		})
	}
	close(gate)
	wg.Wait()
	assert.Equal(t, int64(1), a.opens.Load())
	for _, src := range srcs {
		assert.Same(t, srcs[0], src)
	}
}

func TestFailedOrPanickingOpenIsAnErrorAndRetried(t *testing.T) {
	var calls atomic.Int64
	a := newAccounts("alice")
	s := refresher.NewSessions(func(ctx context.Context, key string) (*refresher.Source, error) {
		switch calls.Add(1) {
		case 1:
			return nil, errors.New("database down")
		case 2:
			panic("bug in open")
		case 3:
			return nil, nil
		}
		return a.open(ctx, key)
	})
	ctx := refresher.WithSession(context.Background(), "alice")
	_, err := s.Token(ctx)
	require.ErrorContains(t, err, "database down")
	_, err = s.Token(ctx)
	require.ErrorContains(t, err, "panic: bug in open")
	_, err = s.Token(ctx)
	require.ErrorContains(t, err, "no Source")
	got, err := s.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "access-of-alice", got.AccessToken)
}

func TestLeastRecentlyUsedSessionsAreDroppedWithoutLosingTokens(t *testing.T) {
	keys := []string{"a", "b", "c", "d"}
	a := newAccounts(keys...)
	s := refresher.NewSessions(a.open, refresher.WithMaxSessions(2))
	ctx := context.Background()
	// Rotate a's token, then use the others so that a is dropped.
	srcA, err := s.Get(ctx, "a")
	require.NoError(t, err)
	first, err := srcA.Token(ctx)
	require.NoError(t, err)
	rotated, err := srcA.Refresh(ctx, first)
	require.NoError(t, err)
	for _, k := range keys[1:] {
		_, err := s.Token(refresher.WithSession(ctx, k))
		require.NoError(t, err)
	}
	assert.Equal(t, 2, s.Len())

	again, err := s.Get(ctx, "a")
	require.NoError(t, err)
	assert.NotSame(t, srcA, again, "a was dropped and opened again")
	got, err := again.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, rotated.AccessToken, got.AccessToken, "its rotated token came back from the Store")
	assert.Equal(t, int64(1), a.ep["a"].calls.Load(), "no extra refresh")
}

func TestRefreshingSessionIsNotDropped(t *testing.T) {
	a := newAccounts("a", "b", "c")
	a.ep["a"].gate = make(chan struct{})
	a.ep["a"].started = make(chan struct{}, 1)
	s := refresher.NewSessions(a.open, refresher.WithMaxSessions(1))
	ctx := context.Background()
	srcA, err := s.Get(ctx, "a")
	require.NoError(t, err)
	first, err := srcA.Token(ctx)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := srcA.Refresh(ctx, first)
		done <- err
	}()
	<-a.ep["a"].started
	_, err = s.Get(ctx, "b")
	require.NoError(t, err)
	got, err := s.Get(ctx, "a")
	require.NoError(t, err)
	assert.Same(t, srcA, got, "the refreshing Source stayed resident")
	close(a.ep["a"].gate)
	require.NoError(t, <-done)
}

func TestSessionOverCallbackNamesTheAccount(t *testing.T) {
	a := newAccounts("alice", "bob")
	a.ep["bob"].fail = &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant"}
	type over struct {
		key string
		err error
	}
	overs := make(chan over, 10)
	s := refresher.NewSessions(a.open, refresher.WithSessionOver(func(key string, err error) { overs <- over{key, err} }))
	ctx := refresher.WithSession(context.Background(), "bob")
	cur, err := s.Token(ctx)
	require.NoError(t, err)
	_, err = s.Refresh(ctx, cur)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	got := <-overs
	assert.Equal(t, "bob", got.key)
	assert.ErrorIs(t, got.err, refresher.ErrReauthRequired)
	_, err = s.Refresh(ctx, cur)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	select {
	case o := <-overs:
		t.Fatalf("reported twice: %+v", o)
	default:
	}
}

// TestSourceOpenedAgainRefreshesTheTokenItsCallerSawRejected: a request
// got its token from an account's Source, which was then dropped; its
// Refresh reaches a Source opened again from the Store, which holds that
// same rejected token. The new Source must refresh it, not hand it back
// as if it were newer.
func TestSourceOpenedAgainRefreshesTheTokenItsCallerSawRejected(t *testing.T) {
	a := newAccounts("a", "b")
	s := refresher.NewSessions(a.open, refresher.WithMaxSessions(1))
	ctx := refresher.WithSession(context.Background(), "a")
	rejected, err := s.Token(ctx)
	require.NoError(t, err)
	_, err = s.Token(refresher.WithSession(context.Background(), "b")) // drops a
	require.NoError(t, err)

	fresh, err := s.Refresh(ctx, rejected) // reaches a Source opened again
	require.NoError(t, err)
	assert.NotEqual(t, rejected.AccessToken, fresh.AccessToken, "a token newer than the rejected one")
	assert.Equal(t, int64(1), a.ep["a"].calls.Load(), "endpoint calls")
	assert.Equal(t, int64(3), a.opens.Load(), "a, b, and a again")
}
