package refresher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
)

// OAuth2Endpoint is an [Endpoint] for an RFC 6749 authorization server: it
// makes the refresh_token grant (§6) through golang.org/x/oauth2, with the
// client authentication that Config's Endpoint.AuthStyle names.
//
// With [oauth2.AuthStyleAutoDetect], unlike golang.org/x/oauth2, the grant is
// sent a second time (with the other style) only when the server answered
// invalid_client: any other failure may come after the server processed the
// refresh token, and presenting a rotated refresh token twice would end the
// session. A confidential client (with a ClientSecret) tries HTTP Basic
// first, a public client tries the request body first; the style that
// worked is remembered.
//
// Scopes are not sent: the new token has the scopes of the grant.
//
// An OAuth2Endpoint must not be copied after first use. Its methods are safe
// for concurrent use by multiple goroutines.
type OAuth2Endpoint struct {
	// Config names the client (ClientID, ClientSecret) and the token
	// endpoint (Endpoint.TokenURL, Endpoint.AuthStyle).
	Config *oauth2.Config

	// HTTPClient sends the refresh request. If nil, a client from
	// [NewHTTPClient] with the default [ClientConfig] and Logger is used.
	// It must not be a client that adds tokens itself, such as one from
	// this module's transport package. A client of one's own gets no
	// retries unless it comes from NewHTTPClient.
	HTTPClient *http.Client

	// Logger receives a warning when the answer's expiry is implausible
	// (once per endpoint) and, with the default HTTPClient, the retries.
	// If nil, nothing is logged. Nothing logged contains a token.
	Logger *slog.Logger

	once   sync.Once // guards client
	client *http.Client
	style  atomic.Int32 // the AuthStyle found by auto-detection; 0 until known
	noted  noteOnce
}

// Refresh exchanges current.RefreshToken for a new token. When the answer
// holds no refresh token, the returned token keeps current's. Failures are
// [*RefreshError]s; errors.Is(err, [ErrReauthRequired]) reports a dead
// session.
func (e *OAuth2Endpoint) Refresh(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	if e.Config == nil || e.Config.Endpoint.TokenURL == "" {
		return nil, &RefreshError{Err: errors.New("refresher: OAuth2Endpoint has no Config.Endpoint.TokenURL")}
	}
	if err := checkURL(e.Config.Endpoint.TokenURL); err != nil {
		return nil, &RefreshError{Err: fmt.Errorf("refresher: OAuth2Endpoint's Config.Endpoint.TokenURL %w", err)}
	}
	if current == nil || current.RefreshToken == "" {
		return nil, &RefreshError{Err: &reauthError{"there is no refresh token"}}
	}
	style := e.Config.Endpoint.AuthStyle
	if style != oauth2.AuthStyleAutoDetect {
		return e.exchange(ctx, current, style)
	}
	if s := oauth2.AuthStyle(e.style.Load()); s != oauth2.AuthStyleAutoDetect {
		return e.exchange(ctx, current, s)
	}
	first, second := oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams
	if e.Config.ClientSecret == "" {
		first, second = second, first
	}
	tok, err := e.exchange(ctx, current, first)
	if err == nil {
		e.style.Store(int32(first))
		return tok, nil
	}
	if !clientRejected(err) {
		return nil, err
	}
	tok, err = e.exchange(ctx, current, second)
	if err == nil {
		e.style.Store(int32(second))
	}
	return tok, err
}

// clientRejected reports an invalid_client answer: the server refused the
// client's authentication, before it looked at the refresh token.
func clientRejected(err error) bool {
	var re *RefreshError
	return errors.As(err, &re) && re.Code == "invalid_client"
}

// exchange makes one refresh_token grant with the given client
// authentication style.
func (e *OAuth2Endpoint) exchange(ctx context.Context, current *oauth2.Token, style oauth2.AuthStyle) (*oauth2.Token, error) {
	cfg := *e.Config
	cfg.Endpoint.AuthStyle = style
	var seen capture
	ctx = context.WithValue(ctx, oauth2.HTTPClient, e.httpClient())
	ctx = withCapture(ctx, &seen)
	tok, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: current.RefreshToken}).Token()
	now := time.Now()

	var rerr *RefreshError
	switch {
	case seen.ok:
		// The client is ours: parse its answer ourselves, so that every
		// endpoint reads answers (and expiry) the same way.
		var note string
		tok, note, rerr = parseAnswer(oauthSpec, seen.status, seen.header, seen.body, now)
		e.noted.log(e.Logger, note, logURL(cfg.Endpoint.TokenURL))
	case err == nil:
		var note string
		var expiresIn any
		if tok.ExpiresIn != 0 {
			expiresIn = tok.ExpiresIn
		}
		if expiresIn != nil || tok.Expiry.IsZero() {
			tok.Expiry, tok.ExpiresIn, note = inferExpiry(now, expiresIn, tok.AccessToken, "")
		}
		e.noted.log(e.Logger, note, logURL(cfg.Endpoint.TokenURL))
	default:
		rerr = retrieveFailure(err)
	}
	if rerr != nil {
		return nil, redact(rerr, current.RefreshToken, cfg.ClientSecret)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = current.RefreshToken
	}
	return tok, nil
}

// retrieveFailure maps an error of golang.org/x/oauth2 when the answer was
// not captured (a client of the user's own).
func retrieveFailure(err error) *RefreshError {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		if e := classifyAnswer(re.Response.StatusCode, re.Response.Header, re.Body); e != nil {
			return e
		}
		return parseFailure(re.Response.StatusCode, "the answer carries an error")
	}
	if errors.As(err, new(*url.Error)) {
		return classifyTransport(err)
	}
	// golang.org/x/oauth2 could not parse a 2xx answer; its message quotes
	// no token.
	return &RefreshError{Err: err}
}

func (e *OAuth2Endpoint) httpClient() *http.Client {
	if e.HTTPClient != nil {
		return e.HTTPClient
	}
	e.once.Do(func() { e.client = NewHTTPClient(ClientConfig{Logger: e.Logger}) })
	return e.client
}
