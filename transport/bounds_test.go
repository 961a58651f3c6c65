package transport_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

// rotatingServer accepts only the newest access token; its endpoint rotates
// both tokens on every refresh and refuses a reused refresh token. It keeps
// no history, so that its own memory does not grow with the requests.
type rotatingServer struct {
	srv *httptest.Server

	mu      sync.Mutex // guards gen, access, refresh
	gen     int
	access  string
	refresh string
}

func (s *rotatingServer) serve(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	ok := r.Header.Get("Authorization") == "Bearer "+s.access
	s.mu.Unlock()
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, "token expired") // a body that must be drained
		return
	}
	io.WriteString(w, "ok")
}

// expire makes the server refuse the current access token.
func (s *rotatingServer) expire() {
	s.mu.Lock()
	s.access = ""
	s.mu.Unlock()
}

func (s *rotatingServer) Refresh(_ context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur.RefreshToken != s.refresh {
		return nil, &refresher.RefreshError{StatusCode: 400, Code: "invalid_grant"}
	}
	s.gen++
	s.access = fmt.Sprintf("access-%d", s.gen)
	s.refresh = fmt.Sprintf("refresh-%d", s.gen)
	return &oauth2.Token{AccessToken: s.access, RefreshToken: s.refresh, TokenType: "Bearer"}, nil
}

func TestTenThousandRotatingRequestsDoNotGrow(t *testing.T) {
	const n = 10_000
	// Registered first, so it runs last: after the server is closed.
	t.Cleanup(func() { goleak.VerifyNone(t, goleak.IgnoreCurrent()) })

	s := &rotatingServer{refresh: "refresh-0"}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	src := refresher.NewSource(s, refresher.WithToken(&oauth2.Token{AccessToken: "access-0", RefreshToken: "refresh-0"}))
	c := transport.NewClient(src, transport.WithBase(base))
	body := strings.Repeat("b", 512)

	var heap1, goroutines1 int
	for i := 1; i <= n; i++ {
		// Every request is answered 401 first, refreshed (both tokens
		// rotate) and replayed with a buffered body.
		s.expire()
		req, err := http.NewRequest(http.MethodPost, s.srv.URL, io.NopCloser(strings.NewReader(body)))
		require.NoError(t, err)
		resp, err := c.Do(req)
		require.NoError(t, err)
		_, err = io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "request %d", i)
		switch {
		case i == n/10:
			heap1, goroutines1 = heapAndGoroutines()
		case i > n/10 && i%(n/10) == 0:
			// Fail early rather than run out of file descriptors.
			require.LessOrEqual(t, runtime.NumGoroutine(), goroutines1+2, "goroutines after %d requests", i)
		}
	}
	heap2, goroutines2 := heapAndGoroutines()
	t.Logf("after %d requests: heap %d B, %d goroutines; after %d: heap %d B (%+d B), %d goroutines",
		n/10, heap1, goroutines1, n, heap2, heap2-heap1, goroutines2)

	s.mu.Lock()
	assert.Equal(t, n, s.gen, "refreshes")
	s.mu.Unlock()
	assert.Less(t, heap2-heap1, 8<<20, "heap growth between request %d and %d", n/10, n)
	assert.LessOrEqual(t, goroutines2, goroutines1+2, "goroutines")
}

// heapAndGoroutines returns the live heap after a collection, and the number
// of goroutines.
func heapAndGoroutines() (heap, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc), runtime.NumGoroutine()
}
