package transport_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// The zero Transport, like x/oauth2's, fails its requests with an error
// instead of panicking, and closes their bodies.
func TestZeroTransportReturnsErrNilSource(t *testing.T) {
	for name, rt := range map[string]*transport.Transport{"zero": {}, "no Source": {Base: http.DefaultTransport}} {
		t.Run(name, func(t *testing.T) {
			body := &countingBody{Reader: strings.NewReader("x")}
			req, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/", body)
			require.NoError(t, err)
			resp, err := rt.RoundTrip(req)
			assert.Nil(t, resp)
			require.ErrorIs(t, err, transport.ErrNilSource)
			assert.Equal(t, int32(1), body.closes.Load(), "the body is closed")

			_, err = (&http.Client{Transport: rt}).Get("http://127.0.0.1/")
			require.ErrorIs(t, err, transport.ErrNilSource)
		})
	}
}

// A Transport written as a literal, with the fields x/oauth2 users know,
// works like one from New: the token is attached through Base, and a 401
// is refreshed once and replayed.
func TestLiteralTransportWorksLikeNew(t *testing.T) {
	a := newAuthServer(t)
	a.issue()
	a.expireAccess()
	var auth []string
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		auth = append(auth, r.Header.Get("Authorization"))
		return http.DefaultTransport.RoundTrip(r)
	})
	src := refresher.NewSource(a.endpoint(), refresher.WithToken(&oauth2.Token{AccessToken: "old", RefreshToken: a.refresh}))
	c := &http.Client{Transport: &transport.Transport{Source: src, Base: base}}

	resp, err := c.Post(a.url("/echo"), "text/plain", strings.NewReader("hello"))
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, auth, 2, "the request and its replay, both through Base")
	assert.Equal(t, "Bearer old", auth[0])
	assert.Equal(t, "Bearer "+a.currentAccess(), auth[1])
	assert.Equal(t, int64(1), a.calls.Load(), "refreshes")
}
