// Package fence carries, in a refresh's context, the check that the caller
// still holds the lock that entitles it to present a refresh token. The
// refresh endpoints run it right before each attempt writes a request, so a
// process whose lock lapsed (a lease that expired while it was paused) aborts
// before anything reaches the server.
package fence

import "context"

type key struct{}

// With returns a copy of ctx that carries check.
func With(ctx context.Context, check func(context.Context) error) context.Context {
	return context.WithValue(ctx, key{}, check)
}

// Check runs the check ctx carries; it returns nil when there is none.
func Check(ctx context.Context) error {
	if check, ok := ctx.Value(key{}).(func(context.Context) error); ok && check != nil {
		return check(ctx)
	}
	return nil
}
