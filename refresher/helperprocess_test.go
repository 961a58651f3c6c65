package refresher_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test binary re-executes itself as helper processes: TestHelperProcess
// runs the role named by helperEnv, talking to the parent test line by line
// over its stdin and stdout, and exits without returning to the testing
// framework.
const (
	helperEnv      = "REFRESHER_TEST_HELPER"
	helperStoreEnv = "REFRESHER_TEST_STORE"
	helperURLEnv   = "REFRESHER_TEST_URL"
)

// helperTimeout bounds every wait of a parent for one line of a helper, so
// that a stuck helper fails the test instead of hanging it.
const helperTimeout = 30 * time.Second

// helperRoles are the roles a helper process can play, by name.
var helperRoles = map[string]func(in *bufio.Scanner, out io.Writer) error{
	"hold-lock":     helperHoldLock,
	"slow-save":     helperSlowSave,
	"save-loop":     helperSaveLoop,
	"multi-process": helperMultiProcess,
}

// TestHelperProcess is not a test: it is the entry point of the helper
// processes started by startHelper, and is skipped in a normal run.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("entry point of helper processes started by other tests")
	}
	run, ok := helperRoles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "helper: unknown role %q\n", role)
		os.Exit(2)
	}
	if err := run(bufio.NewScanner(os.Stdin), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
		os.Exit(1)
	}
	// Exit here: the helper's own goroutines and connections are none of
	// the parent's leak check's business.
	os.Exit(0)
}

// helper is a helper process seen from the parent test.
type helper struct {
	t      *testing.T
	role   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lockedBuffer
	lines  chan string // the helper's stdout, line by line; closed at EOF
	waited bool
	err    error // the helper's exit status, once waited
}

// startHelper starts the test binary as a helper process playing role, with
// env added to its environment. The process is killed at the end of the
// test if it is still running.
func startHelper(t *testing.T, role string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	// Under the race detector, a process sleeps for a second at exit
	// unless told otherwise.
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), append([]string{helperEnv + "=" + role, "GORACE=" + gorace}, env...)...)
	h := &helper{
		t:      t,
		role:   role,
		cmd:    cmd,
		stderr: new(lockedBuffer),
		lines:  make(chan string, 16),
	}
	cmd.Stderr = h.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stdin = stdin
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s: %v", role, err)
	}
	go func() {
		defer close(h.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		h.wait()
	})
	return h
}

// send writes one line to the helper's stdin.
func (h *helper) send(format string, args ...any) {
	h.t.Helper()
	if _, err := fmt.Fprintf(h.stdin, format+"\n", args...); err != nil {
		h.t.Fatalf("helper %s (pid %d): send: %v\nstderr:\n%s", h.role, h.cmd.Process.Pid, err, h.stderr)
	}
}

// expect waits for the helper's next line, which must start with prefix,
// and returns the rest of it.
func (h *helper) expect(prefix string) string {
	h.t.Helper()
	timer := time.NewTimer(helperTimeout)
	defer timer.Stop()
	select {
	case line, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper %s (pid %d) ended while the test expected %q: %v\nstderr:\n%s",
				h.role, h.cmd.Process.Pid, prefix, h.wait(), h.stderr)
		}
		rest, found := strings.CutPrefix(line, prefix)
		if !found {
			h.t.Fatalf("helper %s (pid %d): got line %q, want one starting with %q\nstderr:\n%s",
				h.role, h.cmd.Process.Pid, line, prefix, h.stderr)
		}
		return rest
	case <-timer.C:
		h.t.Fatalf("helper %s (pid %d): no line %q within %v\nstderr:\n%s",
			h.role, h.cmd.Process.Pid, prefix, helperTimeout, h.stderr)
	}
	return ""
}

// kill kills the helper with SIGKILL (TerminateProcess on Windows) and
// waits until it is gone.
func (h *helper) kill() {
	h.t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		h.t.Fatalf("kill helper %s: %v", h.role, err)
	}
	h.wait()
}

// finish closes the helper's stdin, which tells it to end, and checks that
// it exits successfully.
func (h *helper) finish() {
	h.t.Helper()
	h.end()
	stuck := time.AfterFunc(helperTimeout, func() { h.cmd.Process.Kill() })
	defer stuck.Stop()
	if err := h.wait(); err != nil {
		h.t.Fatalf("helper %s (pid %d): %v\nstderr:\n%s", h.role, h.cmd.Process.Pid, err, h.stderr)
	}
}

// end closes the helper's stdin, which tells it to end.
func (h *helper) end() { h.stdin.Close() }

// wait waits for the helper to exit and returns its exit status. Lines
// the test did not read are discarded.
func (h *helper) wait() error {
	if h.waited {
		return h.err
	}
	h.waited = true
	// Read to the end first: Wait closes the pipe once the process exits.
	for range h.lines {
	}
	h.err = h.cmd.Wait()
	return h.err
}

// lockedBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
