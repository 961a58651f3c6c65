package refresher_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
)

// revokingRotator is a rotator that can revoke, recording what it revoked.
type revokingRotator struct {
	*rotator
	mu      sync.Mutex
	revoked []string
	fail    error
}

func (r *revokingRotator) Revoke(ctx context.Context, t *oauth2.Token) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.revoked = append(r.revoked, t.RefreshToken)
	return nil
}

func TestLogoutRevokesClearsTheStoreAndEndsTheSession(t *testing.T) {
	ctx := context.Background()
	r, tok := newRotator()
	rv := &revokingRotator{rotator: r}
	store := refresher.NewMemoryStore(tok)
	events := &overLog{}
	src := refresher.NewSource(rv, refresher.WithStore(store), refresher.WithObserver(events))
	first, err := src.Token(ctx)
	require.NoError(t, err)
	// Another process rotated meanwhile: the newest token is revoked.
	rotated := &oauth2.Token{AccessToken: "access-9", RefreshToken: "refresh-9"}
	require.NoError(t, store.Save(ctx, rotated))

	require.NoError(t, src.Logout(ctx))
	assert.Equal(t, []string{"refresh-9"}, rv.revoked)
	stored, err := store.Load(ctx)
	require.NoError(t, err)
	assert.Nil(t, stored, "the Store is empty")
	for range 3 {
		_, err = src.Token(ctx)
		require.ErrorIs(t, err, refresher.ErrLoggedOut)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
	}
	_, err = src.Refresh(ctx, first)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)
	assert.Zero(t, r.calls.Load(), "endpoint calls")
	assert.Equal(t, 1, events.count(), "one session over")

	// A new login revives it.
	require.NoError(t, src.SetToken(ctx, &oauth2.Token{AccessToken: "again", RefreshToken: "r"}))
	got, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "again", got.AccessToken)
}

func TestLogoutWhoseRevocationFailsStillDropsTheToken(t *testing.T) {
	ctx := context.Background()
	r, tok := newRotator()
	rv := &revokingRotator{rotator: r, fail: &refresher.RefreshError{StatusCode: 503}}
	store := refresher.NewMemoryStore(tok)
	src := refresher.NewSource(rv, refresher.WithStore(store))

	err := src.Logout(ctx)
	require.ErrorIs(t, err, refresher.ErrNotRevoked)
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Temporary(), "reported as the transient failure it is")
	stored, _ := store.Load(ctx)
	assert.Nil(t, stored)
	_, err = src.Token(ctx)
	require.ErrorIs(t, err, refresher.ErrLoggedOut)
}

func TestLogoutWithAnEndpointThatCannotRevokeSaysSo(t *testing.T) {
	ctx := context.Background()
	r, tok := newRotator()
	src := refresher.NewSource(r, refresher.WithToken(tok))
	err := src.Logout(ctx)
	require.ErrorIs(t, err, refresher.ErrNotRevoked)
	_, err = src.Token(ctx)
	require.ErrorIs(t, err, refresher.ErrLoggedOut)
}

func TestLogoutDuringARefreshSupersedesIt(t *testing.T) {
	ctx := context.Background()
	r, tok := newRotator()
	r.gate = make(chan struct{})
	r.started = make(chan struct{}, 1)
	rv := &revokingRotator{rotator: r}
	store := refresher.NewMemoryStore(tok)
	src := refresher.NewSource(rv, refresher.WithStore(store))
	first, err := src.Token(ctx)
	require.NoError(t, err)
	waiter := make(chan error, 1)
	go func() {
		_, err := src.Refresh(ctx, first)
		waiter <- err
	}()
	<-r.started
	require.NoError(t, src.Logout(ctx)) // a Store without a lock: it does not wait
	close(r.gate)                       // the server rotates the old session's token
	require.ErrorIs(t, <-waiter, refresher.ErrReauthRequired, "the refresh's token is not handed out")
	stored, _ := store.Load(ctx)
	assert.Nil(t, stored, "nothing is left in the Store")
	_, err = src.Token(ctx)
	require.ErrorIs(t, err, refresher.ErrLoggedOut)
}

type overLog struct {
	refresher.NopObserver
	mu sync.Mutex
	n  int
}

func (o *overLog) SessionOver(context.Context, error) { o.mu.Lock(); o.n++; o.mu.Unlock() }
func (o *overLog) count() int                         { o.mu.Lock(); defer o.mu.Unlock(); return o.n }
