package main

import (
	"io"
	"maps"
	"strings"
	"testing"
)

func TestParseUsers(t *testing.T) {
	got, err := parseUsers("demo:demo, alice:pa:ss")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"demo": "demo", "alice": "pa:ss"}; !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "nopassword", ":pw"} {
		if _, err := parseUsers(bad); err == nil {
			t.Errorf("parseUsers(%q): got nil error", bad)
		}
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"-h"}, 0},
		{[]string{"-no-such-flag"}, 2},
		{[]string{"extra"}, 2},
		{[]string{"-users", "broken"}, 2},
		{[]string{"-addr", "256.0.0.1:0"}, 1},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if got := run(tc.args, io.Discard, io.Discard); got != tc.code {
				t.Errorf("exit code: got %d, want %d", got, tc.code)
			}
		})
	}
}
