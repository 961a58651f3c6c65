package refresher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// contract builds an endpoint of the bundled test server.
type contract struct {
	name string
	new  func(s *testserver.Server) refresher.Endpoint
}

var contracts = []contract{
	{"A public client", func(s *testserver.Server) refresher.Endpoint {
		return &refresher.OAuth2Endpoint{Config: &oauth2.Config{
			ClientID: testserver.PublicClientID,
			Endpoint: oauth2.Endpoint{TokenURL: s.URL() + testserver.PathToken},
		}}
	}},
	{"A confidential client", func(s *testserver.Server) refresher.Endpoint {
		return &refresher.OAuth2Endpoint{Config: &oauth2.Config{
			ClientID:     testserver.ConfidentialClientID,
			ClientSecret: testserver.ConfidentialClientSecret,
			Endpoint:     oauth2.Endpoint{TokenURL: s.URL() + testserver.PathToken},
		}}
	}},
	{"B JSON body", func(s *testserver.Server) refresher.Endpoint { return refresher.SeedEndpoint(s.URL()) }},
	{"B cookie", func(s *testserver.Server) refresher.Endpoint {
		ep := refresher.SeedEndpoint(s.URL())
		ep.SendAs = refresher.SendCookie
		return ep
	}},
}

func issue(t *testing.T, s *testserver.Server) *oauth2.Token {
	t.Helper()
	tok, err := s.IssueToken(testserver.DemoUser)
	require.NoError(t, err)
	return tok
}

// forEachContract runs test against a fresh test server for each contract.
func forEachContract(t *testing.T, test func(t *testing.T, s *testserver.Server, ep refresher.Endpoint)) {
	for _, c := range contracts {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := testserver.NewTest(t, testserver.Config{})
			test(t, s, c.new(s))
		})
	}
}

func TestEndpointsRotateAgainstTheTestServer(t *testing.T) {
	forEachContract(t, func(t *testing.T, s *testserver.Server, ep refresher.Endpoint) {
		tok0 := issue(t, s)
		tok1, err := ep.Refresh(context.Background(), tok0)
		require.NoError(t, err)
		assert.NotEqual(t, tok0.AccessToken, tok1.AccessToken)
		assert.NotEqual(t, tok0.RefreshToken, tok1.RefreshToken, "the refresh token rotated")
		// expires_in (contract A) or the JWT exp (contract B): the TTL.
		assert.WithinDuration(t, time.Now().Add(testserver.DefaultAccessTTL), tok1.Expiry, 3*time.Second)

		tok2, err := ep.Refresh(context.Background(), tok1)
		require.NoError(t, err)
		assert.NotEqual(t, tok1.RefreshToken, tok2.RefreshToken)

		// Presenting a rotated refresh token is reuse: the session is over.
		_, err = ep.Refresh(context.Background(), tok0)
		assert.Equal(t, gotReauth, outcomeOf(t, nil, err), "error: %v", err)

		st := s.Stats()
		assert.Equal(t, int64(3), st.Refreshes)
		assert.Equal(t, int64(2), st.Rotations)
		assert.Equal(t, int64(1), st.ReuseDetections)
	})
}

func TestInjected503WithRetryAfterIsWaitedForThenSucceeds(t *testing.T) {
	forEachContract(t, func(t *testing.T, s *testserver.Server, ep refresher.Endpoint) {
		s.FailRefreshes(1, http.StatusServiceUnavailable, time.Second)
		start := time.Now()
		tok, err := ep.Refresh(context.Background(), issue(t, s))
		require.NoError(t, err)
		assert.NotEmpty(t, tok.AccessToken)
		assert.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond, "Retry-After: 1 was honoured")
		st := s.Stats()
		assert.Equal(t, int64(2), st.Refreshes, "calls that reached the server")
		assert.Equal(t, int64(1), st.InjectedFailures)
		assert.Equal(t, int64(1), st.Rotations)
	})
}

func TestInjected429WithALongRetryAfterIsTransient(t *testing.T) {
	forEachContract(t, func(t *testing.T, s *testserver.Server, ep refresher.Endpoint) {
		s.FailRefreshes(1, http.StatusTooManyRequests, time.Hour)
		tok, err := ep.Refresh(context.Background(), issue(t, s))
		require.Equal(t, gotRetry, outcomeOf(t, tok, err), "error: %v", err)
		var re *refresher.RefreshError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, time.Hour, re.RetryAfter)
		assert.Equal(t, int64(1), s.Stats().Refreshes)
	})
}

func TestAnswerDroppedAfterRotationIsTransientAndNeverResent(t *testing.T) {
	forEachContract(t, func(t *testing.T, s *testserver.Server, ep refresher.Endpoint) {
		s.DropAfterRotate(1)
		tok, err := ep.Refresh(context.Background(), issue(t, s))
		require.Equal(t, gotRetry, outcomeOf(t, tok, err), "error: %v", err)
		st := s.Stats()
		assert.Equal(t, int64(1), st.Refreshes, "calls that reached the server")
		assert.Equal(t, int64(1), st.Rotations)
		assert.Equal(t, int64(1), st.Drops)
		assert.Zero(t, st.ReuseDetections, "the rotated refresh token was not presented again")
	})
}

func TestRevokedFamilyEndsTheSession(t *testing.T) {
	forEachContract(t, func(t *testing.T, s *testserver.Server, ep refresher.Endpoint) {
		tok0 := issue(t, s)
		s.RevokeAll()
		tok, err := ep.Refresh(context.Background(), tok0)
		assert.Equal(t, gotReauth, outcomeOf(t, tok, err), "error: %v", err)
		assert.Equal(t, int64(1), s.Stats().Refreshes)
	})
}

func TestSeedLoginAnswerParsesIntoARefreshableToken(t *testing.T) {
	s := testserver.NewTest(t, testserver.Config{})
	ep := refresher.SeedEndpoint(s.URL())
	body, _ := json.Marshal(map[string]string{"username": testserver.DemoUser, "password": testserver.DemoPassword})
	resp, err := refresher.NewHTTPClient(refresher.ClientConfig{}).Post(s.URL()+testserver.PathLogin, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	tok, err := ep.ParseResponse(resp)
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)
	assert.WithinDuration(t, time.Now().Add(testserver.DefaultAccessTTL), tok.Expiry, 3*time.Second)

	next, err := ep.Refresh(context.Background(), tok)
	require.NoError(t, err)
	assert.NotEqual(t, tok.RefreshToken, next.RefreshToken)
	assert.Equal(t, int64(1), s.Stats().Rotations)
}

// rereadStore is a Store whose first Load returns the token the Source
// holds: another process logs in and saves its token just after.
type rereadStore struct {
	mu    sync.Mutex // guards the fields
	first *oauth2.Token
	later *oauth2.Token
	saved []*oauth2.Token
	// switched reports when to return later: once a refresh reached
	// the server, as if another process saved it meanwhile.
	switched func() bool
}

func (s *rereadStore) Load(context.Context) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.switched() {
		return s.later, nil
	}
	return s.first, nil
}

func (s *rereadStore) Save(_ context.Context, t *oauth2.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.saved = append(s.saved, t)
	return nil
}

// TestSourceAdoptsTheStoredTokenWhenTheRefreshTokenIsRejected: the Source's
// refresh token is refused (its family was revoked), but meanwhile another
// process logged in again and saved a new token: the Source adopts it
// instead of ending the session.
func TestSourceAdoptsTheStoredTokenWhenTheRefreshTokenIsRejected(t *testing.T) {
	s := testserver.NewTest(t, testserver.Config{})
	old := issue(t, s)
	s.RevokeAll()
	fresh := issue(t, s) // the other process's new login
	store := &rereadStore{first: old, later: fresh, switched: func() bool { return s.Stats().Refreshes > 0 }}

	src := refresher.NewSource(contracts[0].new(s), refresher.WithToken(old), refresher.WithStore(store))
	got, err := src.Refresh(context.Background(), old)
	require.NoError(t, err)
	assert.Equal(t, fresh.AccessToken, got.AccessToken)
	assert.Equal(t, fresh.RefreshToken, got.RefreshToken)
	st := s.Stats()
	assert.Equal(t, int64(1), st.Refreshes, "one refresh reached the server, and was refused")
	assert.Equal(t, int64(1), st.RefreshFailures)

	// Without a newer token in the Store, the session is over.
	s.RevokeAll()
	store2 := &rereadStore{first: fresh, later: fresh, switched: func() bool { return false }}
	src2 := refresher.NewSource(contracts[0].new(s), refresher.WithToken(fresh), refresher.WithStore(store2))
	_, err = src2.Refresh(context.Background(), fresh)
	assert.ErrorIs(t, err, refresher.ErrReauthRequired)
	assert.Equal(t, int64(2), s.Stats().Refreshes)
}

// TestSourceWithOAuth2EndpointSurvivesATransientFailure drives a Source end
// to end: an answer dropped after the server rotated is a transient error
// (the Source keeps its session and its token), and the next refresh, within
// the server's reuse grace, recovers without a reuse detection.
func TestSourceWithOAuth2EndpointSurvivesATransientFailure(t *testing.T) {
	s := testserver.NewTest(t, testserver.Config{ReuseGrace: time.Minute})
	tok0 := issue(t, s)
	src := refresher.NewSource(contracts[0].new(s), refresher.WithToken(tok0))
	s.DropAfterRotate(1)
	_, err := src.Refresh(context.Background(), tok0)
	var re *refresher.RefreshError
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Temporary())

	// Within the server's reuse grace, the parent token is accepted once.
	tok1, err := src.Refresh(context.Background(), tok0)
	require.NoError(t, err)
	assert.NotEqual(t, tok0.RefreshToken, tok1.RefreshToken)
	st := s.Stats()
	assert.Equal(t, int64(2), st.Refreshes)
	assert.Zero(t, st.ReuseDetections)
}
