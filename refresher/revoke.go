package refresher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/wire"
)

// Revoke revokes t's refresh token at RevocationURL (RFC 7009), with the
// client authenticated as for a refresh. Without RevocationURL it returns
// an error wrapping [ErrNotRevoked].
func (e *OAuth2Endpoint) Revoke(ctx context.Context, t *oauth2.Token) error {
	if e.RevocationURL == "" {
		return errors.Join(ErrNotRevoked, errors.New("refresher: OAuth2Endpoint has no RevocationURL"))
	}
	if e.Config == nil {
		return refreshError(wire.Fail(wire.Misconfigured("OAuth2Endpoint has no Config")))
	}
	v := url.Values{"token": {t.RefreshToken}, "token_type_hint": {"refresh_token"}}
	style, _ := e.authStyle()
	req, err := wire.ClientRequest(ctx, e.Config, e.RevocationURL, v, style)
	if err != nil {
		return refreshError(wire.Fail(wire.Misconfigured("OAuth2Endpoint.RevocationURL cannot be used in a request")))
	}
	return revokeAt(e.httpClient(), req)
}

// Revoke posts t's refresh token to LogoutURL, as a refresh would send it.
// Without LogoutURL it returns an error wrapping [ErrNotRevoked].
func (e *JSONEndpoint) Revoke(ctx context.Context, t *oauth2.Token) error {
	if e.LogoutURL == "" {
		return errors.Join(ErrNotRevoked, errors.New("refresher: JSONEndpoint has no LogoutURL"))
	}
	u, err := url.Parse(e.LogoutURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return refreshError(wire.Fail(wire.Misconfigured("JSONEndpoint.LogoutURL is not an absolute URL")))
	}
	req, err := e.newRequest(ctx, t.RefreshToken)
	if err != nil {
		return refreshError(wire.Fail(err))
	}
	req.URL, req.Host = u, u.Host
	client, err := e.httpClient()
	if err != nil {
		return refreshError(wire.Fail(err))
	}
	return revokeAt(client, req)
}

// revokeAt sends a revocation or logout request; any 2xx answer is a
// success. The answer's body is never quoted.
func revokeAt(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return &RefreshError{Err: fmt.Errorf("revoke: %w", err)}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return &RefreshError{StatusCode: resp.StatusCode, Err: errors.New("revoke: the server refused")}
	}
	return nil
}
