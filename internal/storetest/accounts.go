package storetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/internal/fleet"
	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

// Accounts is the shape of a fleet test in which helper processes share the
// tokens of many accounts through one store, each process serving every
// account through one [http.Client] over [refresher.Sessions]. Time is
// virtual and shared: the server's clock is frozen, and the processes'
// Sources read the same time. Between rounds the parent moves it past the
// access tokens' lifetime, so that every access token issued so far has
// expired, by the server's clock and by the Sources'; in each round every
// process sends Requests requests, for accounts drawn at random (by
// [Accounts.Plan]) from all of them.
//
// An account's refreshes are then known exactly: its token expires between
// rounds, and is refreshed once by the first request for it that follows,
// whichever process sends it. So in round r ≥ 1 each account that any
// process requested (an account "touched" in round r) must be refreshed
// exactly once, across all processes, and every other account not at all;
// round 0 follows no expiry and has no refresh. In total: refreshes == the
// sum over rounds 1..Rounds of the accounts touched in the round.
//
// The expiry is by time rather than by [testserver.Server.ExpireAccessTokens]
// on purpose: a process that skipped an account for a round would find in
// the store the token another process got in that round, unexpired by the
// clock but refused by the server, and adopt it; its replay refused too,
// the transport refreshes once more (see transport's
// TestAdoptedTokenRejectedTooGetsOneMoreRefresh), so the requests succeed
// but the refreshes per round are no longer exact.
type Accounts struct {
	Accounts  int       `json:"accounts"`  // accounts, keyed AccountKey(0) to AccountKey(Accounts-1)
	Processes int       `json:"processes"` // helper processes
	Rounds    int       `json:"rounds"`    // expiries; round 0, before the first, has none
	Requests  int       `json:"requests"`  // requests per process and round
	Workers   int       `json:"workers"`   // goroutines sending them, in each process
	Resident  int       `json:"resident"`  // WithMaxSessions of process 0; 0 keeps the default
	Seed      uint64    `json:"seed"`      // of the random plan
	URL       string    `json:"url"`       // the test server's, set by [Accounts.Server]
	Start     time.Time `json:"start"`     // the virtual time of round 0, set by [Accounts.Server]
}

// AccountsAccessTTL is the lifetime of the access tokens in an accounts
// fleet; the virtual clock moves on by accountsStep between rounds.
const (
	AccountsAccessTTL = time.Hour
	accountsStep      = AccountsAccessTTL + time.Minute
)

// Server starts the test server of the fleet, with a frozen clock, access
// tokens that live [AccountsAccessTTL] and no reuse grace, and records its
// URL and time in a.
func (a *Accounts) Server(t testing.TB) *testserver.Server {
	t.Helper()
	a.Start = time.Now().Truncate(time.Second)
	srv := testserver.NewTest(t, testserver.Config{
		AccessTTL:  AccountsAccessTTL,
		ReuseGrace: 0,
		Clock:      testserver.NewClock(a.Start),
	})
	a.URL = srv.URL()
	return srv
}

// now returns the virtual time of round r.
func (a Accounts) now(r int) time.Time { return a.Start.Add(time.Duration(r) * accountsStep) }

// AccountsEnv is the environment variable that gives a helper process of an
// accounts fleet its shape and its index: see [Accounts.Env].
const AccountsEnv = "STORETEST_ACCOUNTS"

// AccountKey returns the session key of account i.
func AccountKey(i int) string { return "account-" + strconv.Itoa(i) }

// Env returns the environment entry that tells helper process p the shape
// of the fleet.
func (a Accounts) Env(p int) string {
	b, err := json.Marshal(struct {
		Accounts
		Process int `json:"process"`
	}{a, p})
	if err != nil {
		panic(err)
	}
	return AccountsEnv + "=" + string(b)
}

// accountsFromEnv reads what Env wrote.
func accountsFromEnv() (Accounts, int, error) {
	var v struct {
		Accounts
		Process int `json:"process"`
	}
	if err := json.Unmarshal([]byte(os.Getenv(AccountsEnv)), &v); err != nil {
		return Accounts{}, 0, fmt.Errorf("%s: %w", AccountsEnv, err)
	}
	return v.Accounts, v.Process, nil
}

// Plan returns the accounts that process p requests in round r, in the
// order it takes them up, with repeats: the same for the parent and the
// helper.
func (a Accounts) Plan(p, r int) []int {
	rng := rand.New(rand.NewPCG(a.Seed, uint64(p)<<32|uint64(r)))
	plan := make([]int, a.Requests)
	for i := range plan {
		plan[i] = rng.IntN(a.Accounts)
	}
	return plan
}

// touched returns, for round r, which accounts some process requests.
func (a Accounts) touched(r int) []bool {
	t := make([]bool, a.Accounts)
	for p := range a.Processes {
		for _, i := range a.Plan(p, r) {
			t[i] = true
		}
	}
	return t
}

// SeedAccounts issues a token of srv for every account of a and saves it
// through the account's Store, as a service does when its users connect
// their accounts.
func SeedAccounts(t testing.TB, srv *testserver.Server, a Accounts, store func(key string) refresher.Store) {
	t.Helper()
	ctx := t.Context()
	var wg sync.WaitGroup
	var errs [8]error
	for w := range len(errs) {
		wg.Go(func() {
			for i := w; i < a.Accounts && errs[w] == nil; i += len(errs) {
				tok, err := srv.IssueToken(testserver.DemoUser)
				if err == nil {
					err = store(AccountKey(i)).Save(ctx, tok)
				}
				errs[w] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatalf("seed the accounts: %v", err)
	}
}

// RunAccounts is the parent's side of an accounts fleet: it runs the rounds
// with the helpers hs (started with [Accounts.Env], playing
// [PlayAccounts]), checks after each round that each touched account was
// refreshed exactly once and no other, and at the end that no request
// failed and no refresh token was reused. It logs the figures in one line.
func RunAccounts(t *testing.T, srv *testserver.Server, a Accounts, hs []*fleet.Helper) {
	t.Helper()
	start := time.Now()
	var requests, failed, opened, want int64
	for r := 0; r <= a.Rounds; r++ {
		before := srv.Stats().Refreshes
		if r > 0 {
			srv.Clock().Advance(accountsStep) // every access token expires
		}
		counts := make([]int, a.Accounts)
		for p, line := range fleet.Round(hs, r) {
			var ok, bad, o int64
			var list string
			if _, err := fmt.Sscanf(line, "ok=%d failed=%d opened=%d refreshed=%s", &ok, &bad, &o, &list); err != nil {
				t.Fatalf("process %d: got %q, want the report of round %d (%v)", p, line, r, err)
			}
			requests, failed, opened = requests+ok+bad, failed+bad, opened+o
			if list == "-" {
				continue
			}
			for f := range strings.SplitSeq(list, ",") {
				i, err := strconv.Atoi(f)
				if err != nil || i < 0 || i >= a.Accounts {
					t.Fatalf("process %d, round %d: bad account %q", p, r, f)
				}
				counts[i]++
			}
		}
		touched := a.touched(r)
		var wrong []string
		var roundWant int64
		for i, n := range counts {
			w := 0
			if r > 0 && touched[i] {
				w = 1
			}
			roundWant += int64(w)
			if n != w {
				wrong = append(wrong, fmt.Sprintf("%s: %d, want %d", AccountKey(i), n, w))
			}
		}
		want += roundWant
		ok := assert.Empty(t, wrong, "round %d: refreshes per account", r)
		ok = assert.Equal(t, roundWant, srv.Stats().Refreshes-before, "round %d: refreshes received by the server", r) && ok
		if !ok || failed > 0 {
			break // the figures below tell the rest
		}
	}
	fleet.Stop(hs)

	st := srv.Stats()
	t.Logf("accounts=%d processes=%d rounds=%d requests=%d refreshes=%d (want %d) rotations=%d reuse_detections=%d failed=%d opened=%d elapsed=%v",
		a.Accounts, a.Processes, a.Rounds, requests, st.Refreshes, want, st.Rotations, st.ReuseDetections, failed, opened,
		time.Since(start).Round(time.Millisecond))
	assert.Equal(t, int64(a.Processes*(a.Rounds+1)*a.Requests), requests, "requests sent")
	assert.Zero(t, failed, "failed requests")
	assert.Zero(t, st.ReuseDetections, "reuse detections")
	assert.Zero(t, st.RefreshFailures, "failed refreshes")
	assert.Equal(t, want, st.Refreshes, "refreshes: want one per account and round that touched it after an expiry")
	assert.Equal(t, want, st.Rotations, "rotations")
}

// PlayAccounts is the helper's side of an accounts fleet, for the shape in
// [AccountsEnv]: one [http.Client] over [refresher.Sessions] whose open
// function gives each account a Source over store(key). For each line
// "round k" it sends the requests of its plan, Workers at a time, and
// answers "done k ok=N failed=N opened=N refreshed=I,J,…" (or
// "refreshed=-"), listing the accounts it refreshed in the round. It ends at
// the end of its input.
func PlayAccounts(in *bufio.Scanner, out io.Writer, store func(key string) refresher.Store) error {
	a, p, err := accountsFromEnv()
	if err != nil {
		return err
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 2 * a.Workers
	defer base.CloseIdleConnections()
	endpoint := &refresher.OAuth2Endpoint{
		Config: &oauth2.Config{
			ClientID: testserver.PublicClientID,
			Endpoint: oauth2.Endpoint{TokenURL: a.URL + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
		},
		HTTPClient: refresher.NewHTTPClient(refresher.ClientConfig{Base: base}),
	}

	var mu sync.Mutex // guards refreshed
	var refreshed []int
	var opened atomic.Int64
	var round atomic.Int64
	now := func() time.Time { return a.now(int(round.Load())) }
	var opts []refresher.SessionsOption
	if p == 0 && a.Resident > 0 {
		opts = append(opts, refresher.WithMaxSessions(a.Resident))
	}
	// The endpoint dates the tokens it gets by the real clock: date them
	// by the virtual one instead.
	virtual := refresher.EndpointFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		t, err := endpoint.Refresh(ctx, cur)
		if err == nil {
			t.Expiry = now().Add(AccountsAccessTTL)
		}
		return t, err
	})
	sessions := refresher.NewSessions(func(ctx context.Context, key string) (*refresher.Source, error) {
		i, err := strconv.Atoi(strings.TrimPrefix(key, "account-"))
		if err != nil {
			return nil, err
		}
		opened.Add(1)
		return refresher.NewSource(virtual,
			refresher.WithStore(store(key)),
			refresher.WithClock(now),
			refresher.WithRefreshHook(func(_, _ *oauth2.Token) {
				mu.Lock()
				refreshed = append(refreshed, i)
				mu.Unlock()
			})), nil
	}, opts...)
	client := transport.NewClient(sessions, transport.WithBase(base))

	return fleet.Rounds(in, out, func(r int) string {
		round.Store(int64(r))
		plan := a.Plan(p, r)
		var next, ok, failed atomic.Int64
		var wg sync.WaitGroup
		for range a.Workers {
			wg.Go(func() {
				for {
					n := int(next.Add(1)) - 1
					if n >= len(plan) {
						return
					}
					ctx, cancel := context.WithTimeout(refresher.WithSession(context.Background(), AccountKey(plan[n])), fleet.Timeout)
					err := GetMe(ctx, client, a.URL)
					cancel()
					if err != nil {
						failed.Add(1)
						fmt.Fprintf(os.Stderr, "round %d, %s: %v\n", r, AccountKey(plan[n]), err)
						continue
					}
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		mu.Lock()
		list := refreshed
		refreshed = nil
		mu.Unlock()
		s := "-"
		if len(list) > 0 {
			slices.Sort(list)
			f := make([]string, len(list))
			for k, i := range list {
				f[k] = strconv.Itoa(i)
			}
			s = strings.Join(f, ",")
		}
		return fmt.Sprintf("ok=%d failed=%d opened=%d refreshed=%s", ok.Load(), failed.Load(), opened.Swap(0), s)
	})
}
