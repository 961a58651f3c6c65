package transport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// observed records a Transport's events, and the context key "request" of
// the context each came with.
type observed struct {
	mu       sync.Mutex // guards the fields below
	rejected []transport.RejectionEvent
	withheld []transport.WithheldEvent
	ctxs     []any
}

type requestKey struct{}

func (o *observed) TokenRejected(ctx context.Context, ev transport.RejectionEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rejected = append(o.rejected, ev)
	o.ctxs = append(o.ctxs, ctx.Value(requestKey{}))
}

func (o *observed) TokenWithheld(ctx context.Context, ev transport.WithheldEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.withheld = append(o.withheld, ev)
	o.ctxs = append(o.ctxs, ctx.Value(requestKey{}))
}

func (o *observed) events() ([]transport.RejectionEvent, []transport.WithheldEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]transport.RejectionEvent(nil), o.rejected...), append([]transport.WithheldEvent(nil), o.withheld...)
}

// do sends req with a context that names it, and reads its answer.
func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, error) {
	t.Helper()
	resp, err := c.Do(req.WithContext(context.WithValue(req.Context(), requestKey{}, "the request")))
	if err == nil {
		readAll(t, resp)
	}
	return resp, err
}

func TestObserverSeesReplayHealRejectedToken(t *testing.T) {
	a := newAuthServer(t)
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(a.issue()))
	a.expireAccess()
	obs := &observed{}
	c := transport.NewClient(src, transport.WithObserver(obs))

	req, err := http.NewRequest(http.MethodPost, a.url("/echo"), strings.NewReader("replayed body"))
	require.NoError(t, err)
	resp, err := do(t, c, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	rejected, withheld := obs.events()
	assert.Equal(t, []transport.RejectionEvent{{
		Outcome: transport.ReplayOK, StatusCode: http.StatusUnauthorized, ReplayStatus: http.StatusOK,
		Method: http.MethodPost, Host: a.srv.Listener.Addr().String(),
	}}, rejected)
	assert.Empty(t, withheld)
	assert.Equal(t, []any{"the request"}, obs.ctxs, "the event comes with the request's context")
}

func TestObserverSeesReplayRejectedAgain(t *testing.T) {
	a := newAuthServer(t) // its endpoint issues tokens that the resource below never accepts
	resource := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(resource.Close)
	obs := &observed{}
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(a.issue())), transport.WithObserver(obs))

	req, err := http.NewRequest(http.MethodGet, resource.URL+"/x", nil)
	require.NoError(t, err)
	resp, err := do(t, c, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	rejected, _ := obs.events()
	require.Len(t, rejected, 1)
	assert.Equal(t, transport.ReplayRejectedAgain, rejected[0].Outcome)
	assert.Equal(t, http.StatusUnauthorized, rejected[0].ReplayStatus)
	assert.Equal(t, int64(1), a.calls.Load(), "one refresh: the replay is not refreshed again")
}

func TestObserverSeesBodyOverReplayLimitNotReplayable(t *testing.T) {
	a := newAuthServer(t)
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(a.issue()))
	a.expireAccess()
	obs := &observed{}
	c := transport.NewClient(src, transport.WithReplayLimit(8), transport.WithObserver(obs))

	// A body without GetBody, larger than the limit.
	body := &countingBody{Reader: strings.NewReader(strings.Repeat("x", 100))}
	req, err := http.NewRequest(http.MethodPost, a.url("/echo"), body)
	require.NoError(t, err)
	resp, err := do(t, c, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the rejection is returned")

	rejected, _ := obs.events()
	require.Len(t, rejected, 1)
	assert.Equal(t, transport.ReplayNotReplayable, rejected[0].Outcome)
	assert.Equal(t, http.StatusUnauthorized, rejected[0].StatusCode)
	assert.Zero(t, rejected[0].ReplayStatus)
	assert.Equal(t, int64(1), a.calls.Load(), "the token is refreshed for the next request")
}

func TestObserverSeesFailedRefreshAsNoRefresh(t *testing.T) {
	a := newAuthServer(t)
	a.issue()
	a.expireAccess()
	// A refresh token the server does not know: the session is over.
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(&oauth2.Token{AccessToken: "old", RefreshToken: "unknown"}))
	obs := &observed{}
	c := transport.NewClient(src, transport.WithObserver(obs))

	req, err := http.NewRequest(http.MethodGet, a.url("/echo"), nil)
	require.NoError(t, err)
	_, err = do(t, c, req)
	require.ErrorIs(t, err, refresher.ErrReauthRequired)

	rejected, _ := obs.events()
	require.Len(t, rejected, 1)
	assert.Equal(t, transport.ReplayNoRefresh, rejected[0].Outcome)
}

func TestObserverSeesTokenWithheldFromRedirectToAnotherHost(t *testing.T) {
	tok := &oauth2.Token{AccessToken: "redirect-access-token", TokenType: "Bearer"}
	other := newRecorder(t, "127.0.0.2:0", okHandler)
	origin := newRecorder(t, "127.0.0.1:0", redirectTo(http.StatusFound, func() string { return other.srv.URL + "/landing" }))
	obs := &observed{}
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(tok)), transport.WithObserver(obs))

	req, err := http.NewRequest(http.MethodGet, origin.srv.URL+"/start", nil)
	require.NoError(t, err)
	resp, err := do(t, c, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	rejected, withheld := obs.events()
	assert.Empty(t, rejected)
	assert.Equal(t, []transport.WithheldEvent{{
		Reason: transport.WithheldRedirect, Method: http.MethodGet, Host: other.srv.Listener.Addr().String(),
	}}, withheld)
	_, auths := other.seen()
	assert.Equal(t, []string{""}, auths, "the other host got no token")
}

func TestObserverSeesPlainHTTPRefused(t *testing.T) {
	f := &fakeNet{}
	tok := &oauth2.Token{AccessToken: "plain-http-access-token"}
	obs := &observed{}
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(tok)),
		transport.WithBase(f), transport.WithObserver(obs))

	req, err := http.NewRequest(http.MethodGet, "http://api.example.com/x", nil)
	require.NoError(t, err)
	_, err = do(t, c, req)
	require.ErrorIs(t, err, transport.ErrInsecureHTTP)

	_, withheld := obs.events()
	assert.Equal(t, []transport.WithheldEvent{{
		Reason: transport.WithheldInsecureHTTP, Method: http.MethodGet, Host: "api.example.com",
	}}, withheld)
	assert.Empty(t, f.seen(), "nothing is sent")
}

func TestObserverSeesHostOutsideAllowList(t *testing.T) {
	a := newAuthServer(t)
	obs := &observed{}
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(a.issue())),
		transport.WithAllowedHosts("api.example.com"), transport.WithObserver(obs))

	req, err := http.NewRequest(http.MethodGet, a.url("/echo"), nil)
	require.NoError(t, err)
	resp, err := do(t, c, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "sent without a token, and not refreshed")

	rejected, withheld := obs.events()
	assert.Empty(t, rejected)
	assert.Equal(t, []transport.WithheldEvent{{
		Reason: transport.WithheldNotAllowed, Method: http.MethodGet, Host: a.srv.Listener.Addr().String(),
	}}, withheld)
}

func TestObserverSeesNothingForAnAcceptedToken(t *testing.T) {
	a := newAuthServer(t)
	obs := &observed{}
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(a.issue())), transport.WithObserver(obs))

	req, err := http.NewRequest(http.MethodGet, a.url("/echo"), nil)
	require.NoError(t, err)
	resp, err := do(t, c, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	rejected, withheld := obs.events()
	assert.Empty(t, rejected)
	assert.Empty(t, withheld)
}

// panicking is an Observer whose every method panics.
type panicking struct{}

func (panicking) TokenRejected(context.Context, transport.RejectionEvent) { panic("observer bug") }
func (panicking) TokenWithheld(context.Context, transport.WithheldEvent)  { panic("observer bug") }

func TestObserverPanicDoesNotFailTheRequest(t *testing.T) {
	a := newAuthServer(t)
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(a.issue()))
	a.expireAccess()
	obs := &observed{}
	c := transport.NewClient(src, transport.WithObserver(panicking{}), transport.WithObserver(obs))

	req, err := http.NewRequest(http.MethodGet, a.url("/echo"), nil)
	require.NoError(t, err)
	resp, err := do(t, c, req)
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	rejected, _ := obs.events()
	require.Len(t, rejected, 1, "the next Observer still sees the event")
	assert.Equal(t, transport.ReplayOK, rejected[0].Outcome)
}

var _ transport.Observer = transport.NopObserver{}
