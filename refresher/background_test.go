package refresher_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
)

// eventLog is an Observer that hands each RefreshEvent to the test.
type eventLog struct {
	refresher.NopObserver
	ch chan refresher.RefreshEvent
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan refresher.RefreshEvent, 1000)} }

func (l *eventLog) RefreshEnded(_ context.Context, ev refresher.RefreshEvent) { l.ch <- ev }

// next waits for the next refresh to end.
func (l *eventLog) next(t *testing.T) refresher.RefreshEvent {
	t.Helper()
	select {
	case ev := <-l.ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no refresh ended within 10 s")
		return refresher.RefreshEvent{}
	}
}

// none asserts that no refresh ended (or is ending) now.
func (l *eventLog) none(t *testing.T) {
	t.Helper()
	select {
	case ev := <-l.ch:
		t.Fatalf("unexpected refresh: %+v", ev)
	default:
	}
}

func TestDueTokenIsServedWhileTheEndpointIsHeld(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.gate = make(chan struct{})
	r.started = make(chan struct{}, 1)
	r.expiresIn, r.clock = 10*time.Minute, clock.Now
	tok.Expiry = clock.Now().Add(10 * time.Minute)
	events := newEventLog()
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now), refresher.WithObserver(events))
	ctx := context.Background()

	clock.Advance(10*time.Minute - 14*time.Second) // due, valid for 14 s
	for range 100 {
		got, err := src.Token(ctx)
		require.NoError(t, err)
		assert.Equal(t, "access-0", got.AccessToken, "the valid token is served at once")
	}
	<-r.started // one background refresh, held at the server
	close(r.gate)
	ev := events.next(t)
	assert.True(t, ev.Background)
	assert.Equal(t, 0, ev.Waiters, "nobody waited")
	got, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "access-1", got.AccessToken)
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls")
}

func TestFailedBackgroundRefreshRetriesWithBackoffAndNeverBlocks(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.fail = &refresher.RefreshError{StatusCode: 503}
	r.expiresIn, r.clock = 10*time.Minute, clock.Now
	tok.Expiry = clock.Now().Add(10 * time.Minute)
	events := newEventLog()
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now), refresher.WithObserver(events))
	ctx := context.Background()
	use := func() {
		t.Helper()
		got, err := src.Token(ctx)
		require.NoError(t, err, "a caller with a live token never sees the failure")
		assert.Equal(t, "access-0", got.AccessToken)
	}

	clock.Advance(10*time.Minute - 14*time.Second) // due, valid for 14 s
	use()
	assert.Equal(t, refresher.OutcomeTransient, events.next(t).Outcome)
	// Back-off: 1 s, then 2 s, then 4 s.
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		use()
		clock.Advance(wait - time.Millisecond)
		use()
		assert.False(t, refresher.Refreshing(src), "no retry before %v", wait)
		events.none(t)
		assert.Equal(t, int64(i+1), r.calls.Load(), "no retry before %v", wait)
		clock.Advance(time.Millisecond)
		use()
		assert.Equal(t, refresher.OutcomeTransient, events.next(t).Outcome)
		assert.Equal(t, int64(i+2), r.calls.Load(), "retried after %v", wait)
	}

	r.fail = nil
	clock.Advance(5 * time.Second) // 2 s left, inside the last 5 s: the token is no longer served
	got, err := src.Token(ctx)
	require.NoError(t, err, "the expired token makes the caller wait for the refresh")
	assert.Equal(t, "access-1", got.AccessToken)
}

func TestJitterSpreadsRefreshPoints(t *testing.T) {
	clock := newFakeClock()
	r, _ := newRotator()
	tok := &oauth2.Token{AccessToken: "same-token", RefreshToken: "r", Expiry: clock.Now().Add(10 * time.Minute)}
	var points []time.Time
	for seed := range uint64(100) {
		src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now), refresher.WithJitterSeed(seed))
		at := refresher.RefreshAt(src)
		again := refresher.RefreshAt(refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now), refresher.WithJitterSeed(seed)))
		assert.Equal(t, at, again, "deterministic for a seed")
		points = append(points, at)
	}
	earliest, latest := points[0], points[0]
	for _, p := range points {
		assert.False(t, p.Before(tok.Expiry.Add(-refresher.DefaultLeeway)), "not before the leeway")
		assert.True(t, p.Before(tok.Expiry.Add(-refresher.DefaultLeeway/2)), "within the first half of the window")
		earliest, latest = minTime(earliest, p), maxTime(latest, p)
	}
	assert.Greater(t, latest.Sub(earliest), 10*time.Second, "100 replicas holding one token spread over the window")
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func TestAdoptionOfANewerStoredTokenTakesNoLock(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	tok.Expiry = clock.Now().Add(10 * time.Minute)
	store := &lockingStore{}
	require.NoError(t, store.Save(context.Background(), tok))
	events := newEventLog()
	src := refresher.NewSource(r, refresher.WithStore(store), refresher.WithClock(clock.Now), refresher.WithObserver(events))
	ctx := context.Background()
	_, err := src.Token(ctx)
	require.NoError(t, err)
	events.next(t)

	// Another process refreshed and saved a newer token.
	clock.Advance(10*time.Minute - 14*time.Second)
	newer := &oauth2.Token{AccessToken: "access-9", RefreshToken: "refresh-9", Expiry: clock.Now().Add(10 * time.Minute)}
	require.NoError(t, store.Save(ctx, newer))
	_, err = src.Token(ctx)
	require.NoError(t, err)
	ev := events.next(t)
	assert.Equal(t, refresher.OutcomeAdopted, ev.Outcome)
	assert.Equal(t, refresher.KindAdoption, ev.Kind)
	got, err := src.Token(ctx)
	require.NoError(t, err)
	assert.Equal(t, "access-9", got.AccessToken)
	assert.Zero(t, store.locks.Load(), "lock taken")
	assert.Zero(t, r.calls.Load(), "endpoint calls")
}

func TestStormAfterExpiryIsOneRefreshWithEveryCallerAsWaiter(t *testing.T) {
	clock := newFakeClock()
	r, tok := newRotator()
	r.gate = make(chan struct{})
	tok.Expiry = clock.Now().Add(time.Minute)
	events := newEventLog()
	src := refresher.NewSource(r, refresher.WithToken(tok), refresher.WithClock(clock.Now), refresher.WithObserver(events))
	clock.Advance(2 * time.Minute) // expired

	results := make(chan error, 100)
	for range 100 {
		go func() {
			_, err := src.Token(context.Background())
			results <- err
		}()
	}
	require.Eventually(t, func() bool { return refresher.Waiters(src) == 100 }, 10*time.Second, time.Millisecond)
	close(r.gate)
	for range 100 {
		require.NoError(t, <-results)
	}
	ev := events.next(t)
	assert.Equal(t, 100, ev.Waiters)
	assert.Equal(t, refresher.OutcomeOK, ev.Outcome)
	assert.Equal(t, int64(1), r.calls.Load(), "endpoint calls")
}
