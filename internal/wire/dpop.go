package wire

import (
	"context"
	"fmt"
	"net/http"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

// proverKey is the context key of the Prover whose proofs a refresh
// request carries.
type proverKey struct{}

// withProver returns ctx carrying p, for attemptTransport.
func withProver(ctx context.Context, p *dpop.Prover) context.Context {
	return context.WithValue(ctx, proverKey{}, p)
}

func proverFrom(ctx context.Context) *dpop.Prover {
	p, _ := ctx.Value(proverKey{}).(*dpop.Prover)
	return p
}

// withProof returns a copy of req carrying a fresh DPoP proof of p (RFC
// 9449 §5), for one attempt: a retry must not present a proof again, its
// jti would be a replay. A token request's proof has no ath.
func withProof(req *http.Request, p *dpop.Prover) (*http.Request, error) {
	proof, err := p.Proof(req.Method, req.URL.String(), "")
	if err != nil {
		return nil, fmt.Errorf("making the DPoP proof: %w", err)
	}
	r := req.Clone(req.Context())
	r.Header.Set(dpop.HeaderName, proof)
	return r, nil
}

// observe shows resp, the answer to req, to p, which learns the server's
// nonce from it.
func observe(p *dpop.Prover, req *http.Request, resp *http.Response) {
	if resp == nil {
		return
	}
	if resp.Request == nil {
		resp.Request = req
	}
	p.ObserveResponse(resp)
}

// nonceRetry returns the request to send once more after a token endpoint
// answered use_dpop_nonce (RFC 9449 §8): req with its body anew, or ok
// false when the body cannot be had again.
func nonceRetry(req *http.Request) (*http.Request, bool) {
	r := req.Clone(req.Context())
	if req.Body == nil || req.Body == http.NoBody {
		return r, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	r.Body = body
	return r, true
}
