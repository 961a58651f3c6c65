// Package storetest holds what the tests of the token stores share: a
// family of distinct tokens, the check that a store gave back the token it
// was given, and a request to the test server that proves a token works.
// It is meant for tests only.
package storetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
)

// Token returns a distinct token for n whose access and refresh tokens end
// with the same suffix, "access-n" and "refresh-n", so that a torn pair is
// easy to spot. Its expiry has nanoseconds, which a store must keep.
func Token(n int) *oauth2.Token {
	return &oauth2.Token{
		AccessToken:  fmt.Sprintf("access-%d", n),
		TokenType:    "Bearer",
		RefreshToken: fmt.Sprintf("refresh-%d", n),
		Expiry:       time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC).Add(time.Duration(n) * time.Minute),
	}
}

// AssertSameToken checks that got holds the fields a store keeps as want
// has them: the access token, token type, refresh token and expiry. It
// stops the test if got is nil.
func AssertSameToken(t testing.TB, want, got *oauth2.Token) {
	t.Helper()
	require.NotNil(t, got)
	assert.Equal(t, want.AccessToken, got.AccessToken, "access token")
	assert.Equal(t, want.TokenType, got.TokenType, "token type")
	assert.Equal(t, want.RefreshToken, got.RefreshToken, "refresh token")
	assert.True(t, want.Expiry.Equal(got.Expiry), "expiry: got %v, want %v", got.Expiry, want.Expiry)
}

// GetMe asks the test server at baseURL, through client, who the token
// belongs to. Anything but 200 is an error, which quotes the start of the
// response body. The body is read to the end, so that the connection can
// be reused.
func GetMe(ctx context.Context, client *http.Client, baseURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+testserver.PathMe, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", testserver.PathMe, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// LockResult is the outcome of a Lock call made on another goroutine.
type LockResult struct {
	Unlock func() error
	Err    error
}

// LockAsync calls l.Lock(ctx) on another goroutine and delivers its outcome
// on the returned channel.
func LockAsync(ctx context.Context, l refresher.Locker) <-chan LockResult {
	ch := make(chan LockResult, 1)
	go func() {
		u, err := l.Lock(ctx)
		ch <- LockResult{u, err}
	}()
	return ch
}

// Await returns the outcome of a LockAsync, failing the test if Lock does
// not return within [fleet.Timeout].
func Await(t testing.TB, ch <-chan LockResult) LockResult {
	t.Helper()
	timer := time.NewTimer(fleet.Timeout)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r
	case <-timer.C:
		t.Fatal("Lock did not return")
		return LockResult{}
	}
}

// AssertLockBusy checks that l cannot take the lock within a short wait
// (50 ms), because another holder has it.
func AssertLockBusy(t testing.TB, l refresher.Locker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	unlock, err := l.Lock(ctx)
	if err == nil {
		unlock()
		t.Fatal("Lock succeeded while another holder has the lock")
	}
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}
