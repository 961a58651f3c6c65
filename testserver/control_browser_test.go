package testserver

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's chromium package puts the browser.
const chromiumPath = "/usr/bin/chromium"

// findChromium returns the browser to drive, or skips the test when there
// is none outside CI. In CI (CI=true), .ci/run installs it, so a missing
// browser fails the test.
func findChromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return chromiumPath
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("chromium is not installed at %s; .ci/run installs it in CI", chromiumPath)
	}
	t.Skipf("chromium is not installed at %s and this is not CI: install it (apt-get install -y chromium, as .ci/run does) to run the browser test", chromiumPath)
	return ""
}

// processesUsing returns the PIDs of the processes whose command line
// mentions s (Linux /proc; nil elsewhere).
func processesUsing(s string) []string {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err == nil && strings.Contains(string(b), s) {
			pids = append(pids, filepath.Base(filepath.Dir(f)))
		}
	}
	return pids
}

func TestControlPageInABrowserShowsRotationAndReuseAndExpiresTokensOnClick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser := findChromium(t)
	h := newHarness(t, Config{AccessTTL: time.Minute})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(browser),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1360, 1000),
	)
	tabCtx, cancelTab := chromedp.NewContext(allocCtx)
	defer func() {
		// Close the browser, wait for its process, then check that none
		// of its processes survive.
		cancelTab()
		cancelAlloc()
		if pids := processesUsing(profile); len(pids) > 0 {
			t.Errorf("chromium processes still running: %v", pids)
		}
	}()

	page := h.s.URL() + PathControl
	if err := chromedp.Do(tabCtx,
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="live"]`)),
	); err != nil {
		t.Fatalf("open %s: %v", page, err)
	}

	// A refresh shows up as a rotation.
	rt := h.password("").str("refresh_token")
	h.mustRefresh(rt)
	if err := chromedp.Do(tabCtx, chromedp.WaitVisible(chromedp.CSS(`#events li[data-kind="rotation"]`))); err != nil {
		t.Fatalf("no rotation on the page: %v", err)
	}
	rotation, err := chromedp.Run(tabCtx, chromedp.Text(chromedp.CSS(`#events li[data-kind="rotation"]`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rotation, "token 1 rotated to token 2") {
		t.Errorf("rotation line: got %q", rotation)
	}

	// Replaying the old refresh token shows up as a reuse detection, and
	// the family as revoked.
	wantGrantError(t, h.refresh(rt), http.StatusBadRequest, "invalid_grant")
	if err := chromedp.Do(tabCtx, chromedp.WaitVisible(chromedp.CSS(`#events li[data-kind="reuse"]`))); err != nil {
		t.Fatalf("no reuse detection on the page: %v", err)
	}
	reuse, err := chromedp.Run(tabCtx, chromedp.Text(chromedp.CSS(`#events li[data-kind="reuse"]`)))
	if err != nil {
		t.Fatal(err)
	}
	family, err := chromedp.Run(tabCtx, chromedp.Text(chromedp.CSS(`#families tr`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reuse, "family revoked") || !strings.Contains(family, "revoked: reuse") {
		t.Errorf("reuse: got event %q and family %q", reuse, family)
	}

	// The button expires the access tokens on the server.
	access := h.password("").str("access_token")
	if a := h.get(PathMe, access); a.status != http.StatusOK {
		t.Fatalf("fresh token before the click: got %d, want 200", a.status)
	}
	if err := chromedp.Do(tabCtx,
		chromedp.Click(chromedp.CSS(`#expire-access-tokens`)),
		chromedp.WaitVisible(chromedp.CSS(`#result[data-state="ok"][data-call="expire-access-tokens"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#events li[data-kind="expire-access"]`)),
	); err != nil {
		t.Fatalf("expire button: %v", err)
	}
	if a := h.get(PathMe, access); a.status != http.StatusUnauthorized {
		t.Errorf("token after the click: got %d, want 401", a.status)
	}

	// Let the page catch up with the last request (the 401), then keep a
	// picture of it.
	if err := chromedp.Do(tabCtx, chromedp.Poll[chromedp.Void](`document.querySelector("#stat-unauthorized b")?.textContent === "1"`)); err != nil {
		t.Fatalf("the page does not count the 401: %v", err)
	}
	png, err := chromedp.Run(tabCtx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir, err := os.MkdirTemp("", "testserver-control-page-")
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "control-page.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the control page: %s", shot)

	if err := chromedp.Cancel(tabCtx); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("closing the browser: %v", err)
	}
}
