package testserver

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
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

func TestStandaloneCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "testserver")
	build := exec.CommandContext(ctx, goTool(t), "build", "-o", bin, "./cmd/testserver")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:0", "-access-ttl", "30s", "-reuse-grace", "0s")
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read the first line, then the rest until the process closes stdout.
	first := make(chan string, 1)
	rest := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		first <- strings.TrimSpace(line)
		b, _ := io.ReadAll(r)
		rest <- string(b)
	}()

	var line string
	select {
	case line = <-first:
	case <-ctx.Done():
		t.Fatal("no first line from the command")
	}
	base, ok := strings.CutPrefix(line, "testserver listening on ")
	if !ok || !strings.HasPrefix(base, "http://127.0.0.1:") || strings.HasSuffix(base, ":0") {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("first line: got %q, want %q", line, "testserver listening on http://127.0.0.1:PORT")
	}

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

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var banner string
	select {
	case banner = <-rest:
	case <-ctx.Done():
		t.Fatal("stdout not closed after SIGTERM")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v (want status 0)\nstderr: %s", err, stderr.String())
	}
	for _, want := range []string{DemoUser + " / " + DemoPassword, PublicClientID, ConfidentialClientID + " / " + ConfidentialClientSecret, base + PathToken} {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}
}
