package refresher_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
)

// FuzzParseTokenResponse feeds arbitrary answers to the response parser of
// the endpoints (through JSONEndpoint.ParseResponse, with the plain and the
// seed-style configuration). It must never panic; it returns either a
// token with an access token and a plausible expiry, or a *RefreshError
// with a short message.
//
// Run it with: go test -run '^$' -fuzz FuzzParseTokenResponse -fuzztime 30s ./refresher/
func FuzzParseTokenResponse(f *testing.F) {
	f.Add(200, "application/json", "", []byte(`{"access_token":"a","refresh_token":"r","expires_in":3600}`), false)
	f.Add(200, "application/json", "", []byte(`{"access_token":"a","expires_in":3.6e12}`), false)
	f.Add(200, "application/json", "", []byte(`{"access_token":"a","expires_in":"60"}`), false)
	f.Add(200, "application/json", "", []byte(`{}`), false)
	f.Add(200, "application/json", "", []byte(`{"access_token":"a","refr`), false)
	f.Add(200, "text/html", "", []byte(`<html><body>hi</body></html>`), false)
	f.Add(401, "text/html", "", []byte(`<html><body>Unauthorized</body></html>`), false)
	f.Add(400, "application/json", "", []byte(`{"error":"invalid_grant","error_description":"revoked"}`), false)
	f.Add(503, "application/json", "", []byte(`{"error":"temporarily_unavailable"}`), false)
	f.Add(200, "application/x-www-form-urlencoded", "", []byte(`access_token=a&expires_in=60`), false)
	f.Add(200, "application/json", "", []byte(`{"access_token":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjk5OTk5OTk5OTl9.c2ln"}`), false)
	f.Add(200, "application/json", "accessToken=a; Path=/; HttpOnly", []byte(`{"statusCode":200,"data":{"refreshToken":"r"},"success":true}`), true)
	f.Add(200, "application/json", "", []byte(`{"statusCode":200,"data":{"accessToken":"a","refreshToken":"r"},"message":"ok","success":true}`), true)
	f.Add(200, "application/json", "", []byte(`{"data":[1,2,{"accessToken":null}]}`), true)

	plain := &refresher.JSONEndpoint{URL: "http://127.0.0.1/refresh"}
	seed := refresher.SeedEndpoint("http://127.0.0.1")
	f.Fuzz(func(t *testing.T, status int, contentType, setCookie string, body []byte, seedStyle bool) {
		status = 100 + int(uint(status)%500)
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if setCookie != "" {
			h.Set("Set-Cookie", setCookie)
		}
		resp := &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(bytes.NewReader(body))}
		ep := plain
		if seedStyle {
			ep = seed
		}
		now := time.Now()
		tok, err := ep.ParseResponse(resp)
		if err != nil {
			if tok != nil {
				t.Fatalf("got a token and an error %v", err)
			}
			var re *refresher.RefreshError
			if !errors.As(err, &re) {
				t.Fatalf("error %T is not a *RefreshError: %v", err, err)
			}
			if n := len(err.Error()); n > 2048 {
				t.Fatalf("error message of %d bytes", n)
			}
			_ = re.Temporary()
			_ = errors.Is(err, refresher.ErrReauthRequired)
			return
		}
		if status < 200 || status > 299 {
			t.Fatalf("status %d gave a token", status)
		}
		if tok == nil || tok.AccessToken == "" {
			t.Fatalf("no error and no access token: %#v", tok)
		}
		if !tok.Expiry.IsZero() && (tok.Expiry.Before(now) || tok.Expiry.After(now.AddDate(10, 0, 2))) {
			t.Fatalf("implausible expiry %v accepted", tok.Expiry)
		}
	})
}
