// Package fleet lets a test run helper processes: copies of its own test
// binary that play a named role and talk to the test line by line over
// their stdin and stdout. It is meant for tests only.
//
// The child side is [Serve], called from TestMain or from a test that the
// helpers are told to run; the parent side is [Binary.Start] and the
// [Helper] it returns. [Rounds] and [Round] are the two sides of a simple
// protocol in which the parent says "round k" to every helper and each one
// answers "done k " followed by its figures for the round.
package fleet

import (
	"bufio"
	"fmt"
	"github.com/autorefresh/autorefresh/internal/safebuf"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Timeout bounds every wait of a parent for one line of a helper, and for
// a helper to exit once told to, so that a stuck helper fails the test
// instead of hanging it.
const Timeout = 30 * time.Second

// Role is what a helper process does. It reads the parent's lines from in
// and writes its own to out; the helper exits with status 0 if it returns
// nil, and 1 after printing the error to stderr otherwise.
type Role func(in *bufio.Scanner, out io.Writer) error

// Serve is the entry point of a helper process. If the environment
// variable roleEnv names one of roles, Serve plays it over stdin and stdout
// and exits the process without returning to the testing framework: the
// helper's own goroutines and connections are none of the parent's
// business. An unknown role exits with status 2. If roleEnv is empty or
// unset, the process is not a helper and Serve returns at once.
func Serve(roleEnv string, roles map[string]Role) {
	role := os.Getenv(roleEnv)
	if role == "" {
		return
	}
	run, ok := roles[role]
	if !ok {
		fmt.Fprintf(os.Stderr, "helper: unknown role %q\n", role)
		os.Exit(2)
	}
	if err := run(bufio.NewScanner(os.Stdin), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Rounds is the helper's side of the round protocol: for each line
// "round k" read from in, it calls play(k) and answers "done k " followed
// by what play returned. It returns at the end of in, or with an error at
// the first line that is not a round.
func Rounds(in *bufio.Scanner, out io.Writer, play func(round int) string) error {
	for in.Scan() {
		var round int
		if _, err := fmt.Sscanf(in.Text(), "round %d", &round); err != nil {
			return fmt.Errorf("bad command %q: %v", in.Text(), err)
		}
		fmt.Fprintf(out, "done %d %s\n", round, play(round))
	}
	return in.Err()
}

// Round is the parent's side of the round protocol: it says "round k" to
// every helper, then waits for each one's answer "done k ", in order, and
// returns the rest of each answer.
func Round(hs []*Helper, k int) []string {
	for _, h := range hs {
		h.Send("round %d", k)
	}
	answers := make([]string, len(hs))
	for i, h := range hs {
		answers[i] = h.Expect(fmt.Sprintf("done %d ", k))
	}
	return answers
}

// Stop tells every helper to end by closing its stdin, then checks that
// each one exits successfully. Telling them all first lets them exit
// together rather than one after the other.
func Stop(hs []*Helper) {
	for _, h := range hs {
		h.End()
	}
	for _, h := range hs {
		h.Finish()
	}
}

// Binary is how a test re-executes its own test binary as helpers.
type Binary struct {
	// RoleEnv is the environment variable that tells a helper its role:
	// the helper's side calls [Serve] with the same name.
	RoleEnv string
	// Args are the test binary's arguments, such as
	// "-test.run=^TestHelperProcess$" when Serve is called from that test
	// rather than from TestMain.
	Args []string
}

// Helper is a helper process seen from the parent test. Its methods must
// be called from the test's goroutine.
type Helper struct {
	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *safebuf.Buffer
	lines  chan string // the helper's stdout, line by line; closed at EOF
	waited bool
	err    error // the helper's exit status, once waited
}

// Start starts the test binary as a helper process playing role, with env
// added to its environment, and names it name in failure messages. The
// process is killed at the end of the test if it is still running. Under
// the race detector, where a process sleeps for a second at exit unless
// told otherwise, the helper is told otherwise.
func (b Binary) Start(t testing.TB, name, role string, env ...string) *Helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], b.Args...)
	gorace := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	cmd.Env = append(os.Environ(), append([]string{b.RoleEnv + "=" + role, "GORACE=" + gorace}, env...)...)
	h := &Helper{
		t:      t,
		name:   name,
		cmd:    cmd,
		stderr: new(safebuf.Buffer),
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
		t.Fatalf("start helper %s: %v", name, err)
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

// StartN starts n helpers playing role, as [Binary.Start] does, named
// role followed by their index: "replica 0", "replica 1" and so on.
func (b Binary) StartN(t testing.TB, n int, role string, env ...string) []*Helper {
	t.Helper()
	hs := make([]*Helper, n)
	for i := range hs {
		hs[i] = b.Start(t, fmt.Sprintf("%s %d", role, i), role, env...)
	}
	return hs
}

// Signal sends sig to the helper process, for example SIGSTOP and SIGCONT
// to pause it as a garbage collector or a frozen machine would.
func (h *Helper) Signal(sig os.Signal) error { return h.cmd.Process.Signal(sig) }

// Name returns the helper's name.
func (h *Helper) Name() string { return h.name }

// Send writes one line to the helper's stdin.
func (h *Helper) Send(format string, args ...any) {
	h.t.Helper()
	if _, err := fmt.Fprintf(h.stdin, format+"\n", args...); err != nil {
		h.t.Fatalf("helper %s (pid %d): send: %v\nstderr:\n%s", h.name, h.cmd.Process.Pid, err, h.stderr)
	}
}

// Expect waits for the helper's next line, which must start with prefix,
// and returns the rest of it. It fails the test if the helper ends first,
// or says nothing within [Timeout].
func (h *Helper) Expect(prefix string) string {
	h.t.Helper()
	timer := time.NewTimer(Timeout)
	defer timer.Stop()
	select {
	case line, ok := <-h.lines:
		if !ok {
			h.t.Fatalf("helper %s (pid %d) ended while the test expected %q: %v\nstderr:\n%s",
				h.name, h.cmd.Process.Pid, prefix, h.wait(), h.stderr)
		}
		rest, found := strings.CutPrefix(line, prefix)
		if !found {
			h.t.Fatalf("helper %s (pid %d): got line %q, want one starting with %q\nstderr:\n%s",
				h.name, h.cmd.Process.Pid, line, prefix, h.stderr)
		}
		return rest
	case <-timer.C:
		h.t.Fatalf("helper %s (pid %d): no line %q within %v\nstderr:\n%s",
			h.name, h.cmd.Process.Pid, prefix, Timeout, h.stderr)
	}
	return ""
}

// Kill kills the helper with SIGKILL (TerminateProcess on Windows) and
// waits until it is gone.
func (h *Helper) Kill() {
	h.t.Helper()
	if err := h.cmd.Process.Kill(); err != nil {
		h.t.Fatalf("kill helper %s: %v", h.name, err)
	}
	h.wait()
}

// End closes the helper's stdin, which tells it to end, and does not wait.
func (h *Helper) End() { h.stdin.Close() }

// Finish closes the helper's stdin, which tells it to end, and checks that
// it exits successfully within [Timeout].
func (h *Helper) Finish() {
	h.t.Helper()
	h.End()
	stuck := time.AfterFunc(Timeout, func() { h.cmd.Process.Kill() })
	defer stuck.Stop()
	if err := h.wait(); err != nil {
		h.t.Fatalf("helper %s (pid %d): %v\nstderr:\n%s", h.name, h.cmd.Process.Pid, err, h.stderr)
	}
}

// wait waits for the helper to exit and returns its exit status. Lines
// the test did not read are discarded.
func (h *Helper) wait() error {
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
