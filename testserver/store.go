package testserver

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// family is the chain of refresh tokens descending from one login. At any
// time it has exactly one current token; every other token of the family
// has been rotated (or superseded) and presenting it is a reuse.
type family struct {
	id      string
	user    string
	scope   string         // scope granted at login
	client  string         // client_id of the login; "" for the Express API and IssueToken
	login   time.Time      // start of the absolute lifetime
	lastUse time.Time      // start of the idle lifetime: login or last rotation
	current *refreshRecord // the only token that rotates normally
	tokens  int            // refresh tokens issued in the family
	revoked string         // why the family was revoked; "" while it lives
	jkt     string         // thumbprint of the DPoP key the family is bound to; "" if unbound
}

// refreshRecord is what the server keeps of one refresh token: its hash,
// never the token.
type refreshRecord struct {
	hash    tokenHash
	fam     *family
	parent  *refreshRecord // nil for the token issued at login
	gen     int            // 1 for the token issued at login, then 2, 3...
	issued  time.Time
	lastUse time.Time // last time the token was presented
	rotated time.Time // when it stopped being current; zero while current
	graced  bool      // the reuse grace was spent on this token
}

// grantError is a refused refresh or password grant. code is the RFC 6749
// §5.2 error code.
type grantError struct {
	code  string // "invalid_grant" or "invalid_scope"
	desc  string
	reuse bool // a rotated token was presented: reuse detection
}

func (e *grantError) Error() string { return "testserver: " + e.code + ": " + e.desc }

var (
	errUnknownRefresh = &grantError{code: "invalid_grant", desc: "unknown refresh token"}
	errRevokedRefresh = &grantError{code: "invalid_grant", desc: "the refresh token was revoked"}
	errExpiredRefresh = &grantError{code: "invalid_grant", desc: "the refresh token expired"}
	errReusedRefresh  = &grantError{code: "invalid_grant", desc: "the refresh token was already used; its family is revoked", reuse: true}
	errWrongClient    = &grantError{code: "invalid_grant", desc: "the refresh token was issued to another client"}
	errScopeTooWide   = &grantError{code: "invalid_scope", desc: "the requested scope exceeds the granted scope"}
	errWrongDPoPKey   = &grantError{code: "invalid_grant", desc: "the refresh token is bound to another DPoP key"}
)

// session is what a successful login or rotation hands out.
type session struct {
	refresh string // the new refresh token, in clear, never stored
	user    string
	scope   string
	sid     string // family ID
	jkt     string // DPoP key thumbprint the tokens are bound to; "" for bearer tokens
}

// Reasons a family is revoked, as [familyInfo.Revoked] reports them.
const (
	revokedByReuse     = "reuse"
	revokedByLogout    = "revoked"
	revokedByRevokeAll = "revoke-all"
)

// store holds the refresh token families.
type store struct {
	emit func(event) // called under mu for each change of a family; may be nil

	mu       sync.Mutex // guards the fields below and every family and record
	tokens   map[tokenHash]*refreshRecord
	families map[string]*family
}

// emitLocked reports a change of fam.
func (st *store) emitLocked(kind string, fam *family, gen int, detail string) {
	if st.emit != nil {
		st.emit(event{Kind: kind, Family: fam.id, User: fam.user, Gen: gen, Detail: detail})
	}
}

func newStore() *store {
	return &store{
		tokens:   make(map[tokenHash]*refreshRecord),
		families: make(map[string]*family),
	}
}

// login starts a new family for user and returns its first refresh token.
func (st *store) login(user, scope, client string, now time.Time) session {
	st.mu.Lock()
	defer st.mu.Unlock()
	fam := &family{id: randomID(), user: user, scope: scope, client: client, login: now, lastUse: now}
	st.families[fam.id] = fam
	tok := st.issueLocked(fam, nil, now)
	st.emitLocked(eventLogin, fam, 1, "login of "+user)
	return session{refresh: tok, user: user, scope: scope, sid: fam.id}
}

// issueLocked adds a new current token to fam, child of parent.
func (st *store) issueLocked(fam *family, parent *refreshRecord, now time.Time) string {
	tok, h := newRefreshToken()
	rec := &refreshRecord{hash: h, fam: fam, parent: parent, gen: fam.tokens + 1, issued: now, lastUse: now}
	st.tokens[h] = rec
	fam.current = rec
	fam.tokens++
	return tok
}

// lifetimes are the limits a rotation checks.
type lifetimes struct {
	idle, absolute, grace time.Duration
}

// rotate exchanges the refresh token tok for a new one.
//
// client is the authenticated client_id of the OAuth2 API ("" for the Express API):
// a family started by a client refuses other clients. scope, if not empty,
// narrows the scope of the new access token and must be a subset of the
// granted scope; it does not change the family's grant.
//
// Presenting the family's current token rotates it: the new token becomes
// current and the old one is marked rotated. Presenting a rotated token is a
// reuse, which revokes the family (RFC 9700 §4.14.2), with one exception
// when lt.grace > 0: the immediate parent of the current token, presented
// within lt.grace of its rotation, is accepted once. It then gets a new
// child, which becomes the family's current token; the child issued by the
// first exchange is superseded, so presenting it later is itself a reuse.
// This serves a client that lost the answer to its refresh and retries with
// the token it still holds.
//
// jkt is the thumbprint of the DPoP key that signed the request's proof, ""
// without one. A family bound to a key refuses any other (or none); an
// unbound family presented with a proof is bound to its key from then on.
func (st *store) rotate(tok, client, scope, jkt string, now time.Time, lt lifetimes) (session, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.tokens[hashToken(tok)]
	if rec == nil {
		return session{}, errUnknownRefresh
	}
	rec.lastUse = now
	fam := rec.fam
	switch {
	case fam.revoked != "":
		return session{}, errRevokedRefresh
	case lt.absolute > 0 && !now.Before(fam.login.Add(lt.absolute)),
		lt.idle > 0 && !now.Before(fam.lastUse.Add(lt.idle)):
		return session{}, errExpiredRefresh
	case client != "" && fam.client != "" && client != fam.client:
		return session{}, errWrongClient
	case scope != "" && !scopeSubset(scope, fam.scope):
		return session{}, errScopeTooWide
	case fam.jkt != "" && jkt != fam.jkt:
		return session{}, errWrongDPoPKey
	}
	if rec != fam.current {
		cur := fam.current
		if lt.grace <= 0 || cur.parent != rec || rec.graced || now.Sub(rec.rotated) > lt.grace {
			fam.revoked = revokedByReuse
			st.emitLocked(eventReuse, fam, rec.gen, fmt.Sprintf("token %d presented again after token %d was issued: family revoked", rec.gen, cur.gen))
			return session{}, errReusedRefresh
		}
		rec.graced = true
		cur.rotated = now // superseded by the graced answer
	} else {
		rec.rotated = now
	}
	fam.lastUse = now
	if fam.jkt == "" {
		fam.jkt = jkt
	}
	if scope == "" {
		scope = fam.scope
	}
	newTok := st.issueLocked(fam, rec, now)
	if rec.graced {
		st.emitLocked(eventGrace, fam, rec.gen, fmt.Sprintf("token %d accepted again within the reuse grace: token %d issued", rec.gen, fam.current.gen))
	} else {
		st.emitLocked(eventRotation, fam, rec.gen, fmt.Sprintf("token %d rotated to token %d", rec.gen, fam.current.gen))
	}
	return session{refresh: newTok, user: fam.user, scope: scope, sid: fam.id, jkt: fam.jkt}, nil
}

// revokeToken revokes the family of the refresh token tok. It reports
// whether tok was known.
func (st *store) revokeToken(tok string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.tokens[hashToken(tok)]
	if rec == nil {
		return false
	}
	st.revokeLocked(rec.fam, revokedByLogout)
	return true
}

// revokeFamily revokes the family with ID sid, if any.
func (st *store) revokeFamily(sid string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if fam := st.families[sid]; fam != nil {
		st.revokeLocked(fam, revokedByLogout)
	}
}

// revokeAll revokes every family.
func (st *store) revokeAll() {
	st.mu.Lock()
	defer st.mu.Unlock()
	n := 0
	for _, fam := range st.families {
		if fam.revoked == "" {
			fam.revoked = revokedByRevokeAll
			n++
		}
	}
	if st.emit != nil {
		st.emit(event{Kind: eventRevokeAll, Detail: fmt.Sprintf("%d families revoked", n)})
	}
}

// revokeLocked revokes fam, if it still lives, for the reason why.
func (st *store) revokeLocked(fam *family, why string) {
	if fam.revoked != "" {
		return
	}
	fam.revoked = why
	st.emitLocked(eventRevoke, fam, fam.current.gen, "family revoked by logout or revocation")
}

// familyInfo describes a family for the control API. It holds no token.
type familyInfo struct {
	ID         string    `json:"id"`
	User       string    `json:"user"`
	Client     string    `json:"client,omitempty"`
	Scope      string    `json:"scope,omitempty"`
	Login      time.Time `json:"login"`
	LastUse    time.Time `json:"last_use"`
	Generation int       `json:"generation"` // of the current refresh token
	Revoked    string    `json:"revoked,omitempty"`
}

// snapshot returns up to n families, the most recently used first.
func (st *store) snapshot(n int) []familyInfo {
	st.mu.Lock()
	out := make([]familyInfo, 0, len(st.families))
	for _, f := range st.families {
		out = append(out, familyInfo{
			ID: f.id, User: f.user, Client: f.client, Scope: f.scope,
			Login: f.login, LastUse: f.lastUse, Generation: f.current.gen, Revoked: f.revoked,
		})
	}
	st.mu.Unlock()
	slices.SortFunc(out, func(a, b familyInfo) int {
		if c := b.LastUse.Compare(a.LastUse); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out[:min(n, len(out))]
}

// scopeSubset reports whether every scope in the space-separated list want
// appears in have.
func scopeSubset(want, have string) bool {
	granted := strings.Fields(have)
	for _, s := range strings.Fields(want) {
		if !slices.Contains(granted, s) {
			return false
		}
	}
	return true
}

// hasScope reports whether the space-separated list scopes contains s.
func hasScope(scopes, s string) bool {
	return slices.Contains(strings.Fields(scopes), s)
}
