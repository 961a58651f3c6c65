package redisstore_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/autorefresh/autorefresh/internal/fleet"
)

// The test binary re-executes itself as helper processes: when helperEnv
// names a role, TestMain plays it instead of running the tests, talking to
// the parent test line by line over stdin and stdout, and exits.
const (
	helperEnv    = "REDISSTORE_TEST_HELPER"
	redisAddrEnv = "REDISSTORE_TEST_REDIS_ADDR"
	keyEnv       = "REDISSTORE_TEST_KEY"
	serverURLEnv = "REDISSTORE_TEST_SERVER_URL"
)

// helperTimeout bounds every wait of a parent for one line of a helper, so
// that a stuck helper fails the test instead of hanging it.
const helperTimeout = fleet.Timeout

// helperRoles are the roles a helper process can play, by name.
var helperRoles = map[string]fleet.Role{
	"hold-lease": helperHoldLease,
	"replica":    helperReplica,
}

// helperBinary starts helper processes, which TestMain diverts to their
// role.
var helperBinary = fleet.Binary{RoleEnv: helperEnv}

func TestMain(m *testing.M) {
	fleet.Serve(helperEnv, helperRoles) // exits if this process is a helper
	goleak.VerifyTestMain(m)
}
