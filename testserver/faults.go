package testserver

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// faults holds the fault injection settings of a [Server].
type faults struct {
	mu             sync.Mutex // guards the fields below
	failN          int
	failStatus     int
	failRetryAfter time.Duration
	delay          time.Duration
	dropN          int
	gates          map[chan struct{}]struct{} // open holds; closed by their release
	held           int                        // refreshes waiting at a hold

	changed notifier // notified after held or a setting changes
}

// errAborted reports a refresh abandoned while held or delayed, because its
// client went away or the server is closing.
var errAborted = errors.New("testserver: refresh aborted")

// FailRefreshes makes the next n refresh requests (either contract) fail with
// status, without looking at or touching their refresh token. If retryAfter
// is positive, the answer carries a Retry-After header with that many
// seconds (rounded up). A status of 0 means 503. OAuth2 API failures carry
// the error code "temporarily_unavailable" (borrowed from RFC 6749
// §4.1.2.1) for 5xx and 429, "invalid_client" for 401 and "invalid_request"
// otherwise; Express API failures carry its JSON envelope. Injected failures
// come after any hold or delay. A call replaces any failures still pending;
// n <= 0 cancels them.
func (s *Server) FailRefreshes(n int, status int, retryAfter time.Duration) {
	if status == 0 {
		status = http.StatusServiceUnavailable
	}
	s.faults.mu.Lock()
	s.faults.failN = max(n, 0)
	s.faults.failStatus = status
	s.faults.failRetryAfter = retryAfter
	s.faults.mu.Unlock()
	s.faults.changed.notify()
	detail := "injected refresh failures cancelled"
	if n > 0 {
		detail = fmt.Sprintf("the next %d refreshes fail with %d", n, status)
		if retryAfter > 0 {
			detail += fmt.Sprintf(", Retry-After %s", retryAfter)
		}
	}
	s.emit(event{Kind: eventFault, Detail: detail})
}

// DelayRefreshes makes each refresh request wait d of real time before it is
// processed. The wait ends early, without an answer, if the client goes away
// or the server closes. d <= 0 removes the delay.
func (s *Server) DelayRefreshes(d time.Duration) {
	s.faults.mu.Lock()
	s.faults.delay = max(d, 0)
	s.faults.mu.Unlock()
	s.faults.changed.notify()
	detail := "refresh delay removed"
	if d > 0 {
		detail = fmt.Sprintf("refreshes delayed by %s", d)
	}
	s.emit(event{Kind: eventFault, Detail: detail})
}

// HoldRefreshes makes refresh requests (either contract) block, before
// their client or token is validated, until release is called. It is the
// deterministic alternative to [Server.DelayRefreshes]: a test can hold the
// refreshes, wait for them with [Server.WaitHeld], then release them.
// release is idempotent and safe to call from any goroutine. Several holds
// may be open at once; a refresh waits until all of them are released.
// Closing the server releases every hold.
func (s *Server) HoldRefreshes() (release func()) {
	gate := make(chan struct{})
	s.faults.mu.Lock()
	if s.faults.gates == nil {
		s.faults.gates = make(map[chan struct{}]struct{})
	}
	s.faults.gates[gate] = struct{}{}
	s.faults.mu.Unlock()
	s.faults.changed.notify()
	s.emit(event{Kind: eventFault, Detail: "refreshes held"})
	var once sync.Once
	return func() {
		once.Do(func() {
			s.faults.mu.Lock()
			delete(s.faults.gates, gate)
			s.faults.mu.Unlock()
			close(gate)
			s.faults.changed.notify()
			s.emit(event{Kind: eventFault, Detail: "hold released"})
		})
	}
}

// WaitHeld blocks until at least n refresh requests are waiting at a hold
// opened by [Server.HoldRefreshes], or until ctx is done.
func (s *Server) WaitHeld(ctx context.Context, n int) error {
	for {
		changed := s.faults.changed.wait()
		if s.Held() >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Held returns how many refresh requests are waiting at a hold right now.
func (s *Server) Held() int {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.held
}

// DropAfterRotate makes the next n refresh requests that rotate their token
// commit the rotation in the store, then close the connection without
// answering: the client never sees its new token. Refreshes that fail do not
// count. n <= 0 cancels pending drops. It needs an HTTP/1 connection (the
// only kind the server speaks without TLS).
func (s *Server) DropAfterRotate(n int) {
	s.faults.mu.Lock()
	s.faults.dropN = max(n, 0)
	s.faults.mu.Unlock()
	s.faults.changed.notify()
	detail := "drops cancelled"
	if n > 0 {
		detail = fmt.Sprintf("the next %d rotations are dropped", n)
	}
	s.emit(event{Kind: eventFault, Detail: detail})
}

// RevokeAll revokes every refresh token family issued so far: their refresh
// tokens are refused from now on. Access tokens already issued stay valid
// until they expire; tokens issued afterwards are not affected.
func (s *Server) RevokeAll() {
	s.store.revokeAll()
}

// ExpireAccessTokens makes every access token issued so far be refused, as
// expired, from now on. Tokens issued after the call are accepted. Refresh
// tokens are not affected.
func (s *Server) ExpireAccessTokens() {
	s.epoch.Add(1)
	s.emit(event{Kind: eventExpireAccess, Detail: "every access token issued so far is expired"})
}

// faultState is the fault injection settings, as the control API shows them.
type faultState struct {
	FailRemaining     int     `json:"fail_remaining"`
	FailStatus        int     `json:"fail_status,omitempty"`
	RetryAfterSeconds float64 `json:"retry_after_seconds,omitempty"`
	DelayMS           int64   `json:"delay_ms"`
	Holds             int     `json:"holds"` // holds open
	Held              int     `json:"held"`  // refreshes waiting at them
	DropsRemaining    int     `json:"drops_remaining"`
}

func (s *Server) faultState() faultState {
	f := &s.faults
	f.mu.Lock()
	defer f.mu.Unlock()
	st := faultState{
		FailRemaining:  f.failN,
		DelayMS:        f.delay.Milliseconds(),
		Holds:          len(f.gates),
		Held:           f.held,
		DropsRemaining: f.dropN,
	}
	if f.failN > 0 {
		st.FailStatus, st.RetryAfterSeconds = f.failStatus, f.failRetryAfter.Seconds()
	}
	return st
}

// beforeRefresh applies the holds, then the delay, to a refresh request. It
// returns errAborted if ctx ends or the server closes while it waits.
func (s *Server) beforeRefresh(ctx context.Context) error {
	f := &s.faults
	f.mu.Lock()
	gates := make([]chan struct{}, 0, len(f.gates))
	for g := range f.gates {
		gates = append(gates, g)
	}
	if len(gates) > 0 {
		f.held++
	}
	f.mu.Unlock()

	if len(gates) > 0 {
		f.changed.notify()
		err := s.waitGates(ctx, gates)
		f.mu.Lock()
		f.held--
		f.mu.Unlock()
		f.changed.notify()
		if err != nil {
			return err
		}
	}
	f.mu.Lock()
	delay := f.delay // read after the hold: a test may set it meanwhile
	f.mu.Unlock()
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return errAborted
		case <-s.done:
			return errAborted
		}
	}
	return nil
}

func (s *Server) waitGates(ctx context.Context, gates []chan struct{}) error {
	for _, g := range gates {
		select {
		case <-g:
		case <-ctx.Done():
			return errAborted
		case <-s.done:
			return errAborted
		}
	}
	return nil
}

// injectedFailure is a refresh failure to answer instead of processing.
type injectedFailure struct {
	status     int
	retryAfter time.Duration
}

// takeFailure consumes one pending injected failure, if any.
func (s *Server) takeFailure() (injectedFailure, bool) {
	f := &s.faults
	f.mu.Lock()
	if f.failN <= 0 {
		f.mu.Unlock()
		return injectedFailure{}, false
	}
	f.failN--
	fl := injectedFailure{status: f.failStatus, retryAfter: f.failRetryAfter}
	f.mu.Unlock()
	f.changed.notify()
	return fl, true
}

// setRetryAfter sets the Retry-After header of an injected failure.
func (fl injectedFailure) setRetryAfter(h http.Header) {
	if fl.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int(math.Ceil(fl.retryAfter.Seconds()))))
	}
}

// takeDrop consumes one pending drop, if any.
func (s *Server) takeDrop() bool {
	f := &s.faults
	f.mu.Lock()
	if f.dropN <= 0 {
		f.mu.Unlock()
		return false
	}
	f.dropN--
	f.mu.Unlock()
	f.changed.notify()
	return true
}

// drop closes the connection of w without answering.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}
