// Package transport provides an [net/http.RoundTripper] that attaches an
// access token to every request, and heals a 401 answer: it asks its Source
// for a new token (one refresh shared by every request that saw the 401) and
// replays the request once, body and all.
//
// The token lifecycle (caching, expiry, single-flight refresh, persistence)
// lives in the refresher package; a [Transport] only asks.
//
// # Where the token goes
//
// A Transport never sends the token where it was not meant to go: not to a
// redirect that left the original host or went from https to http, not to a
// host outside the list given to [WithAllowedHosts], and not over plain http
// to a host that is not loopback ([ErrInsecureHTTP], unless
// [WithInsecureHTTP]). Nothing it logs, and no error it returns, contains a
// token. SECURITY.md at the repository root has the threat model.
package transport
