package fleet_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/autorefresh/autorefresh/internal/fleet"
)

const roleEnv = "FLEET_TEST_HELPER"

var roles = map[string]fleet.Role{
	// "square" answers each round k with k*k and the value of FLEET_TEST_TAG.
	"square": func(in *bufio.Scanner, out io.Writer) error {
		fmt.Fprintln(out, "ready", os.Getenv("FLEET_TEST_TAG"))
		return fleet.Rounds(in, out, func(k int) string { return fmt.Sprint(k * k) })
	},
	// "stuck" says so and waits to be killed.
	"stuck": func(in *bufio.Scanner, out io.Writer) error {
		fmt.Fprintln(out, "stuck")
		for in.Scan() {
		}
		return errors.New("not killed")
	},
}

var binary = fleet.Binary{RoleEnv: roleEnv}

func TestMain(m *testing.M) {
	fleet.Serve(roleEnv, roles)
	os.Exit(m.Run())
}

func TestRoundsAndStop(t *testing.T) {
	hs := binary.StartN(t, 3, "square", "FLEET_TEST_TAG=x")
	for i, h := range hs {
		if want := fmt.Sprintf("square %d", i); h.Name() != want {
			t.Errorf("name %q, want %q", h.Name(), want)
		}
		if got := h.Expect("ready "); got != "x" {
			t.Errorf("%s: environment tag %q, want %q", h.Name(), got, "x")
		}
	}
	for k := range 4 {
		got := fleet.Round(hs, k)
		if len(got) != len(hs) {
			t.Fatalf("round %d: %d answers, want %d", k, len(got), len(hs))
		}
		for i, a := range got {
			if a != fmt.Sprint(k*k) {
				t.Errorf("round %d: %s answered %q, want %d", k, hs[i].Name(), a, k*k)
			}
		}
	}
	fleet.Stop(hs)
}

func TestKill(t *testing.T) {
	h := binary.Start(t, "stuck one", "stuck")
	h.Expect("stuck")
	h.Kill()
}

func TestRoundsRefusesOtherLines(t *testing.T) {
	var out strings.Builder
	err := fleet.Rounds(bufio.NewScanner(strings.NewReader("round 1\nhello\nround 2\n")), &out,
		func(k int) string { return "k" })
	if err == nil || !strings.Contains(err.Error(), `"hello"`) {
		t.Errorf("error %v, want one about the line \"hello\"", err)
	}
	if out.String() != "done 1 k\n" {
		t.Errorf("output %q, want %q", out.String(), "done 1 k\n")
	}
}
