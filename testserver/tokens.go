package testserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer is the "iss" claim of every access token.
const Issuer = "testserver"

// AccessClaims are the claims of an access token: an HS256 JWT signed with
// [Config.SigningKey].
type AccessClaims struct {
	// Scope is the space-separated list of granted scopes.
	Scope string `json:"scope,omitempty"`
	// SessionID identifies the refresh token family the token was issued
	// with.
	SessionID string `json:"sid,omitempty"`
	// Epoch is the server's access token epoch at issue time;
	// [Server.ExpireAccessTokens] starts a new epoch and refuses older ones.
	Epoch uint64 `json:"epoch"`
	// Confirmation binds a DPoP-bound token to its key (RFC 9449 §6.1);
	// nil for a bearer token.
	Confirmation *Confirmation `json:"cnf,omitempty"`
	jwt.RegisteredClaims
}

// errAccessExpired and errAccessInvalid are the two ways an access token
// fails; both are answered with 401 invalid_token.
var (
	errAccessExpired = errors.New("the access token expired")
	errAccessInvalid = errors.New("the access token is invalid")
	errAccessRevoked = errors.New("the access token was revoked")
)

// mintAccess signs a new access token for user. It returns the token and its
// expiry (the "exp" claim).
func (s *Server) mintAccess(user, scope, sid string) (string, time.Time) {
	return s.mintBoundAccess(user, scope, sid, "")
}

// mintBoundAccess is mintAccess for a token bound to the DPoP key of
// thumbprint jkt, or a bearer token if jkt is "".
func (s *Server) mintBoundAccess(user, scope, sid, jkt string) (string, time.Time) {
	now := s.clock.Now()
	// "exp" has whole seconds: round up, so that a token lives at least
	// AccessTTL (truncating made a 1 s token live anywhere from 0 to 1 s,
	// and a client told expires_in=1 meet an expired token at once).
	exp := jwt.NewNumericDate(ceilSecond(now.Add(s.cfg.AccessTTL)))
	claims := AccessClaims{
		Scope:     scope,
		SessionID: sid,
		Epoch:     s.epoch.Load(),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   user,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: exp,
			ID:        randomID(),
		},
	}
	if jkt != "" {
		claims.Confirmation = &Confirmation{JKT: jkt}
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.cfg.SigningKey)
	if err != nil {
		// HS256 with a []byte key cannot fail.
		panic(fmt.Sprintf("testserver: signing access token: %v", err))
	}
	return tok, exp.Time
}

// ceilSecond rounds t up to a whole second.
func ceilSecond(t time.Time) time.Time {
	if u := t.Truncate(time.Second); !u.Equal(t) {
		return u.Add(time.Second)
	}
	return t
}

// ParseAccessToken validates raw as an access token of this server (signature,
// issuer, expiry by the server clock, epoch, revocation) and returns its
// claims.
func (s *Server) ParseAccessToken(raw string) (*AccessClaims, error) {
	var claims AccessClaims
	_, err := jwt.ParseWithClaims(raw, &claims,
		func(*jwt.Token) (any, error) { return s.cfg.SigningKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(s.clock.Now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(Issuer),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, errAccessExpired
	case err != nil:
		return nil, errAccessInvalid
	case claims.Subject == "":
		return nil, errAccessInvalid
	case claims.Epoch != s.epoch.Load():
		return nil, errAccessExpired
	case s.accessRevoked(claims.ID):
		return nil, errAccessRevoked
	}
	return &claims, nil
}

// accessRevoked reports whether the access token with ID jti was revoked
// through the revocation endpoint.
func (s *Server) accessRevoked(jti string) bool {
	s.revokedMu.Lock()
	defer s.revokedMu.Unlock()
	_, ok := s.revokedJTI[jti]
	return ok
}

// revokeAccess refuses the access token with ID jti from now on.
func (s *Server) revokeAccess(jti string) {
	s.revokedMu.Lock()
	defer s.revokedMu.Unlock()
	s.revokedJTI[jti] = struct{}{}
}

// tokenHash is the SHA-256 of a refresh token: the only form the server keeps.
type tokenHash [sha256.Size]byte

func hashToken(tok string) tokenHash { return sha256.Sum256([]byte(tok)) }

// newRefreshToken returns an opaque refresh token (32 random bytes,
// base64url without padding) and its hash.
func newRefreshToken() (string, tokenHash) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	return tok, hashToken(tok)
}

// randomID returns 16 random bytes in hex, for token and family IDs.
func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
