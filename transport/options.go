package transport

import (
	"context"
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
	return func(t *Transport) { t.base = rt }
}

// WithRefreshOn sets the response status codes that trigger a refresh and a
// replay (default: 401 only). A 403 means the token is valid but lacks a
// permission, which a refresh does not give: list it only for a server that
// answers 403 to an expired token.
func WithRefreshOn(codes ...int) Option {
	return func(t *Transport) { t.refreshOn = append([]int(nil), codes...) }
}

// WithReplayLimit sets the largest body, in bytes, that is buffered for a
// replay when the request has no GetBody (default [DefaultReplayLimit]). A
// larger body is sent once; if it is answered with 401 the token is
// refreshed for the next request and the 401 is returned.
func WithReplayLimit(n int64) Option {
	return func(t *Transport) { t.replayLimit = max(n, 0) }
}

// WithLogger sets a logger for refreshes and replays. Nothing it logs
// contains a token. Default: no logging.
func WithLogger(l *slog.Logger) Option {
	return func(t *Transport) { t.log = l }
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
