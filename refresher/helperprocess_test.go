package refresher_test

import (
	"testing"

	"github.com/autorefresh/autorefresh/internal/fleet"
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
const helperTimeout = fleet.Timeout

// helperRoles are the roles a helper process can play, by name.
var helperRoles = map[string]fleet.Role{
	"hold-lock":     helperHoldLock,
	"slow-save":     helperSlowSave,
	"save-loop":     helperSaveLoop,
	"multi-process": helperMultiProcess,
}

// helperBinary starts helper processes, which enter through
// TestHelperProcess.
var helperBinary = fleet.Binary{RoleEnv: helperEnv, Args: []string{"-test.run=^TestHelperProcess$"}}

// TestHelperProcess is not a test: it is the entry point of the helper
// processes started through helperBinary, and is skipped in a normal run.
func TestHelperProcess(t *testing.T) {
	fleet.Serve(helperEnv, helperRoles) // exits if this process is a helper
	t.Skip("entry point of helper processes started by other tests")
}

// startHelper starts the test binary as a helper process playing role, with
// env added to its environment. The process is killed at the end of the
// test if it is still running.
func startHelper(t *testing.T, role string, env ...string) *fleet.Helper {
	t.Helper()
	return helperBinary.Start(t, role, role, env...)
}
