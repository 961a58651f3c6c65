package testserver

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// goTool returns the go command that runs this test.
func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := exec.LookPath(p); err != nil {
		t.Skip("no go command to build the standalone server")
	}
	return p
}

// builtCommand is the standalone server, built once for the package's tests
// into commandDir (removed by TestMain).
var (
	buildOnce  sync.Once
	commandDir string
	commandBin string
	buildErr   error
)

// buildCommand builds the standalone server once and returns its path.
func buildCommand(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary")
	}
	gotool := goTool(t)
	buildOnce.Do(func() {
		commandDir, buildErr = os.MkdirTemp("", "testserver-cmd-")
		if buildErr != nil {
			return
		}
		bin := filepath.Join(commandDir, "testserver")
		out, err := exec.Command(gotool, "build", "-o", bin, "./cmd/testserver").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		commandBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return commandBin
}

// command is a running standalone server.
type command struct {
	cmd    *exec.Cmd
	base   string      // its URL
	rest   chan string // the output after the first line, once stdout closes
	stderr *strings.Builder
}

// startCommand starts the standalone server with args (plus -addr
// 127.0.0.1:0) and reads its URL from the first line of its output. The
// process is killed at cleanup if still running.
func startCommand(t *testing.T, ctx context.Context, args ...string) *command {
	t.Helper()
	cmd := exec.CommandContext(ctx, buildCommand(t), append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &command{cmd: cmd, rest: make(chan string, 1), stderr: new(strings.Builder)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// Read the first line, then the rest until the process closes stdout.
	first := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		first <- strings.TrimSpace(line)
		b, _ := io.ReadAll(r)
		c.rest <- string(b)
	}()
	var line string
	select {
	case line = <-first:
	case <-ctx.Done():
		t.Fatal("no first line from the command")
	}
	base, ok := strings.CutPrefix(line, "testserver listening on ")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		t.Fatalf("first line: got %q, want %q", line, "testserver listening on http://127.0.0.1:PORT")
	}
	c.base = base
	return c
}

// stop sends SIGTERM, checks the exit status 0 and returns the output after
// the first line.
func (c *command) stop(t *testing.T, ctx context.Context) string {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var banner string
	select {
	case banner = <-c.rest:
	case <-ctx.Done():
		t.Fatal("stdout not closed after SIGTERM")
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v (want status 0)\nstderr: %s", err, c.stderr.String())
	}
	return banner
}

func TestStandaloneCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := startCommand(t, ctx, "-access-ttl", "30s", "-reuse-grace", "0s")
	base := c.base

	client := newClient(t)
	resp, err := client.PostForm(base+PathToken, url.Values{
		"grant_type": {"password"}, "username": {DemoUser}, "password": {DemoPassword}, "client_id": {PublicClientID},
	})
	h := &harness{t: t, client: client}
	var tok answer
	if err == nil {
		tok, err = decode(resp)
	}
	if err != nil || tok.status != http.StatusOK || tok.body["expires_in"] != float64(30) {
		t.Errorf("password grant: %v %d %s", err, tok.status, tok.raw)
	} else {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+PathMe, nil)
		req.Header.Set("Authorization", "Bearer "+tok.str("access_token"))
		if me := h.do(req); me.status != http.StatusOK || me.str("user") != DemoUser {
			t.Errorf("%s: got %d %s, want 200 demo", PathMe, me.status, me.raw)
		}
	}
	client.CloseIdleConnections()

	banner := c.stop(t, ctx)
	for _, want := range []string{DemoUser + " / " + DemoPassword, PublicClientID, ConfidentialClientID + " / " + ConfidentialClientSecret, base + PathToken, base + PathControl + " (open)"} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
}
