package refresher

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/autorefresh/autorefresh/internal/wire"
	"github.com/autorefresh/autorefresh/transport/dpop"
	"golang.org/x/oauth2"
)

// OAuth2Endpoint is an [Endpoint] for an RFC 6749 authorization server: it
// makes the refresh_token grant (§6), built as golang.org/x/oauth2 builds it,
// with the client authentication that Config's Endpoint.AuthStyle names, and
// reads the answer as [JSONEndpoint] does (JSON, or a form-encoded body).
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

	// KeepExtra names the fields of the answer, besides the tokens, that
	// the returned token keeps for [oauth2.Token.Extra], such as
	// "id_token" or "scope". The others are dropped, so that a session
	// does not hold the whole decoded answer.
	KeepExtra []string

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

	// DPoP, if not nil, binds the tokens to its key (RFC 9449): every
	// attempt of a refresh carries a fresh proof, every answer's nonce is
	// remembered, and an answer use_dpop_nonce is followed by one more
	// request with the server's nonce (the one retry of a refresh that is
	// safe: the server did not process the first). The returned token keeps
	// the answer's token_type, DPoP: give the same Prover to
	// transport.WithDPoP. The refresh token is bound to the key, so the key
	// must outlive it: see [dpop.Prover.MarshalKey] and SECURITY.md.
	DPoP *dpop.Prover

	// RevocationURL is the server's RFC 7009 token revocation endpoint,
	// used by [Source.Logout] to revoke the refresh token (and, on most
	// servers, its whole family). If empty, Logout cannot revoke and says
	// so with [ErrNotRevoked].
	RevocationURL string

	defaults defaultClient
	style    atomic.Int32 // the AuthStyle found by auto-detection; 0 until known
	noted    wire.NoteOnce
}

// Refresh exchanges current.RefreshToken for a new token. When the answer
// holds no refresh token, the returned token keeps current's. Failures are
// [*RefreshError]s; see [RefreshError.Kind].
func (e *OAuth2Endpoint) Refresh(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	if e.Config == nil {
		return nil, refreshError(wire.Fail(wire.Misconfigured("OAuth2Endpoint.Config is nil; set the client and its token URL")))
	}
	if err := wire.CheckURL("OAuth2Endpoint.Config.Endpoint.TokenURL", e.Config.Endpoint.TokenURL); err != nil {
		return nil, refreshError(wire.Fail(err))
	}
	if current == nil || current.RefreshToken == "" {
		return nil, sessionOver("there is no refresh token")
	}
	first, known := e.authStyle()
	if known {
		return e.exchange(ctx, current, first)
	}
	second := oauth2.AuthStyleInParams
	if first == oauth2.AuthStyleInParams {
		second = oauth2.AuthStyleInHeader
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

// checksFence marks an endpoint whose HTTP client confirms the Source's
// lock right before each attempt is written.
func (e *OAuth2Endpoint) checksFence() {}

// authStyle returns the client authentication that the refresh uses, and
// whether it is known: the configured AuthStyle, else the one
// auto-detection found; else its first guess (HTTP Basic for a client with
// a secret, the form without one), which is not known.
func (e *OAuth2Endpoint) authStyle() (style oauth2.AuthStyle, known bool) {
	if style := e.Config.Endpoint.AuthStyle; style != oauth2.AuthStyleAutoDetect {
		return style, true
	}
	if style := oauth2.AuthStyle(e.style.Load()); style != oauth2.AuthStyleAutoDetect {
		return style, true
	}
	if e.Config.ClientSecret == "" {
		return oauth2.AuthStyleInParams, false
	}
	return oauth2.AuthStyleInHeader, false
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
	req, secrets, err := wire.GrantRequest(ctx, e.Config, current.RefreshToken, style)
	if err != nil {
		return nil, refreshError(wire.Fail(wire.Misconfigured("OAuth2Endpoint.Config.Endpoint.TokenURL " + err.Error())))
	}
	tok, note, f := wire.ExchangeDPoP(e.httpClient(), req, e.spec(), secrets, e.DPoP)
	if f != nil {
		return nil, refreshError(f)
	}
	e.noted.Log(e.Logger, note, wire.LogURL(e.Config.Endpoint.TokenURL))
	if tok.RefreshToken == "" {
		tok.RefreshToken = current.RefreshToken
	}
	return tok, nil
}

// spec is the answer of RFC 6749 §5.1, with the extra fields e keeps.
func (e *OAuth2Endpoint) spec() wire.Spec {
	s := wire.OAuthSpec
	s.Keep = e.KeepExtra
	return s
}

func (e *OAuth2Endpoint) httpClient() *http.Client { return e.defaults.get(e.HTTPClient, e.Logger) }
