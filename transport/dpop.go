package transport

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/autorefresh/autorefresh/transport/dpop"
	"golang.org/x/oauth2"
)

// ErrDPoPWithoutProver is returned (wrapped) for a request that would carry
// a DPoP-bound token (token_type DPoP) through a Transport without
// [WithDPoP]. The request is not sent: such a token is useless without its
// proof, and must never go out as a bearer token.
var ErrDPoPWithoutProver = errors.New("transport: the token is DPoP-bound (token_type DPoP) but the Transport has no Prover; add transport.WithDPoP with the key the token is bound to")

// WithDPoP makes the Transport send DPoP-bound tokens (RFC 9449) with p,
// which must hold the key the tokens are bound to (the one the token
// endpoint saw: give the same Prover to refresher.OAuth2Endpoint.DPoP).
//
// A token whose TokenType is DPoP (in any case) then goes out as
// "Authorization: DPoP <token>", and every attempt of the request, first
// try and replays alike, carries a fresh proof for the attempt's method and
// URL, with the token's hash (ath) and the resource server's latest nonce.
// Every answer is shown to [dpop.Prover.ObserveResponse], so that the next
// proof carries the server's newest nonce. A 401 whose challenge is
// `DPoP error="use_dpop_nonce"` ([dpop.IsNonceChallenge]) is sent once more
// with a proof carrying the new nonce, without a refresh: the token was not
// rejected. That retry replays the body as the 401 replay does (same
// replay limit, same rules), and counts apart from it: a request may be
// retried for a nonce, then refreshed and replayed once. A nonce demanded
// again is returned as it is.
//
// Tokens of any other type are sent as before, without a proof: an
// authorization server that did not bind a token says so with token_type
// Bearer (RFC 9449 §5). Without WithDPoP, a request whose token is of type
// DPoP fails with [ErrDPoPWithoutProver] and is not sent.
func WithDPoP(p *dpop.Prover) Option {
	return func(t *Transport) { t.dpop = p }
}

// isDPoP reports whether tok is DPoP-bound.
func isDPoP(tok *oauth2.Token) bool {
	return tok != nil && strings.EqualFold(tok.TokenType, dpop.TokenType)
}

// authScheme returns the Authorization scheme for tok: "DPoP" for a
// DPoP-bound token, whatever the case of its type, else tok.Type().
func authScheme(tok *oauth2.Token) string {
	if isDPoP(tok) {
		return dpop.TokenType
	}
	return tok.Type()
}

// send sends r, a request made by authorize to carry tok, through the base
// RoundTripper. A DPoP-bound token gets a fresh proof for r, and the answer
// is shown to the Prover. A DPoP-bound token without a Prover, or a proof
// that cannot be made, fails before anything is sent; r's body is closed.
func (t *Transport) send(r *http.Request, tok *oauth2.Token) (*http.Response, error) {
	if t.jar != nil || !isDPoP(tok) {
		return t.baseRT().RoundTrip(r)
	}
	if t.dpop == nil {
		closeBody(r)
		return nil, ErrDPoPWithoutProver
	}
	proof, err := t.dpop.Proof(r.Method, r.URL.String(), tok.AccessToken)
	if err != nil {
		closeBody(r)
		return nil, fmt.Errorf("transport: DPoP proof: %w", err)
	}
	r.Header.Set(dpop.HeaderName, proof) // r is authorize's copy
	resp, err := t.baseRT().RoundTrip(r)
	if resp != nil {
		if resp.Request == nil {
			resp.Request = r
		}
		t.dpop.ObserveResponse(resp)
	}
	return resp, err
}

// nonceDemanded reports whether resp, the answer to a request that carried
// tok, asks for a proof with the server's nonce: a retry, not a refresh,
// heals it.
func (t *Transport) nonceDemanded(tok *oauth2.Token, resp *http.Response) bool {
	return t.dpop != nil && t.jar == nil && isDPoP(tok) && dpop.IsNonceChallenge(resp)
}

// retryWithNonce sends req once more with tok and a proof carrying the
// nonce that resp, a nonce challenge, gave. The body comes back as for the
// 401 replay: from again, or from tee's copy, which a new tee then keeps
// for a 401 replay of the retry. When the body cannot be replayed, resp is
// returned as it is (its nonce is known now: the next request will carry
// it). It returns the answer and the tee of the body sent.
func (t *Transport) retryWithNonce(req *http.Request, tok *oauth2.Token, resp *http.Response, again replayFunc, tee *teeBody) (*http.Response, *teeBody, error) {
	ctx := req.Context()
	size := req.ContentLength
	var body io.ReadCloser
	if tee != nil {
		b, n, ok := tee.replay(size)
		if !ok {
			t.log.LogAttrs(ctx, slog.LevelDebug, "transport: DPoP nonce demanded but the body cannot be replayed; returning the answer",
				slog.String("method", req.Method), slog.String("host", req.URL.Host))
			return resp, tee, nil
		}
		tee = &teeBody{src: b, limit: t.replayLimit}
		body, size = tee, n
	} else {
		b, err := again()
		if err != nil {
			drainClose(resp.Body)
			return nil, nil, fmt.Errorf("transport: get request body for the DPoP nonce retry: %w", err)
		}
		body = b
	}
	drainClose(resp.Body)
	t.log.LogAttrs(ctx, slog.LevelDebug, "transport: DPoP nonce demanded; retrying with it",
		slog.String("method", req.Method), slog.String("host", req.URL.Host))
	resp, err := t.send(t.authorize(req, tok, body, size), tok)
	if err == nil && resp == nil {
		err = fmt.Errorf("transport: the base RoundTripper (%T) returned neither an answer nor an error", t.baseRT())
	}
	return resp, tee, err // on error, the caller releases tee
}
