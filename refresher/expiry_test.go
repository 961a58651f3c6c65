package refresher_test

import (
	"context"
	"github.com/autorefresh/autorefresh/internal/safebuf"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExpiryInference(t *testing.T) {
	in10m := time.Now().Add(10 * time.Minute)
	jwt10m := fakeJWT(map[string]any{"sub": "demo", "exp": in10m.Unix()})
	cases := []struct {
		name       string
		body       string
		date       time.Time // the answer's Date header; zero: the real one
		wantExpiry time.Time // zero: unknown
		wantSecs   int64
	}{
		{name: "expires_in number", body: `{"access_token":"SECRET-A1","expires_in":3600}`,
			wantExpiry: time.Now().Add(time.Hour), wantSecs: 3600},
		{name: "expires_in string", body: `{"access_token":"SECRET-A1","expires_in":"120"}`,
			wantExpiry: time.Now().Add(2 * time.Minute), wantSecs: 120},
		{name: "expires_in fractional", body: `{"access_token":"SECRET-A1","expires_in":59.6}`,
			wantExpiry: time.Now().Add(time.Minute), wantSecs: 60},
		{name: "expires_in null", body: `{"access_token":"SECRET-A1","expires_in":null}`},
		{name: "no expires_in, opaque token", body: `{"access_token":"SECRET-A1"}`},
		{name: "no expires_in, JWT exp", body: `{"access_token":"` + jwt10m + `"}`,
			wantExpiry: in10m, wantSecs: 600},
		{name: "expires_in wins over JWT exp", body: `{"access_token":"` + jwt10m + `","expires_in":60}`,
			wantExpiry: time.Now().Add(time.Minute), wantSecs: 60},
		{name: "absurd expires_in falls back to JWT exp", body: `{"access_token":"` + jwt10m + `","expires_in":3.6e12}`,
			wantExpiry: in10m, wantSecs: 600},
		{name: "negative expires_in", body: `{"access_token":"SECRET-A1","expires_in":-5}`},
		{name: "zero expires_in", body: `{"access_token":"SECRET-A1","expires_in":0}`},
		{name: "expires_in not a number", body: `{"access_token":"SECRET-A1","expires_in":"soon"}`},
		{name: "JWT exp in the past", body: `{"access_token":"` + fakeJWT(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}) + `"}`},
		{name: "JWT exp in 100 years", body: `{"access_token":"` + fakeJWT(map[string]any{"exp": time.Now().AddDate(100, 0, 0).Unix()}) + `"}`},
		{name: "JWT exp as a string", body: `{"access_token":"` + fakeJWT(map[string]any{"exp": "tomorrow"}) + `"}`},
		{name: "JWT with a broken payload", body: `{"access_token":"aaa.!!!.bbb"}`},
		{name: "JWT exp read against a skewed server clock",
			// The server's clock is an hour behind ours; its token lives
			// 10 minutes by its clock, so 10 minutes by ours too.
			body:       `{"access_token":"` + fakeJWT(map[string]any{"exp": time.Now().Add(-50 * time.Minute).Unix()}) + `"}`,
			date:       time.Now().Add(-time.Hour),
			wantExpiry: time.Now().Add(10 * time.Minute), wantSecs: 600},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := newAnswerServer(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				if !c.date.IsZero() {
					w.Header().Set("Date", c.date.UTC().Format(http.TimeFormat))
				}
				jsonAnswer(200, c.body)(n, w, r)
			})
			tok, err := (&refresher.JSONEndpoint{URL: srv.URL}).Refresh(context.Background(), staleToken())
			require.NoError(t, err)
			if c.wantExpiry.IsZero() {
				assert.True(t, tok.Expiry.IsZero(), "want an unknown expiry, got %v", tok.Expiry)
				assert.Zero(t, tok.ExpiresIn)
				return
			}
			assert.WithinDuration(t, c.wantExpiry, tok.Expiry, 3*time.Second)
			assert.InDelta(t, c.wantSecs, tok.ExpiresIn, 2)
		})
	}
}

func TestImplausibleExpiryIsLoggedOnce(t *testing.T) {
	var buf safebuf.Buffer
	srv := newAnswerServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","refresh_token":"SECRET-R1","expires_in":3.6e12}`))
	ep := &refresher.JSONEndpoint{URL: srv.URL + "/refresh?key=SECRET-K", Logger: slog.New(slog.NewTextHandler(&buf, nil))}
	for range 3 {
		tok, err := ep.Refresh(context.Background(), staleToken())
		require.NoError(t, err)
		assert.True(t, tok.Expiry.IsZero())
	}
	out := buf.String()
	assert.Equal(t, 1, strings.Count(out, "implausible"), "log:\n%s", out)
	assert.Contains(t, out, "expires_in of 3.6e+12 seconds is implausible; treated as unknown")
	assert.NotContains(t, out, secretMark)
	assert.Equal(t, int64(3), srv.calls.Load())
}

func TestOAuth2EndpointLogsImplausibleExpiryOnce(t *testing.T) {
	var buf safebuf.Buffer
	srv := newAnswerServer(t, jsonAnswer(200, `{"access_token":"SECRET-A1","expires_in":-1}`))
	ep := endpointKinds[1].new(srv.URL).(*refresher.OAuth2Endpoint)
	ep.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	for range 2 {
		_, err := ep.Refresh(context.Background(), staleToken())
		require.NoError(t, err)
	}
	assert.Equal(t, 1, strings.Count(buf.String(), "implausible"), "log:\n%s", buf.String())
}
