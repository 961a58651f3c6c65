// Package transport provides an [net/http.RoundTripper] that attaches an
// access token to every request, and heals a 401 answer: it asks its Source
// for a new token (one refresh shared by every request that saw the 401) and
// replays the request once, body and all.
//
// The token lifecycle (caching, expiry, single-flight refresh, persistence)
// lives in the refresher package; a [Transport] only asks.
package transport
