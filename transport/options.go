package transport

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
)

// DefaultReplayLimit is the largest request body, in bytes, that a Transport
// buffers in order to replay it when the body cannot be obtained again
// through Request.GetBody.
const DefaultReplayLimit = 1 << 20

// Option configures a [Transport].
type Option func(*Transport)

// WithBase sets the RoundTripper that sends the requests. If nil,
// [net/http.DefaultTransport] is used.
func WithBase(rt http.RoundTripper) Option {
	return func(t *Transport) { t.Base = rt }
}

// WithRefreshOn sets the response status codes that trigger a refresh and a
// replay (default: 401 only), subject to the WWW-Authenticate rules of
// [Transport]. A 403 means the token is valid but lacks a permission, which
// a refresh does not give: listing 403 makes every genuine permission denial
// cost a refresh-token rotation and a replay. For a server that answers 403
// to an expired token on some of its paths, use [WithRefreshWhen] instead.
func WithRefreshOn(codes ...int) Option {
	return func(t *Transport) { t.refreshOn = append([]int(nil), codes...) }
}

// WithRefreshWhen sets the predicate that decides whether an answer means
// the token was rejected, so that a refresh and a replay may heal it. It
// replaces the default rule ([WithRefreshOn]'s status list, then the
// WWW-Authenticate rules of [Transport]), which [TokenRejected] implements
// for the default list. The predicate sees the answer before its body is
// read (it must not read it) and resp.Request, the request as sent, with
// its token. It must be safe for concurrent use.
//
// Zitadel's userinfo endpoint, for one, answers 403 to an expired access
// token. Refresh on that answer only, and on the answers the default rule
// accepts; a 403 anywhere else stays a permission denial:
//
//	transport.WithRefreshWhen(func(resp *http.Response) bool {
//		if resp.StatusCode == http.StatusForbidden && resp.Request.URL.Path == "/oidc/v1/userinfo" {
//			return true // an expired token, in this server's words
//		}
//		return transport.TokenRejected(resp)
//	})
func WithRefreshWhen(rejected func(resp *http.Response) bool) Option {
	return func(t *Transport) { t.refreshWhen = rejected }
}

// WithReplayLimit sets the largest body, in bytes, of which a copy is kept
// for a replay when the request has no GetBody (default
// [DefaultReplayLimit]). The body is sent as it is read, never read ahead;
// a larger body is sent once, and if its answer rejects the token, the
// token is refreshed for the next request and the answer is returned.
func WithReplayLimit(n int64) Option {
	return func(t *Transport) { t.replayLimit = max(n, 0) }
}

// WithLogger sets a logger for refreshes and replays. Nothing it logs
// contains a token. Default: no logging.
func WithLogger(l *slog.Logger) Option {
	return func(t *Transport) { t.log = l }
}

// WithAllowedHosts bounds where the token goes: when set, a request carries
// the token only if its URL matches one of hosts. An entry is a host name or
// IP address ("api.example.com", "10.0.0.7", "::1"), which matches any scheme
// and port; a host and port ("api.example.com:8443"); or an origin
// ("https://api.example.com", "http://127.0.0.1:8080"), which matches that
// scheme, host and port (the scheme's default port when none is given).
// Host names match exactly, without case; subdomains are not included. A
// request to any other host is sent as it is, without a token and without a
// refresh on 401, like a redirect to another host. Calling WithAllowedHosts
// with no hosts sends no token anywhere. Default: every host, subject to the
// redirect and plain-http rules.
//
// WithAllowedHosts panics if an entry is not a host or an origin (an origin
// with a path, a query or user information is not).
func WithAllowedHosts(hosts ...string) Option {
	list := make([]allowed, 0, len(hosts))
	for _, h := range hosts {
		a, err := parseAllowed(h)
		if err != nil {
			panic(fmt.Sprintf("transport: WithAllowedHosts: %q is not a host or an origin: %v", h, err))
		}
		list = append(list, a)
	}
	return func(t *Transport) { t.allowed = list }
}

// WithInsecureHTTP allows the token to be sent over plain http to any host.
// Without it, a request that would carry a token over http to a host other
// than a loopback one (localhost, 127.0.0.0/8, ::1) fails with
// [ErrInsecureHTTP] and is not sent. Anyone on the network path can read a
// token sent over plain http: use this only on a network you trust.
func WithInsecureHTTP() Option {
	return func(t *Transport) { t.insecureHTTP = true }
}

type skipKey struct{}

// SkipAuth returns a context that makes a Transport send the request as it
// is: no token attached, no refresh on 401. Use it for requests that must
// not carry the session's token, such as a login request.
//
//	req, _ := http.NewRequestWithContext(transport.SkipAuth(ctx), "POST", loginURL, body)
func SkipAuth(ctx context.Context) context.Context {
	return context.WithValue(ctx, skipKey{}, true)
}

func skipped(ctx context.Context) bool {
	v, _ := ctx.Value(skipKey{}).(bool)
	return v
}
