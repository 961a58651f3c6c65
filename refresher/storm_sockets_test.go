package refresher_test

import (
	"bufio"
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
)

// TestAStormOfSessionsLeavesNoSocketsInTimeWait refreshes a storm of
// sessions (2,000; 10,000 for BENCHMARKS.md, see stormSessions) at once, each its own Source, all through one OAuth2Endpoint
// with the default HTTP client (as a Sessions over one endpoint does),
// against the test server on loopback, and counts the sockets to or from
// the server's port in TIME_WAIT before and after. The figure is reported
// in BENCHMARKS.md.
func TestAStormOfSessionsLeavesNoSocketsInTimeWait(t *testing.T) {
	if testing.Short() {
		t.Skip("a storm of refreshes; skipped in -short mode")
	}
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("counts sockets in /proc/net/tcp (Linux)")
	}
	sessions := stormSessions(t)
	srv := testserver.NewTest(t, testserver.Config{})
	u, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	ep := &refresher.OAuth2Endpoint{Config: &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}}
	srcs := make([]*refresher.Source, sessions)
	for i := range srcs {
		tok, err := srv.IssueToken(testserver.DemoUser)
		if err != nil {
			t.Fatal(err)
		}
		tok.Expiry = time.Now().Add(-time.Minute) // expired here: the first Token refreshes
		srcs[i] = refresher.NewSource(ep, refresher.WithToken(tok))
	}

	before := countSockets(t, port)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, src := range srcs {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := src.Token(ctx); err != nil {
				if failed.Add(1) == 1 {
					t.Errorf("first failure: %v", err)
				}
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	took := time.Since(t0)
	after := countSockets(t, port)

	st := srv.Stats()
	t.Logf("%d sessions refreshed at once in %v: %d refreshes at the server, %d failed; "+
		"sockets of port %d in TIME_WAIT: %d before, %d after (+%d); client sockets still open: %d",
		sessions, took.Round(time.Millisecond), st.Refreshes, failed.Load(),
		port, before.timeWait, after.timeWait, after.timeWait-before.timeWait, after.clientOpen)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d refreshes failed", n, sessions)
	}
	// Without a shared pool, every session but a few leaves one; with it,
	// at most a pool's worth can close (32 connections), twice over.
	if d := after.timeWait - before.timeWait; d > max(sessions/100, 64) {
		t.Errorf("the storm left %d sockets in TIME_WAIT", d)
	}
}

// stormSessions is the size of the storm: 2,000 in the test suite, where
// other packages' tests share the machine's cores; AUTOREFRESH_STORM_SESSIONS
// sets it (BENCHMARKS.md's figure is of 10,000).
func stormSessions(t *testing.T) int {
	n := 2000
	if v := os.Getenv("AUTOREFRESH_STORM_SESSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("AUTOREFRESH_STORM_SESSIONS=%q: want a positive number", v)
		}
	}
	return n
}

// sockets counts TCP sockets of one port.
type sockets struct {
	timeWait   int // in TIME_WAIT, either end on the port
	clientOpen int // ESTABLISHED towards the port
}

// countSockets reads /proc/net/tcp and tcp6 for the sockets of port.
func countSockets(t *testing.T, port int) sockets {
	t.Helper()
	var s sockets
	hexPort := fmt.Sprintf("%04X", port)
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 {
				continue
			}
			local, remote, state := portOf(fields[1]), portOf(fields[2]), fields[3]
			switch {
			case state == "06" && (local == hexPort || remote == hexPort):
				s.timeWait++
			case state == "01" && remote == hexPort:
				s.clientOpen++
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// portOf returns the hex port of an address of /proc/net/tcp ("0100007F:1F90").
func portOf(addr string) string {
	_, p, _ := strings.Cut(addr, ":")
	return p
}
