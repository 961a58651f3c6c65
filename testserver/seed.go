package testserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
)

// Cookie names of contract B.
const (
	cookieAccess  = "accessToken"
	cookieRefresh = "refreshToken"
)

// SeedUser is the user object of contract B's answers.
type SeedUser struct {
	ID       string `json:"_id"`
	Username string `json:"username"`
	Email    string `json:"email"`
	FullName string `json:"fullName"`
}

// seedEnvelope is contract B's answer: {"statusCode", "data", "message",
// "success"}.
type seedEnvelope struct {
	StatusCode int    `json:"statusCode"`
	Data       any    `json:"data,omitempty"`
	Message    string `json:"message"`
	Success    bool   `json:"success"`
}

// seedTokens is the data of contract B's refresh answer.
type seedTokens struct {
	User         *SeedUser `json:"user,omitempty"`
	AccessToken  string    `json:"accessToken"`
	RefreshToken string    `json:"refreshToken"`
}

// seedBody is every field a contract B request body may carry.
type seedBody struct {
	Username     string `json:"username"`
	Email        string `json:"email"`
	Password     string `json:"password"`
	RefreshToken string `json:"refreshToken"`
}

// seedOK answers 200 with data.
func seedOK(w http.ResponseWriter, data any, msg string) {
	writeJSON(w, http.StatusOK, seedEnvelope{StatusCode: http.StatusOK, Data: data, Message: msg, Success: true})
}

// seedFail answers an error envelope; a 401 carries no WWW-Authenticate.
func seedFail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, seedEnvelope{StatusCode: status, Message: msg, Success: false})
}

// seedUser returns the contract B user object of user.
func seedUser(user string) *SeedUser {
	id := sha256.Sum256([]byte(user))
	return &SeedUser{ID: hex.EncodeToString(id[:12]), Username: user, Email: user + "@example.com", FullName: user}
}

// lookupUser finds the user named id, or whose e-mail is id.
func (s *Server) lookupUser(id string) (string, bool) {
	if _, ok := s.cfg.Users[id]; ok {
		return id, true
	}
	for u := range s.cfg.Users {
		if u+"@example.com" == id {
			return u, true
		}
	}
	return "", false
}

// readSeedBody decodes a JSON (or form-encoded) body. An empty body is no
// error. On failure it answers and returns false.
func readSeedBody(w http.ResponseWriter, r *http.Request) (seedBody, bool) {
	var b seedBody
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			if tooLarge(err) {
				seedFail(w, http.StatusRequestEntityTooLarge, "request body too large")
			} else {
				seedFail(w, http.StatusBadRequest, "malformed form body")
			}
			return b, false
		}
		f := r.PostForm
		b = seedBody{Username: f.Get("username"), Email: f.Get("email"), Password: f.Get("password"), RefreshToken: f.Get("refreshToken")}
	} else {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			if tooLarge(err) {
				seedFail(w, http.StatusRequestEntityTooLarge, "request body too large")
			} else {
				seedFail(w, http.StatusBadRequest, "reading body failed")
			}
			return b, false
		}
		if len(data) > 0 {
			if err := json.Unmarshal(data, &b); err != nil {
				seedFail(w, http.StatusBadRequest, "malformed JSON body")
				return b, false
			}
		}
	}
	if b.Password != "" {
		noteCred(r, CredPassword)
	}
	if b.RefreshToken != "" {
		noteCred(r, CredRefreshToken)
	}
	return b, true
}

// allowPost answers 405 and returns false unless r is a POST.
func allowPost(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodPost {
		return true
	}
	w.Header().Set("Allow", http.MethodPost)
	seedFail(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

// setSeedCookies sets the accessToken and refreshToken cookies: HttpOnly,
// Path=/, SameSite=Lax, session cookies, not Secure (loopback http).
func setSeedCookies(w http.ResponseWriter, access, refresh string) {
	http.SetCookie(w, &http.Cookie{Name: cookieAccess, Value: access, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: cookieRefresh, Value: refresh, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// clearSeedCookies expires both cookies.
func clearSeedCookies(w http.ResponseWriter) {
	for _, name := range []string{cookieAccess, cookieRefresh} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
}

// handleLogin serves PathLogin: {"username" or "email", "password"}.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if !allowPost(w, r) {
		return
	}
	b, ok := readSeedBody(w, r)
	if !ok {
		return
	}
	id := b.Username
	if id == "" {
		id = b.Email
	}
	if id == "" {
		seedFail(w, http.StatusBadRequest, "username or email is required")
		return
	}
	user, found := s.lookupUser(id)
	if !found {
		seedFail(w, http.StatusNotFound, "User does not exist")
		return
	}
	if !s.checkPassword(user, b.Password) {
		seedFail(w, http.StatusUnauthorized, "Invalid user credentials")
		return
	}
	sess := s.login(user, "", "")
	access, _ := s.mintAccess(sess.user, sess.scope, sess.sid)
	setSeedCookies(w, access, sess.refresh)
	seedOK(w, seedTokens{User: seedUser(user), AccessToken: access, RefreshToken: sess.refresh}, "User logged in successfully")
}

// handleRefreshB serves PathRefreshB: the refresh token comes from the
// refreshToken cookie, else from the JSON body field refreshToken.
func (s *Server) handleRefreshB(w http.ResponseWriter, r *http.Request) {
	if !allowPost(w, r) {
		return
	}
	s.counters.refreshes.Add(1)
	fail := func(status int, msg string) {
		s.counters.refreshFailures.Add(1)
		seedFail(w, status, msg)
	}
	b, ok := readSeedBody(w, r)
	if !ok {
		s.counters.refreshFailures.Add(1)
		return
	}
	if err := s.beforeRefresh(r.Context()); err != nil {
		fail(http.StatusServiceUnavailable, "refresh aborted")
		return
	}
	if fl, ok := s.takeFailure(); ok {
		s.counters.injected.Add(1)
		fl.setRetryAfter(w.Header())
		fail(fl.status, "injected failure")
		return
	}
	rt := b.RefreshToken
	if c, err := r.Cookie(cookieRefresh); err == nil && c.Value != "" {
		rt = c.Value
	}
	if rt == "" {
		fail(http.StatusUnauthorized, "Unauthorized request")
		return
	}
	sess, err := s.rotate(rt, "", "")
	if err != nil {
		msg := "Refresh token is expired or used"
		if errors.Is(err, errUnknownRefresh) {
			msg = "Invalid refresh token"
		}
		fail(http.StatusUnauthorized, msg)
		return
	}
	if s.takeDrop() {
		s.counters.drops.Add(1)
		drop(w)
		return
	}
	access, _ := s.mintAccess(sess.user, sess.scope, sess.sid)
	setSeedCookies(w, access, sess.refresh)
	seedOK(w, seedTokens{AccessToken: access, RefreshToken: sess.refresh}, "Access token refreshed")
}

// handleLogout serves PathLogout: it revokes the family of the refresh token
// (cookie or body) or, failing that, of the access token (cookie or Bearer),
// and clears both cookies.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	if !allowPost(w, r) {
		return
	}
	b, ok := readSeedBody(w, r)
	if !ok {
		return
	}
	rt := b.RefreshToken
	if c, err := r.Cookie(cookieRefresh); err == nil && c.Value != "" {
		rt = c.Value
	}
	switch c, err := s.accessToken(r, true); {
	case rt != "":
		s.store.revokeToken(rt)
	case err == nil:
		s.store.revokeFamily(c.SessionID)
	default:
		seedFail(w, http.StatusUnauthorized, "Unauthorized request")
		return
	}
	clearSeedCookies(w)
	seedOK(w, struct{}{}, "User logged out")
}

// handleCurrentUser serves PathCurrentUser: the accessToken cookie, else
// Authorization: Bearer.
func (s *Server) handleCurrentUser(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	c, err := s.accessToken(r, true)
	if err != nil {
		msg := "Invalid access token"
		if errors.Is(err, errNoToken) {
			msg = "Unauthorized request"
		}
		seedFail(w, http.StatusUnauthorized, msg)
		return
	}
	seedOK(w, seedUser(c.Subject), "User fetched successfully")
}
