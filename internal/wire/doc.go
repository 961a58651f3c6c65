// Package wire is the refresh call as it goes over the wire, shared by the
// endpoints of package refresher: the retrying HTTP client and its fence
// check, the bounded read of an answer, its classification (session over,
// client misconfigured, blocked, transient), its parsing into a token, the
// inference of the token's expiry, and the redaction of every secret the
// request carried from anything derived from the answer.
//
// Package refresher converts a [Failure] into its exported RefreshError
// (the two have the same fields) and re-exports the sentinels.
package wire
