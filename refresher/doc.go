// Package refresher owns an OAuth 2.0 token pair on behalf of an HTTP client:
// it caches the access token, refreshes it before it expires (proactive) or
// after a server rejected it (reactive), and makes sure that concurrent
// callers share one refresh call, so that a rotating refresh token is never
// presented twice.
//
// A [Source] is built from an [Endpoint] (the call that exchanges a refresh
// token for a new pair) and optionally a [Store] (where rotated tokens are
// persisted before any request uses them). The transport package turns a
// Source into an [net/http.RoundTripper].
//
// Errors are classified: [ErrReauthRequired] means the session is over and
// the user must log in again; a [*RefreshError] whose Temporary method
// reports true is worth retrying later.
package refresher
