package redisstore_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/internal/safebuf"
)

// startRedisServer starts a redis-server on 127.0.0.1 at a free port, with
// no persistence, stopped at the end of the test, and returns its address.
// The test is skipped if redis-server is not installed.
func startRedisServer(t *testing.T) string {
	t.Helper()
	addr, _ := startRedisServerProcess(t)
	return addr
}

// startRedisServerProcess is startRedisServer that also returns the
// server's process, for tests that pause it.
func startRedisServerProcess(t *testing.T) (string, *os.Process) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed (on Debian: apt-get install redis-server); " +
			"skipping the test against a real Redis")
	}
	// Another program may take the free port between our probe and the
	// server's bind: try a few.
	var failures []string
	for range 5 {
		addr, p, out := tryStartRedisServer(t, bin)
		if p != nil {
			return addr, p
		}
		failures = append(failures, out)
	}
	t.Fatalf("redis-server did not start:\n%s", strings.Join(failures, "\n---\n"))
	return "", nil
}

// tryStartRedisServer starts redis-server once and waits until it accepts
// connections, and returns its address and process. If it fails, it
// returns a nil process and what the server printed.
func tryStartRedisServer(t *testing.T, bin string) (addr string, p *os.Process, out string) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", t.TempDir(), "--daemonize", "no", "--loglevel", "notice")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}

	// The server logs to stdout; it is ready when it says so.
	ready := make(chan struct{})
	exited := make(chan struct{})
	log := new(safebuf.Buffer)
	go func() {
		defer close(exited)
		notify := ready
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			log.Write([]byte(sc.Text() + "\n"))
			if notify != nil && strings.Contains(sc.Text(), "Ready to accept connections") {
				close(notify)
				notify = nil
			}
		}
	}()
	stop := func() {
		// A test may have left it paused.
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Signal(syscall.SIGTERM)
		timer := time.AfterFunc(helperTimeout, func() { cmd.Process.Kill() })
		<-exited
		cmd.Wait()
		timer.Stop()
	}

	timer := time.NewTimer(helperTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		t.Cleanup(func() {
			stop()
			if t.Failed() {
				t.Logf("redis-server log:\n%s", log)
			}
		})
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd.Process, ""
	case <-exited:
	case <-timer.C:
	}
	stop()
	return "", nil, log.String()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
