package testserver

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// tokenResponse is the RFC 6749 §5.1 answer of the token endpoint.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope,omitempty"`
}

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	status int
	code   string
	desc   string
	basic  bool // the client authenticated with Basic: add a challenge
}

func (e *oauthError) write(w http.ResponseWriter) {
	if e.basic && e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="testserver"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
}

// handleToken serves PathToken: grant_type password and refresh_token.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	s.setDPoPNonce(w)
	if e := s.parseOAuthForm(w, r); e != nil {
		e.write(w)
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "password":
		s.passwordGrant(w, r)
	case "refresh_token":
		s.refreshGrant(w, r)
	case "":
		(&oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "missing grant_type"}).write(w)
	default:
		(&oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", desc: "unsupported grant_type " + gt}).write(w)
	}
}

// parseOAuthForm checks that r is a form-encoded POST and parses its body.
func (s *Server) parseOAuthForm(w http.ResponseWriter, r *http.Request) *oauthError {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return &oauthError{status: http.StatusMethodNotAllowed, code: "invalid_request", desc: "use POST"}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "the body must be application/x-www-form-urlencoded"}
	}
	if err := r.ParseForm(); err != nil {
		if tooLarge(err) {
			return &oauthError{status: http.StatusRequestEntityTooLarge, code: "invalid_request", desc: "request body too large"}
		}
		return &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "malformed form body"}
	}
	f := r.PostForm
	if f.Has("password") {
		noteCred(r, CredPassword)
	}
	if f.Has("refresh_token") {
		noteCred(r, CredRefreshToken)
	}
	if f.Has("token") {
		noteCred(r, CredToken)
	}
	if f.Has("client_secret") {
		noteCred(r, CredFormClient)
	} else if f.Has("client_id") && r.Header.Get("Authorization") == "" {
		noteCred(r, CredClientID)
	}
	return nil
}

// authenticateClient identifies the client of a token or revocation request
// (RFC 6749 §2.3.1): HTTP Basic or client_id and client_secret form fields,
// not both. A public client needs only its client_id; a confidential client
// must present its secret.
func (s *Server) authenticateClient(r *http.Request) (string, *oauthError) {
	f := r.PostForm
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return "", &oauthError{status: http.StatusUnauthorized, code: "invalid_client", desc: "malformed Basic credentials", basic: true}
		}
		if f.Has("client_secret") {
			return "", &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "more than one client authentication method"}
		}
		if f.Has("client_id") && f.Get("client_id") != id {
			return "", &oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "client_id does not match the Basic credentials"}
		}
	} else {
		id, secret = f.Get("client_id"), f.Get("client_secret")
	}
	fail := &oauthError{status: http.StatusUnauthorized, code: "invalid_client", basic: basic}
	want, known := s.cfg.Clients[id]
	switch {
	case id == "":
		fail.desc = "client authentication required"
	case !known:
		fail.desc = "unknown client"
	case want != "" && !secretEqual(secret, want):
		fail.desc = "client authentication failed"
	default:
		return id, nil
	}
	return "", fail
}

// passwordGrant answers grant_type=password (RFC 6749 §4.3).
func (s *Server) passwordGrant(w http.ResponseWriter, r *http.Request) {
	jkt, e := s.tokenProof(w, r)
	if e != nil {
		e.write(w)
		return
	}
	client, e := s.authenticateClient(r)
	if e != nil {
		e.write(w)
		return
	}
	f := r.PostForm
	user, pass := f.Get("username"), f.Get("password")
	if user == "" || !f.Has("password") {
		(&oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "username and password are required"}).write(w)
		return
	}
	if !s.checkPassword(user, pass) {
		(&oauthError{status: http.StatusBadRequest, code: "invalid_grant", desc: "invalid username or password"}).write(w)
		return
	}
	sess := s.login(user, joinScopes([]string{f.Get("scope")}), client)
	if jkt != "" {
		s.store.bind(sess.sid, jkt)
		sess.jkt = jkt
	}
	s.writeTokenResponse(w, sess)
}

// refreshGrant answers grant_type=refresh_token (RFC 6749 §6), after the
// injected faults.
func (s *Server) refreshGrant(w http.ResponseWriter, r *http.Request) {
	s.counters.refreshes.Add(1)
	fail := func(e *oauthError) {
		s.counters.refreshFailures.Add(1)
		e.write(w)
	}
	if err := s.beforeRefresh(r.Context()); err != nil {
		fail(&oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", desc: "refresh aborted"})
		return
	}
	if fl, ok := s.takeFailure(); ok {
		s.counters.injected.Add(1)
		fl.setRetryAfter(w.Header())
		fail(&oauthError{status: fl.status, code: injectedCode(fl.status), desc: "injected failure"})
		return
	}
	jkt, e := s.tokenProof(w, r)
	if e != nil {
		fail(e)
		return
	}
	client, e := s.authenticateClient(r)
	if e != nil {
		fail(e)
		return
	}
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		fail(&oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "missing refresh_token"})
		return
	}
	sess, err := s.rotate(rt, client, joinScopes([]string{r.PostForm.Get("scope")}), jkt)
	if err != nil {
		var ge *grantError
		errors.As(err, &ge)
		fail(&oauthError{status: http.StatusBadRequest, code: ge.code, desc: ge.desc})
		return
	}
	if s.takeDrop() {
		s.counters.drops.Add(1)
		drop(w)
		return
	}
	s.writeTokenResponse(w, sess)
}

// injectedCode is the §5.2 error code of an injected failure with status.
func injectedCode(status int) string {
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return "temporarily_unavailable"
	case status == http.StatusUnauthorized:
		return "invalid_client"
	default:
		return "invalid_request"
	}
}

// writeTokenResponse mints an access token for sess and answers §5.1.
func (s *Server) writeTokenResponse(w http.ResponseWriter, sess session) {
	access, _ := s.mintBoundAccess(sess.user, sess.scope, sess.sid, sess.jkt)
	tokenType := "Bearer"
	if sess.jkt != "" {
		tokenType = "DPoP"
	}
	writeJSON(w, http.StatusOK, tokenResponse{
		AccessToken:  access,
		TokenType:    tokenType,
		ExpiresIn:    int64(s.cfg.AccessTTL / time.Second),
		RefreshToken: sess.refresh,
		Scope:        sess.scope,
	})
}

// handleRevoke serves PathRevoke (RFC 7009). A refresh token revokes its
// whole family; an access token is refused from then on. Unknown tokens are
// answered 200 like known ones.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if e := s.parseOAuthForm(w, r); e != nil {
		e.write(w)
		return
	}
	if _, e := s.authenticateClient(r); e != nil {
		e.write(w)
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		(&oauthError{status: http.StatusBadRequest, code: "invalid_request", desc: "missing token"}).write(w)
		return
	}
	if !s.store.revokeToken(tok) {
		if c, err := s.ParseAccessToken(tok); err == nil {
			s.revokeAccess(c.ID)
		}
	}
	w.WriteHeader(http.StatusOK)
}

// checkPassword reports whether pass is user's password, comparing in
// constant time.
func (s *Server) checkPassword(user, pass string) bool {
	want, ok := s.cfg.Users[user]
	eq := secretEqual(pass, want)
	return ok && eq
}

// secretEqual compares two secrets in constant time (hashing first, so the
// length of the secret does not leak either).
func secretEqual(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// joinScopes normalises scopes: split on spaces, duplicates dropped, joined
// with single spaces.
func joinScopes(scopes []string) string {
	var out []string
	seen := make(map[string]bool)
	for _, s := range scopes {
		for _, f := range strings.Fields(s) {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return strings.Join(out, " ")
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// tooLarge reports whether err comes from the body cap.
func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
