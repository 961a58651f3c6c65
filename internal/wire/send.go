package wire

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/autorefresh/autorefresh/transport/dpop"
	"golang.org/x/oauth2"
)

// Exchange sends a refresh request and reads its answer: the one path of
// every refresh endpoint. client runs the fence check (see
// [github.com/autorefresh/autorefresh/internal/fence]) right before each
// attempt is written; the answer's body is read at most 1 MiB; the answer
// is classified and parsed as Parse does, every text taken from it redacted
// with secrets, to which Exchange adds the request's Authorization header
// and cookies (the jar's included).
//
// The returned token lacks a refresh token when the answer held none.
func Exchange(client *http.Client, req *http.Request, spec Spec, secrets *Secrets) (tok *oauth2.Token, note string, f *Failure) {
	return ExchangeDPoP(client, req, spec, secrets, nil)
}

// ExchangeDPoP is Exchange with DPoP (RFC 9449), when p is not nil: each
// attempt (each retry of the client too) carries a fresh proof, every
// answer is shown to p, and an answer use_dpop_nonce ([dpop.IsNonceError])
// is followed by one more request, with a proof carrying the server's
// nonce: the server did not process the first, so even a rotating refresh
// token is safe to present again. A second use_dpop_nonce is returned as
// the failure it is.
func ExchangeDPoP(client *http.Client, req *http.Request, spec Spec, secrets *Secrets, p *dpop.Prover) (tok *oauth2.Token, note string, f *Failure) {
	if secrets == nil {
		secrets = NewSecrets()
	}
	secrets.Add(req.Header.Values("Authorization")...)
	cookies := req.Cookies()
	if client.Jar != nil {
		cookies = append(cookies, client.Jar.Cookies(req.URL)...)
	}
	for _, c := range cookies {
		secrets.Add(c.Value)
	}
	if p != nil {
		req = req.WithContext(withProver(req.Context(), p))
	}
	resp, err := fenced(client).Do(req)
	if err != nil {
		return nil, "", classifyTransport(err, secrets)
	}
	tok, note, f = ParseResponse(resp, spec, secrets)
	if f == nil || p == nil || !dpop.IsNonceError(f.StatusCode, resp.Header, f.Code) {
		return tok, note, f
	}
	retry, ok := nonceRetry(req)
	if !ok {
		return nil, "", f
	}
	if resp, err = fenced(client).Do(retry); err != nil {
		return nil, "", classifyTransport(err, secrets)
	}
	return ParseResponse(resp, spec, secrets)
}

// ParseResponse reads resp's body (at most 1 MiB, then closes it) and
// parses it as Parse does.
func ParseResponse(resp *http.Response, spec Spec, secrets *Secrets) (*oauth2.Token, string, *Failure) {
	body, err := ReadBody(resp.Body, resp.StatusCode, DefaultMaxBodySize)
	if err != nil {
		return nil, "", classifyTransport(err, secrets)
	}
	return Parse(spec, Answer{StatusCode: resp.StatusCode, Header: resp.Header, Body: body}, secrets, time.Now())
}

// GrantRequest returns the refresh_token grant of RFC 6749 §6 that
// golang.org/x/oauth2 would send (its internal newTokenRequest), with the
// client authenticated as style says (AuthStyleInHeader or
// AuthStyleInParams), and the secrets it carries. Scopes are not sent: the
// new token has the scopes of the grant.
func GrantRequest(ctx context.Context, cfg *oauth2.Config, refreshToken string, style oauth2.AuthStyle) (*http.Request, *Secrets, error) {
	v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	req, err := ClientRequest(ctx, cfg, cfg.Endpoint.TokenURL, v, style)
	if err != nil {
		return nil, nil, errors.New("the token URL cannot be used in a request")
	}
	req.Header.Set("Accept", "application/json")
	return req, NewSecrets(refreshToken, cfg.ClientSecret), nil
}

// ClientRequest returns a form POST of v to target by the client of cfg,
// authenticated as style says: HTTP Basic (AuthStyleInHeader) or
// client_id and client_secret in the form (AuthStyleInParams), as RFC 6749
// §2.3.1 has it for the token endpoint and RFC 7009 for revocation.
func ClientRequest(ctx context.Context, cfg *oauth2.Config, target string, v url.Values, style oauth2.AuthStyle) (*http.Request, error) {
	if style == oauth2.AuthStyleInParams {
		if cfg.ClientID != "" {
			v.Set("client_id", cfg.ClientID)
		}
		if cfg.ClientSecret != "" {
			v.Set("client_secret", cfg.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if style == oauth2.AuthStyleInHeader {
		req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	}
	return req, nil
}
