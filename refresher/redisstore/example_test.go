package redisstore_test

import (
	"context"
	"fmt"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/redisstore"
)

// Two replicas share one account's rotating refresh token through Redis.
// The first refreshes it; the second, still holding the old token, takes
// the rotated one from Redis instead of presenting the old refresh token
// (which the server would take for theft). The example runs against an
// in-process Redis (miniredis); the package's RealRedis tests run the same
// calls against a real redis-server.
func ExampleNew() {
	mr, err := miniredis.Run() // in production: your Redis
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rc.Close()
	ctx := context.Background()

	calls := 0
	ep := refresher.EndpointFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		calls++
		return &oauth2.Token{AccessToken: fmt.Sprintf("access-%d", calls), RefreshToken: fmt.Sprintf("refresh-%d", calls)}, nil
	})
	login := &oauth2.Token{AccessToken: "access-0", RefreshToken: "refresh-0"}
	replicaA := refresher.NewSource(ep, refresher.WithToken(login), refresher.WithStore(redisstore.New(rc, "tokens:account-42")))
	replicaB := refresher.NewSource(ep, refresher.WithStore(redisstore.New(rc, "tokens:account-42")))

	old, _ := replicaA.Token(ctx) // saved to Redis before its first use
	fromRedis, _ := replicaB.Token(ctx)
	fmt.Println("A:", old.AccessToken, "B:", fromRedis.AccessToken)

	a, _ := replicaA.Refresh(ctx, old) // both got a 401 for access-0
	b, _ := replicaB.Refresh(ctx, old)
	fmt.Println("A:", a.AccessToken, "B:", b.AccessToken, "refresh calls:", calls)
	// Output:
	// A: access-0 B: access-0
	// A: access-1 B: access-1 refresh calls: 1
}
