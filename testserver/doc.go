// Package testserver is an authorization server and resource server for
// testing HTTP clients that use short-lived access tokens and rotating
// refresh tokens.
//
// It runs in-process in Go tests ([NewTest]), in-process in programs ([New],
// [Server.Start], [Server.Close]) or standalone (the command in
// testserver/cmd/testserver), and plays the two contracts of real backends on
// one token store:
//
//   - The OAuth2 API, RFC 6749: POST [PathToken], form-encoded, with
//     grant_type=password (username, password, scope) or
//     grant_type=refresh_token; clients authenticate with HTTP Basic or the
//     client_id and client_secret form fields. Answers are JSON
//     {access_token, token_type, expires_in, refresh_token, scope} with
//     Cache-Control: no-store, errors are §5.2 {error, error_description}.
//     [PathRevoke] is the RFC 7009 revocation endpoint. The resources
//     [PathMe], [PathEcho] and [PathAdmin] take the token from
//     Authorization: Bearer (else from the accessToken cookie) and answer
//     401 with WWW-Authenticate: Bearer error="invalid_token" to an invalid
//     or expired token, 401 with a bare Bearer realm="testserver" challenge
//     to a missing one, and 403 insufficient_scope to a token without the
//     scope "admin" on [PathAdmin].
//
//   - The Express API, the JSON and cookie API common to Node.js/Express
//     backends: POST [PathExpressLogin] with JSON {"username" or "email",
//     "password"}, POST [PathExpressRefresh] with the refresh token in the
//     refreshToken cookie or the JSON field refreshToken, POST
//     [PathExpressLogout], GET [PathExpressCurrentUser].
//     Answers are {"statusCode", "data", "message", "success"} envelopes;
//     login and refresh also set HttpOnly cookies accessToken and
//     refreshToken and carry no expires_in (the JWT "exp" claim is the only
//     expiry). Failures are 401 without WWW-Authenticate.
//
// Access tokens are HS256 JWTs with the claims sub, exp, iat, jti, scope and
// sid (the refresh token family). Refresh tokens are opaque, 32 random bytes
// in base64url, kept only as SHA-256 hashes. Every refresh rotates the
// refresh token; presenting a rotated one is treated as theft (RFC 9700
// §4.14.2): the whole family is revoked, including its current token. With
// [Config.ReuseGrace], the immediate parent of the current token is accepted
// once within the grace interval, as in Auth0's reuse interval. Families
// expire after [Config.RefreshIdle] without use and [Config.RefreshAbsolute]
// after login, by the server's [Clock], which tests move with
// [Clock.Advance].
//
// Tests drive the sharp edges with fault injection ([Server.FailRefreshes],
// [Server.DelayRefreshes], [Server.HoldRefreshes], [Server.DropAfterRotate],
// [Server.RevokeAll], [Server.ExpireAccessTokens]) and observe with
// [Server.Stats] and [Server.Requests], a request log that names the kind of
// credential presented, never its value. [Server.Client] returns a client
// whose connections [Server.Close] closes.
//
// The same knobs are reachable over HTTP, for a server in another process:
// the control API under [PathControl] (POST /admin/expire-access-tokens,
// /admin/fail-refreshes, /admin/delay-refreshes, /admin/hold-refreshes,
// /admin/release-refreshes, /admin/drop-after-rotate, /admin/revoke-all,
// /admin/clock/advance; GET /admin/stats, /admin/log), with JSON bodies and
// answers, and GET /admin/ is a live page of the sessions, their rotations
// and reuse detections, the recent requests, and buttons for the faults.
// [Config.AdminToken] protects both.
//
// Defaults: user [DemoUser] with password [DemoPassword], public client
// [PublicClientID], confidential client [ConfidentialClientID] with secret
// [ConfidentialClientSecret], access tokens valid 10 minutes, request bodies
// capped at 64 KiB (413 beyond).
package testserver
