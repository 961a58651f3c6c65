package testserver

import (
	"crypto/rand"
	"maps"
	"slices"
	"time"
)

// Demo credentials known to a server built from a zero [Config].
const (
	// DemoUser is the user name of the default account.
	DemoUser = "demo"
	// DemoPassword is the password of [DemoUser].
	DemoPassword = "demo"
	// PublicClientID identifies the default public client, which
	// authenticates with its client_id alone.
	PublicClientID = "demo-client"
	// ConfidentialClientID identifies the default confidential client,
	// which must present [ConfidentialClientSecret].
	ConfidentialClientID = "demo-confidential"
	// ConfidentialClientSecret is the secret of [ConfidentialClientID].
	ConfidentialClientSecret = "demo-secret"
)

// Default values applied by [New] to the zero fields of a [Config].
const (
	DefaultAccessTTL       = 10 * time.Minute
	DefaultRefreshIdle     = 24 * time.Hour
	DefaultRefreshAbsolute = 30 * 24 * time.Hour
	DefaultMaxBodyBytes    = 64 << 10
)

// Config configures a [Server]. The zero Config is ready to use: every zero
// field takes the default given in its comment.
type Config struct {
	// AccessTTL is the lifetime of an access token (the JWT "exp" claim and
	// the "expires_in" of the OAuth2 API). Zero means [DefaultAccessTTL].
	AccessTTL time.Duration

	// RefreshIdle is how long a refresh token family survives without being
	// used (since the login or the last successful refresh). Zero means
	// [DefaultRefreshIdle]; a negative value disables idle expiry.
	RefreshIdle time.Duration

	// RefreshAbsolute is how long a refresh token family survives since the
	// login, however often it is used. Zero means [DefaultRefreshAbsolute];
	// a negative value disables absolute expiry.
	RefreshAbsolute time.Duration

	// ReuseGrace is the Auth0-style reuse interval. Zero (the default) means
	// any presentation of a rotated refresh token revokes its whole family.
	// Otherwise the immediate parent of the family's current token,
	// presented within ReuseGrace of its rotation, is accepted once: it gets
	// a fresh pair in the same family, and that new refresh token becomes
	// the family's current one. The child handed out by the first exchange
	// is superseded, so presenting it afterwards is a reuse, as is a second
	// presentation of the parent or of any older ancestor. This serves a
	// client that lost the answer to its refresh and retries with the token
	// it still holds.
	ReuseGrace time.Duration

	// Clock measures every lifetime. If nil, the server uses a real-time
	// clock, still reachable through [Server.Clock].
	Clock *Clock

	// Users maps user names to passwords. If nil, the only user is
	// [DemoUser] with [DemoPassword]. For the Express API, each user also has the
	// e-mail address name@example.com.
	Users map[string]string

	// Clients maps OAuth2 client IDs to client secrets; an empty secret
	// makes a public client. If nil, the clients are [PublicClientID]
	// (public) and [ConfidentialClientID] with [ConfidentialClientSecret].
	Clients map[string]string

	// SigningKey is the HS256 key of the access tokens. If empty, a random
	// 32-byte key is generated for each server.
	SigningKey []byte

	// AdminToken, if not empty, protects the control API and its live page
	// under [PathControl]: every request there must carry
	// "Authorization: Bearer AdminToken" (or, for a browser, HTTP Basic
	// with AdminToken as the password) or is answered 401. Empty (the
	// default) leaves the control API open, as suits a server on loopback.
	AdminToken string

	// DPoP requires DPoP proofs (RFC 9449) on the OAuth2 API: every token
	// request must carry a valid proof (signature, typ, alg, htm, htu, iat
	// within a minute, a jti never seen, the server's current nonce), the
	// tokens it issues are bound to the proof's key (token_type DPoP, the
	// access token's cnf.jkt, the refresh token family's key), a bound
	// refresh token presented with another key is refused (invalid_grant),
	// and a bound access token is accepted only with the DPoP scheme and a
	// proof of its key that hashes it (ath). Every answer of the token
	// endpoint and of the resources carries the nonce (DPoP-Nonce); a proof
	// without it, or with a stale one, is answered use_dpop_nonce (400 at
	// the token endpoint, 401 at the resources). The nonce rotates every 5
	// minutes of the server's clock, and on [Server.ExpireDPoPNonces]. A
	// family issued without a proof (by [Server.IssueToken]) is bound by
	// its first refresh with one. Unbound tokens stay bearer tokens, and the
	// Express API is unchanged.
	DPoP bool

	// MaxBodyBytes caps every request body; a larger body is answered with
	// 413. Zero means [DefaultMaxBodyBytes] (64 KiB); a negative value
	// removes the cap.
	MaxBodyBytes int64
}

// withDefaults returns a copy of c with defaults applied and maps and slices
// copied, so that the caller may change c afterwards.
func (c Config) withDefaults() Config {
	if c.AccessTTL <= 0 {
		c.AccessTTL = DefaultAccessTTL
	}
	if c.RefreshIdle == 0 {
		c.RefreshIdle = DefaultRefreshIdle
	}
	if c.RefreshAbsolute == 0 {
		c.RefreshAbsolute = DefaultRefreshAbsolute
	}
	if c.ReuseGrace < 0 {
		c.ReuseGrace = 0
	}
	if c.Clock == nil {
		c.Clock = NewRealClock()
	}
	if c.Users == nil {
		c.Users = map[string]string{DemoUser: DemoPassword}
	} else {
		c.Users = maps.Clone(c.Users)
	}
	if c.Clients == nil {
		c.Clients = map[string]string{
			PublicClientID:       "",
			ConfidentialClientID: ConfidentialClientSecret,
		}
	} else {
		c.Clients = maps.Clone(c.Clients)
	}
	if len(c.SigningKey) == 0 {
		c.SigningKey = make([]byte, 32)
		rand.Read(c.SigningKey)
	} else {
		c.SigningKey = slices.Clone(c.SigningKey)
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	return c
}
