// Command testserver runs the autorefresh test server standalone: the OAuth2
// API (an RFC 6749 token endpoint), the Express API (the JSON and cookie API
// common to Node.js/Express backends) and protected resources, for trying
// clients against rotating refresh tokens.
//
// Usage:
//
//	testserver [-addr 127.0.0.1:8080] [-access-ttl 10m] [-refresh-idle 24h]
//	           [-refresh-absolute 720h] [-reuse-grace 0s] [-max-body 65536]
//	           [-users demo:demo] [-signing-key KEY]
//	           [-admin-token TOKEN] [-frozen-clock]
//
// It prints its URL on the first line of standard output
// ("testserver listening on http://127.0.0.1:PORT"), then the endpoints, the
// control API and live page (URL/admin/) and the demo credentials, and stops
// gracefully on SIGINT or SIGTERM, exiting 0. Port 0 picks a free port.
//
// -admin-token makes every call of the control API require
// "Authorization: Bearer TOKEN"; -frozen-clock starts the server clock
// frozen at the current time, so that only POST /admin/clock/advance moves
// it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/autorefresh/autorefresh/testserver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command; it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen `address`; port 0 picks a free port")
	accessTTL := fs.Duration("access-ttl", testserver.DefaultAccessTTL, "access token lifetime")
	refreshIdle := fs.Duration("refresh-idle", testserver.DefaultRefreshIdle, "refresh token idle lifetime (negative: none)")
	refreshAbsolute := fs.Duration("refresh-absolute", testserver.DefaultRefreshAbsolute, "refresh token absolute lifetime (negative: none)")
	reuseGrace := fs.Duration("reuse-grace", 0, "reuse interval of a rotated refresh token (0: any reuse revokes the family)")
	maxBody := fs.Int64("max-body", testserver.DefaultMaxBodyBytes, "request body cap in `bytes` (negative: none)")
	users := fs.String("users", testserver.DemoUser+":"+testserver.DemoPassword, "comma-separated `user:password` list")
	signingKey := fs.String("signing-key", "", "HS256 `key` of the access tokens (default: random)")
	adminToken := fs.String("admin-token", "", "require Authorization: Bearer `token` on the control API under /admin/ (default: open)")
	frozenClock := fs.Bool("frozen-clock", false, "start the server clock frozen; move it with POST /admin/clock/advance")
	dpopOn := fs.Bool("dpop", false, "require DPoP proofs (RFC 9449) on the OAuth2 API and bind its tokens to the client's key")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "testserver: unexpected arguments %q\n", fs.Args())
		return 2
	}
	userMap, err := parseUsers(*users)
	if err != nil {
		fmt.Fprintf(stderr, "testserver: -users: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var clock *testserver.Clock
	if *frozenClock {
		clock = testserver.NewClock(time.Now())
	}
	s := testserver.New(testserver.Config{
		Clock:           clock,
		AdminToken:      *adminToken,
		AccessTTL:       *accessTTL,
		RefreshIdle:     *refreshIdle,
		RefreshAbsolute: *refreshAbsolute,
		ReuseGrace:      *reuseGrace,
		Users:           userMap,
		SigningKey:      []byte(*signingKey),
		MaxBodyBytes:    *maxBody,
		DPoP:            *dpopOn,
	})
	if err := s.Start(*addr); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	printBanner(stdout, s.URL(), userMap, *adminToken != "", *frozenClock)

	<-ctx.Done()
	stop()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "testserver: shutdown: %v\n", err)
	}
	s.Close()
	fmt.Fprintln(stdout, "testserver stopped")
	return 0
}

// parseUsers parses "user:password,user2:password2".
func parseUsers(list string) (map[string]string, error) {
	m := make(map[string]string)
	for _, pair := range strings.Split(list, ",") {
		user, pass, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("want user:password, got %q", pair)
		}
		m[user] = pass
	}
	return m, nil
}

func printBanner(w io.Writer, url string, users map[string]string, adminToken, frozen bool) {
	fmt.Fprintf(w, "testserver listening on %s\n", url)
	fmt.Fprintf(w, "  OAuth2 token endpoint:       %s%s\n", url, testserver.PathToken)
	fmt.Fprintf(w, "  OAuth2 revocation:           %s%s\n", url, testserver.PathRevoke)
	fmt.Fprintf(w, "  Express login:               %s%s\n", url, testserver.PathExpressLogin)
	fmt.Fprintf(w, "  Express refresh:             %s%s\n", url, testserver.PathExpressRefresh)
	fmt.Fprintf(w, "  Express logout:              %s%s\n", url, testserver.PathExpressLogout)
	fmt.Fprintf(w, "  resources:                   %s %s %s (scope %q) %s\n",
		testserver.PathMe, testserver.PathEcho, testserver.PathAdmin, testserver.ScopeAdmin, testserver.PathExpressCurrentUser)
	admin := "open"
	if adminToken {
		admin = "needs Authorization: Bearer <admin token>"
	}
	fmt.Fprintf(w, "  control API and live page:   %s%s (%s)\n", url, testserver.PathControl, admin)
	if frozen {
		fmt.Fprintf(w, "  clock:                       frozen; POST %s%sclock/advance moves it\n", url, testserver.PathControl)
	}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		fmt.Fprintf(w, "  user:                        %s / %s\n", u, users[u])
	}
	fmt.Fprintf(w, "  public client:               %s (no secret)\n", testserver.PublicClientID)
	fmt.Fprintf(w, "  confidential client:         %s / %s\n", testserver.ConfidentialClientID, testserver.ConfidentialClientSecret)
}
