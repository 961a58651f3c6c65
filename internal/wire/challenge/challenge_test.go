package challenge

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	bearer := func(ps ...param) challenge { return challenge{scheme: "Bearer", params: ps} }
	cases := []struct {
		name string
		in   []string
		want []challenge
	}{
		{"none", nil, nil},
		{"empty", []string{""}, nil},
		{"only commas", []string{" , ,, "}, nil},
		{"bare scheme", []string{"Bearer"}, []challenge{bearer()}},
		{"rfc 6750 example", []string{`Bearer realm="example"`}, []challenge{bearer(param{"realm", "example"})}},
		{"rfc 6750 error example", []string{`Bearer realm="example", error="invalid_token", error_description="The access token expired"`},
			[]challenge{bearer(param{"realm", "example"}, param{"error", "invalid_token"}, param{"error_description", "The access token expired"})}},
		{"insufficient scope", []string{`Bearer error="insufficient_scope", scope="admin read"`},
			[]challenge{bearer(param{"error", "insufficient_scope"}, param{"scope", "admin read"})}},
		{"token values", []string{`Bearer error=invalid_token,realm=api`},
			[]challenge{bearer(param{"error", "invalid_token"}, param{"realm", "api"})}},
		{"bws around equals", []string{`Bearer error = "invalid_token" , realm= "x"`},
			[]challenge{bearer(param{"error", "invalid_token"}, param{"realm", "x"})}},
		{"case of names", []string{`bEaReR ERROR="x"`}, []challenge{{scheme: "bEaReR", params: []param{{"error", "x"}}}}},
		{"escapes", []string{`Bearer realm="a \"b\" \\ c"`}, []challenge{bearer(param{"realm", `a "b" \ c`})}},
		{"comma in quoted string", []string{`Basic realm="a, b", Bearer`},
			[]challenge{{scheme: "Basic", params: []param{{"realm", "a, b"}}}, bearer()}},
		{"several challenges", []string{`Basic realm="x", Bearer realm="y", error="invalid_token", Digest realm="z", nonce="n"`},
			[]challenge{
				{scheme: "Basic", params: []param{{"realm", "x"}}},
				bearer(param{"realm", "y"}, param{"error", "invalid_token"}),
				{scheme: "Digest", params: []param{{"realm", "z"}, {"nonce", "n"}}},
			}},
		{"several fields", []string{`Basic realm="x"`, `Bearer error="insufficient_scope"`},
			[]challenge{{scheme: "Basic", params: []param{{"realm", "x"}}}, bearer(param{"error", "insufficient_scope"})}},
		{"token68", []string{`Negotiate YIIB+w/==, Bearer`}, []challenge{{scheme: "Negotiate", token68: "YIIB+w/=="}, bearer()}},
		{"token68 without padding", []string{`Negotiate abc`}, []challenge{{scheme: "Negotiate", token68: "abc"}}},
		{"duplicate param keeps the first", []string{`Bearer error="invalid_token", error="insufficient_scope"`},
			[]challenge{bearer(param{"error", "invalid_token"})}},
		{"empty quoted value", []string{`Bearer realm=""`}, []challenge{bearer(param{"realm", ""})}},
		{"unterminated quote", []string{`Bearer error="insufficient_scope`}, []challenge{bearer()}},
		{"junk after a param", []string{`Bearer error="a" junk, Basic`}, []challenge{bearer(param{"error", "a"}), {scheme: "Basic"}}},
		{"junk instead of a scheme", []string{`@@@, Bearer`}, []challenge{bearer()}},
		{"scheme glued to a quote", []string{`Bearer"x", Basic`}, []challenge{{scheme: "Basic"}}},
		{"control character in quotes", []string{"Bearer error=\"a\x01b\", Basic"}, []challenge{bearer(), {scheme: "Basic"}}},
		{"missing value reads as token68", []string{`Bearer error=, Basic`}, []challenge{{scheme: "Bearer", token68: "error="}, {scheme: "Basic"}}},
		{"missing value", []string{`Bearer realm="x", error=, Basic`}, []challenge{bearer(param{"realm", "x"}), {scheme: "Basic"}}},
		{"leading space and tabs", []string{"\t Bearer\trealm=\"x\""}, []challenge{bearer(param{"realm", "x"})}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseChallenges(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseChallenges(%q)\n got %#v\nwant %#v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseChallengesIsBounded(t *testing.T) {
	cases := []struct {
		name string
		in   []string
	}{
		{"many challenges", []string{strings.Repeat("Basic, ", 100_000) + `Bearer error="insufficient_scope"`}},
		{"many fields", repeat(`Basic realm="x"`, 10_000)},
		{"many params", []string{"Bearer " + strings.Repeat(`a="b", `, 100_000)}},
		{"long value", []string{`Bearer realm="` + strings.Repeat("v", 1<<20) + `"`}},
		{"long junk", []string{strings.Repeat("@", 1<<20)}},
		{"long token", []string{strings.Repeat("B", 1<<20)}},
		{"open quote", []string{`Bearer realm="` + strings.Repeat(`\"`, 1<<19)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := parseChallenges(tc.in)
			checkBounds(t, got)
			for _, c := range got {
				if _, ok := c.param("error"); ok {
					t.Errorf("read an error parameter beyond %d bytes: %v", maxChallengeBytes, c)
				}
			}
			allocs := testing.AllocsPerRun(3, func() { parseChallenges(tc.in) })
			if allocs > 4*maxChallenges*maxParams {
				t.Errorf("%v allocations; the parser should not scale with the input", allocs)
			}
		})
	}
}

func TestInsufficientScopeBeyondTheBoundIsNotRead(t *testing.T) {
	// The first 8 KiB are read, the rest ignored: a challenge that starts
	// beyond does not count, so the 401 is treated as if it had no
	// readable challenge for the token's scheme.
	h := http.Header{"Www-Authenticate": {strings.Repeat(" ", maxChallengeBytes), `Bearer error="insufficient_scope"`}}
	if !refreshMayHelp(h, "Bearer") {
		t.Errorf("refreshMayHelp = false, want true: the challenge is beyond the bound")
	}
}

func TestRefreshMayHelp(t *testing.T) {
	cases := []struct {
		name   string
		header []string
		scheme string
		want   bool
	}{
		{"no header", nil, "Bearer", true},
		{"unreadable header", []string{"@@@"}, "Bearer", true},
		{"bearer invalid_token", []string{`Bearer error="invalid_token"`}, "Bearer", true},
		{"bearer without error", []string{`Bearer realm="api"`}, "Bearer", true},
		{"bearer lower case", []string{`bearer error="invalid_token"`}, "Bearer", true},
		{"bearer unknown error", []string{`Bearer error="something_new"`}, "Bearer", true},
		{"insufficient_scope", []string{`Bearer error="insufficient_scope", scope="admin"`}, "Bearer", false},
		{"insufficient_scope as token", []string{`Bearer error=insufficient_scope`}, "Bearer", false},
		{"invalid_request", []string{`Bearer error="invalid_request"`}, "Bearer", false},
		{"insufficient_scope among challenges", []string{`Basic realm="x"`, `Bearer error="insufficient_scope"`}, "Bearer", false},
		{"basic only", []string{`Basic realm="x"`}, "Bearer", false},
		{"digest only", []string{`Digest realm="x", nonce="y", qop="auth"`}, "Bearer", false},
		{"basic and digest", []string{`Basic realm="x", Digest realm="x", nonce="y"`}, "Bearer", false},
		{"negotiate", []string{`Negotiate`}, "Bearer", false},
		{"basic and bearer", []string{`Basic realm="x", Bearer error="invalid_token"`}, "Bearer", true},
		{"the token's own scheme", []string{`DPoP error="invalid_token"`}, "DPoP", true},
		{"bearer challenge to a DPoP token", []string{`Bearer error="invalid_token"`}, "DPoP", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tc.header {
				h.Add("WWW-Authenticate", v)
			}
			if got := refreshMayHelp(h, tc.scheme); got != tc.want {
				t.Errorf("refreshMayHelp(%q, %q) = %v, want %v", tc.header, tc.scheme, got, tc.want)
			}
		})
	}
}

// FuzzParseChallenges checks that the parser never panics, stays within its
// bounds, returns only well-formed challenges, and reads back what it
// formats. Newline-separated parts of the input are separate header fields.
func FuzzParseChallenges(f *testing.F) {
	f.Fuzz(func(t *testing.T, in string) {
		fields := strings.Split(in, "\n")
		got := parseChallenges(fields)
		checkBounds(t, got)
		refreshMayHelp(http.Header{"Www-Authenticate": fields}, "Bearer")
		OtherSchemesOnly(http.Header{"Www-Authenticate": fields}, "Bearer")

		formatted := make([]string, len(got))
		for i, c := range got {
			formatted[i] = c.String()
		}
		if s := strings.Join(formatted, ", "); len(s) <= maxChallengeBytes {
			again := parseChallenges([]string{s})
			if !reflect.DeepEqual(again, got) {
				t.Errorf("parse(format(parse(%q))):\n got %#v\nwant %#v\n(formatted %q)", in, again, got, s)
			}
		}
	})
}

func checkBounds(t *testing.T, cs []challenge) {
	t.Helper()
	if len(cs) > maxChallenges {
		t.Fatalf("%d challenges, want at most %d", len(cs), maxChallenges)
	}
	for _, c := range cs {
		if c.scheme == "" || strings.IndexFunc(c.scheme, func(r rune) bool { return r > 0x7f || !isTokenChar(byte(r)) }) >= 0 {
			t.Errorf("scheme %q is not a token", c.scheme)
		}
		if len(c.params) > maxParams {
			t.Errorf("%d params, want at most %d", len(c.params), maxParams)
		}
		if c.token68 != "" && len(c.params) > 0 {
			t.Errorf("both token68 and params: %#v", c)
		}
		seen := map[string]bool{}
		for _, p := range c.params {
			if p.name == "" || p.name != strings.ToLower(p.name) || seen[p.name] {
				t.Errorf("param name %q: empty, not lower case or repeated", p.name)
			}
			seen[p.name] = true
		}
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestOtherSchemesOnly(t *testing.T) {
	cases := []struct {
		name   string
		header []string
		want   bool
	}{
		{"no header", nil, false},
		{"unreadable header", []string{"@@@"}, false},
		{"basic", []string{`Basic realm="token endpoint"`}, true},
		{"digest", []string{`Digest realm="x", nonce="y"`}, true},
		{"bearer", []string{`Bearer error="invalid_token"`}, false},
		{"basic and bearer", []string{`Basic realm="x", Bearer`}, false},
		{"bearer in lower case", []string{`bearer`}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Www-Authenticate": tc.header}
			if got := OtherSchemesOnly(h, "Bearer"); got != tc.want {
				t.Errorf("OtherSchemesOnly(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}
