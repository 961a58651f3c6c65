package testserver

import (
	"errors"
	"net/http"
	"strings"
)

// This file requires DPoP of the OAuth2 API when Config.DPoP is set: the
// token endpoint's proofs and binding, the resources' DPoP scheme. The
// proofs themselves are checked by the dpopVerifier (dpop.go).

// Confirmation is the cnf claim of a DPoP-bound access token (RFC 9449
// §6.1): the thumbprint of the key it is bound to.
type Confirmation struct {
	// JKT is the RFC 7638 thumbprint (SHA-256, base64url) of the key.
	JKT string `json:"jkt"`
}

// errBoundAsBearer reports a DPoP-bound access token sent with the Bearer
// scheme: without its proof, it is refused like a stolen one.
var errBoundAsBearer = errors.New("the access token is DPoP-bound: send it with the DPoP scheme and a proof")

// ExpireDPoPNonces makes the server's DPoP nonce new, and every nonce
// handed out so far stale: the next proof of every client is answered
// use_dpop_nonce, with the new nonce. It does nothing unless [Config.DPoP]
// is set.
func (s *Server) ExpireDPoPNonces() {
	if s.dpop == nil {
		return
	}
	v := s.dpop
	v.mu.Lock()
	defer v.mu.Unlock()
	v.rotateLocked(v.now(), true)
	v.prev = ""
}

// setDPoPNonce puts the server's current nonce in the DPoP-Nonce header of
// the answer, when DPoP is on.
func (s *Server) setDPoPNonce(w http.ResponseWriter) {
	if s.dpop == nil {
		return
	}
	if n := s.dpop.nonce(); n != "" {
		w.Header().Set("DPoP-Nonce", n)
	}
}

// tokenProof checks the DPoP proof of a token request, when DPoP is on,
// and returns the thumbprint of its key ("" when DPoP is off). A refused
// proof is answered 400 invalid_dpop_proof, or use_dpop_nonce with the
// nonce to use (RFC 9449 §8).
func (s *Server) tokenProof(w http.ResponseWriter, r *http.Request) (string, *oauthError) {
	if s.dpop == nil {
		return "", nil
	}
	jkt, err := s.dpop.verify(r, "")
	s.setDPoPNonce(w) // after verify, which may have rotated it
	if err != nil {
		var de *dpopError
		if !errors.As(err, &de) {
			de = dpopFail(dpopCheckMalformed, "proof refused")
		}
		return "", &oauthError{status: http.StatusBadRequest, code: de.code(), desc: de.desc}
	}
	return jkt, nil
}

// usesDPoPScheme reports whether r's Authorization header has the DPoP
// scheme.
func usesDPoPScheme(r *http.Request) bool {
	scheme, _, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	return strings.EqualFold(scheme, "DPoP")
}

// dpopChallengeMissing is the DPoP challenge of a resource's 401 to a
// request without a token (RFC 9449 §7.1).
func dpopChallengeMissing() string {
	return `DPoP algs="` + dpopAlgsParam() + `"`
}

// authorizeDPoP is authorize for a request with the DPoP scheme: the access
// token must be valid and bound (cnf.jkt), the proof valid for this request
// and this token (ath), signed by the key the token is bound to, and
// carrying the server's nonce. On failure it answers 401 (403 for a missing
// scope) with a DPoP challenge (RFC 9449 §7.1) and returns nil.
func (s *Server) authorizeDPoP(w http.ResponseWriter, r *http.Request, scope string) *AccessClaims {
	deny := func(status int, challenge, code, desc string) *AccessClaims {
		w.Header().Set("WWW-Authenticate", challenge)
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
		return nil
	}
	invalid := func(desc string) *AccessClaims {
		return deny(http.StatusUnauthorized, `DPoP error="invalid_token", algs="`+dpopAlgsParam()+`"`, "invalid_token", desc)
	}
	_, raw, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return deny(http.StatusUnauthorized, dpopChallengeMissing(), "unauthorized", "an access token is required")
	}
	c, err := s.ParseAccessToken(raw)
	if err != nil {
		return invalid(err.Error())
	}
	if c.Confirmation == nil || c.Confirmation.JKT == "" {
		return invalid("the access token is not DPoP-bound: send it with the Bearer scheme")
	}
	jkt, err := s.dpop.verify(r, raw)
	s.setDPoPNonce(w)
	if err != nil {
		var de *dpopError
		if !errors.As(err, &de) {
			de = dpopFail(dpopCheckMalformed, "proof refused")
		}
		return deny(http.StatusUnauthorized, de.challenge(), de.code(), de.desc)
	}
	if jkt != c.Confirmation.JKT {
		return invalid("the proof is not signed by the key the access token is bound to")
	}
	if scope != "" && !hasScope(c.Scope, scope) {
		return deny(http.StatusForbidden, `DPoP error="insufficient_scope", scope="`+scope+`"`,
			"insufficient_scope", "the access token lacks scope "+scope)
	}
	return c
}

// bind binds the family sid, new and not yet handed out, to the DPoP key
// of thumbprint jkt.
func (st *store) bind(sid, jkt string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if fam := st.families[sid]; fam != nil {
		fam.jkt = jkt
	}
}
