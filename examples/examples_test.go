// Package examples_test builds and runs every example program and checks
// the summary line it prints.
package examples_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/testserver"
)

// build compiles the example in dir into a temporary directory.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(dir))
	out, err := exec.Command("go", "build", "-o", bin, "./"+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("go build ./%s: %v\n%s", dir, err, out)
	}
	return bin
}

// runExample runs bin with args, bounded in time, and returns its summary
// line; it fails the test if the program fails.
func runExample(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(bin), args, err, stdout.String(), stderr.String())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(line, "summary: ") {
			return line
		}
	}
	t.Fatalf("no summary line in:\n%s", stdout.String())
	return ""
}

func assertMatch(t *testing.T, summary string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(summary) {
			t.Errorf("summary %q does not match %q", summary, p)
		}
	}
}

func TestFrontendSurvivesExpiriesWithOneRefreshPerBurst(t *testing.T) {
	bin := build(t, "frontend")
	for _, mode := range []string{"cookie", "bearer"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			s := runExample(t, bin, "-mode", mode, "-ttl", "1s")
			// One refresh per burst; the second, after the logout
			// elsewhere, refused. Outside the bursts, a bearer token that
			// the server's whole-second expiry ends before the client's
			// refresh point may cost one more refresh (healed by a replay):
			// the total of calls varies, the refused one does not.
			assertMatch(t, s, ` expiries=[1-9]`, ` refreshes-per-burst=1,1 `, ` failures=0$`, ` logins=2 `,
				` refresh-calls=[2-9] refused=1 `)
		})
	}
}

func TestFrontendTalksToRunningServer(t *testing.T) {
	bin := build(t, "frontend")
	srv := testserver.NewTest(t, testserver.Config{AccessTTL: time.Second})
	s := runExample(t, bin, "-server", srv.URL(), "-rounds", "1")
	assertMatch(t, s, ` refreshes-per-burst=1 `, ` failures=0$`)
	if st := srv.Stats(); st.ReuseDetections != 0 {
		t.Errorf("reuse detections: got %d, want 0", st.ReuseDetections)
	}
}

func TestAccountsExampleRefreshesEachAccountOncePerExpiry(t *testing.T) {
	assertMatch(t, runExample(t, build(t, "accounts")),
		`^summary: store=memory accounts=200 resident=50 rounds=3 requests=800 refreshes=600 `,
		` reuse-detections=0 failures=0$`)
}

func TestBasicExampleRefreshesOnce(t *testing.T) {
	assertMatch(t, runExample(t, build(t, "basic")), ` 401s=1 refreshes=1 failures=0$`)
}

func TestDPoPExampleContinuesTheSessionAfterARestartWithThePersistedKey(t *testing.T) {
	assertMatch(t, runExample(t, build(t, "dpop")), `key-kept=true `, ` refreshes=1 failures=0$`)
}

func TestOAuth2ExamplePersistsRotatedTokens(t *testing.T) {
	assertMatch(t, runExample(t, build(t, "oauth2")), `refreshes=2 reuse-detections=0 failures=0$`)
}

func TestRetryablehttpExampleRetriesAndRefreshesOnce(t *testing.T) {
	assertMatch(t, runExample(t, build(t, "retryablehttp")), `status=200 retries=1 refreshes=1 failures=0$`)
}

func TestOtelExampleRecordsOneRefreshAndOneSessionOver(t *testing.T) {
	assertMatch(t, runExample(t, build(t, "otel")),
		` refreshes\{ok\}=1 `, ` refreshes\{session_over\}=1 `, ` sessions\.over=1 `, ` replays\{ok\}=[1-9]`, ` failures=0$`)
}
