package testserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Challenges of the OAuth2 API resources (RFC 6750 §3).
const (
	challengeMissing = `Bearer realm="testserver"`
	challengeInvalid = `Bearer error="invalid_token"`
	challengeScope   = `Bearer error="insufficient_scope", scope="` + ScopeAdmin + `"`
)

// errNoToken reports a request without an access token.
var errNoToken = errors.New("no access token")

// accessToken finds and validates the access token of r: from the
// Authorization: Bearer header or the accessToken cookie, in the order given
// by cookieFirst.
func (s *Server) accessToken(r *http.Request, cookieFirst bool) (*AccessClaims, error) {
	var header, cookie string
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		header = strings.TrimSpace(tok)
	}
	if c, err := r.Cookie(cookieAccess); err == nil {
		cookie = c.Value
	}
	raw := header
	if raw == "" || (cookieFirst && cookie != "") {
		raw = cookie
	}
	if raw == "" {
		return nil, errNoToken
	}
	return s.ParseAccessToken(raw)
}

// authorize checks the access token of an OAuth2 API resource request and,
// if scope is not empty, that it grants scope. On failure it answers 401 or
// 403 with the RFC 6750 challenge and returns nil.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, scope string) *AccessClaims {
	if s.dpop != nil {
		s.setDPoPNonce(w)
		if usesDPoPScheme(r) {
			return s.authorizeDPoP(w, r, scope) // dpopserver.go
		}
	}
	c, err := s.accessToken(r, false)
	if err == nil && c.Confirmation != nil {
		err = errBoundAsBearer
	}
	switch {
	case errors.Is(err, errNoToken):
		w.Header().Set("WWW-Authenticate", challengeMissing)
		if s.dpop != nil {
			w.Header().Add("WWW-Authenticate", dpopChallengeMissing())
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "unauthorized", "error_description": "an access token is required"})
		return nil
	case err != nil:
		w.Header().Set("WWW-Authenticate", challengeInvalid)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": err.Error()})
		return nil
	case scope != "" && !hasScope(c.Scope, scope):
		w.Header().Set("WWW-Authenticate", challengeScope)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "the access token lacks scope " + scope})
		return nil
	}
	return c
}

// allowGet answers 405 and returns false unless r's method is GET or HEAD.
func allowGet(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed"})
	return false
}

// handleMe serves PathMe: {"user": sub}.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	if c := s.authorize(w, r, ""); c != nil {
		writeJSON(w, http.StatusOK, map[string]string{"user": c.Subject})
	}
}

// handleAdmin serves PathAdmin, which needs ScopeAdmin.
func (s *Server) handleAdmin(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	if c := s.authorize(w, r, ScopeAdmin); c != nil {
		writeJSON(w, http.StatusOK, map[string]any{"user": c.Subject, "admin": true})
	}
}

// EchoResponse is the answer of [PathEcho]: what the server received.
type EchoResponse struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Query  string `json:"query"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"` // hex SHA-256 of the body
	User   string `json:"user"`
}

// handleEcho serves PathEcho, any method.
func (s *Server) handleEcho(w http.ResponseWriter, r *http.Request) {
	c := s.authorize(w, r, "")
	if c == nil {
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, r.Body)
	if err != nil {
		if tooLarge(err) {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "request body too large"})
			return
		}
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "reading body: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, EchoResponse{
		Method: r.Method,
		Path:   r.URL.Path,
		Query:  r.URL.RawQuery,
		Length: n,
		SHA256: hex.EncodeToString(h.Sum(nil)),
		User:   c.Subject,
	})
}
