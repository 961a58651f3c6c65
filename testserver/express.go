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

// Cookie names of the Express API.
const (
	cookieAccess  = "accessToken"
	cookieRefresh = "refreshToken"
)

// ExpressUser is the user object of the Express API's answers.
type ExpressUser struct {
	ID       string `json:"_id"`
	Username string `json:"username"`
	Email    string `json:"email"`
	FullName string `json:"fullName"`
}

// expressEnvelope is the Express API's answer: {"statusCode", "data", "message",
// "success"}.
type expressEnvelope struct {
	StatusCode int    `json:"statusCode"`
	Data       any    `json:"data,omitempty"`
	Message    string `json:"message"`
	Success    bool   `json:"success"`
}

// expressTokens is the data of the Express API's refresh answer.
type expressTokens struct {
	User         *ExpressUser `json:"user,omitempty"`
	AccessToken  string       `json:"accessToken"`
	RefreshToken string       `json:"refreshToken"`
}

// expressBody is every field an Express API request body may carry.
type expressBody struct {
	Username     string `json:"username"`
	Email        string `json:"email"`
	Password     string `json:"password"`
	RefreshToken string `json:"refreshToken"`
}

// expressOK answers 200 with data.
func expressOK(w http.ResponseWriter, data any, msg string) {
	writeJSON(w, http.StatusOK, expressEnvelope{StatusCode: http.StatusOK, Data: data, Message: msg, Success: true})
}

// expressFail answers an error envelope; a 401 carries no WWW-Authenticate.
func expressFail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, expressEnvelope{StatusCode: status, Message: msg, Success: false})
}

// expressUser returns the Express API user object of user.
func expressUser(user string) *ExpressUser {
	id := sha256.Sum256([]byte(user))
	return &ExpressUser{ID: hex.EncodeToString(id[:12]), Username: user, Email: user + "@example.com", FullName: user}
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

// readExpressBody decodes a JSON (or form-encoded) body. An empty body is no
// error. On failure it answers and returns false.
func readExpressBody(w http.ResponseWriter, r *http.Request) (expressBody, bool) {
	var b expressBody
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			if tooLarge(err) {
				expressFail(w, http.StatusRequestEntityTooLarge, "request body too large")
			} else {
				expressFail(w, http.StatusBadRequest, "malformed form body")
			}
			return b, false
		}
		f := r.PostForm
		b = expressBody{Username: f.Get("username"), Email: f.Get("email"), Password: f.Get("password"), RefreshToken: f.Get("refreshToken")}
	} else {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			if tooLarge(err) {
				expressFail(w, http.StatusRequestEntityTooLarge, "request body too large")
			} else {
				expressFail(w, http.StatusBadRequest, "reading body failed")
			}
			return b, false
		}
		if len(data) > 0 {
			if err := json.Unmarshal(data, &b); err != nil {
				expressFail(w, http.StatusBadRequest, "malformed JSON body")
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
	expressFail(w, http.StatusMethodNotAllowed, "method not allowed")
	return false
}

// setExpressCookies sets the accessToken and refreshToken cookies: HttpOnly,
// Path=/, SameSite=Lax, session cookies, not Secure (loopback http).
func setExpressCookies(w http.ResponseWriter, access, refresh string) {
	http.SetCookie(w, &http.Cookie{Name: cookieAccess, Value: access, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.SetCookie(w, &http.Cookie{Name: cookieRefresh, Value: refresh, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// clearExpressCookies expires both cookies.
func clearExpressCookies(w http.ResponseWriter) {
	for _, name := range []string{cookieAccess, cookieRefresh} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
}

// handleExpressLogin serves PathExpressLogin: {"username" or "email", "password"}.
func (s *Server) handleExpressLogin(w http.ResponseWriter, r *http.Request) {
	if !allowPost(w, r) {
		return
	}
	b, ok := readExpressBody(w, r)
	if !ok {
		return
	}
	id := b.Username
	if id == "" {
		id = b.Email
	}
	if id == "" {
		expressFail(w, http.StatusBadRequest, "username or email is required")
		return
	}
	user, found := s.lookupUser(id)
	if !found {
		expressFail(w, http.StatusNotFound, "User does not exist")
		return
	}
	if !s.checkPassword(user, b.Password) {
		expressFail(w, http.StatusUnauthorized, "Invalid user credentials")
		return
	}
	sess := s.login(user, "", "")
	access, _ := s.mintAccess(sess.user, sess.scope, sess.sid)
	setExpressCookies(w, access, sess.refresh)
	expressOK(w, expressTokens{User: expressUser(user), AccessToken: access, RefreshToken: sess.refresh}, "User logged in successfully")
}

// handleExpressRefresh serves PathExpressRefresh: the refresh token comes from the
// refreshToken cookie, else from the JSON body field refreshToken.
func (s *Server) handleExpressRefresh(w http.ResponseWriter, r *http.Request) {
	if !allowPost(w, r) {
		return
	}
	s.counters.refreshes.Add(1)
	fail := func(status int, msg string) {
		s.counters.refreshFailures.Add(1)
		expressFail(w, status, msg)
	}
	b, ok := readExpressBody(w, r)
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
	sess, err := s.rotate(rt, "", "", "")
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
	setExpressCookies(w, access, sess.refresh)
	expressOK(w, expressTokens{AccessToken: access, RefreshToken: sess.refresh}, "Access token refreshed")
}

// handleExpressLogout serves PathExpressLogout: it revokes the family of the refresh token
// (cookie or body) or, failing that, of the access token (cookie or Bearer),
// and clears both cookies.
func (s *Server) handleExpressLogout(w http.ResponseWriter, r *http.Request) {
	if !allowPost(w, r) {
		return
	}
	b, ok := readExpressBody(w, r)
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
		expressFail(w, http.StatusUnauthorized, "Unauthorized request")
		return
	}
	clearExpressCookies(w)
	expressOK(w, struct{}{}, "User logged out")
}

// handleExpressCurrentUser serves PathExpressCurrentUser: the accessToken cookie, else
// Authorization: Bearer.
func (s *Server) handleExpressCurrentUser(w http.ResponseWriter, r *http.Request) {
	if !allowGet(w, r) {
		return
	}
	c, err := s.accessToken(r, true)
	if err != nil {
		msg := "Invalid access token"
		if errors.Is(err, errNoToken) {
			msg = "Unauthorized request"
		}
		expressFail(w, http.StatusUnauthorized, msg)
		return
	}
	expressOK(w, expressUser(c.Subject), "User fetched successfully")
}
