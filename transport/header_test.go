package transport_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/autorefresh/autorefresh/transport"
	"golang.org/x/oauth2"
)

// pickKey is the context key naming the token a pickingSource returns.
type pickKey struct{}

// pickingSource returns the token that the request's context names, so that
// a test decides which token each request gets.
type pickingSource struct{ toks []*oauth2.Token }

func (s *pickingSource) Token(ctx context.Context) (*oauth2.Token, error) {
	i, _ := ctx.Value(pickKey{}).(int)
	return s.toks[i], nil
}

func (s *pickingSource) Refresh(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	return nil, errors.New("no refresh in this test")
}

// headerCheck answers 200 when a request carries the Authorization value
// that its context's pick expects, and fails otherwise.
type headerCheck struct{ want []string }

var okResponse = &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody}

func (c *headerCheck) RoundTrip(r *http.Request) (*http.Response, error) {
	i, _ := r.Context().Value(pickKey{}).(int)
	if got := r.Header.Get("Authorization"); got != c.want[i] {
		return nil, fmt.Errorf("got Authorization %q, want %q", got, c.want[i])
	}
	return okResponse, nil
}

func pickRequest(t testing.TB, i int) *http.Request {
	ctx := context.WithValue(context.Background(), pickKey{}, i)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1/api/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestARequestWithAValidTokenAllocatesNoMoreThanABareHeader(t *testing.T) {
	tok := benchToken()
	base := &headerCheck{want: []string{"Bearer " + benchAccess}}
	ours := transport.New(&pickingSource{toks: []*oauth2.Token{tok}}, transport.WithBase(base))
	bare := &staticAuth{base: base, value: "Bearer " + benchAccess}
	req := pickRequest(t, 0)

	allocs := func(rt http.RoundTripper) float64 {
		return testing.AllocsPerRun(200, func() {
			if _, err := rt.RoundTrip(req); err != nil {
				t.Fatal(err)
			}
		})
	}
	a, b := allocs(ours), allocs(bare)
	if a > b {
		t.Errorf("a request through the Transport allocates %v times, one through a bare header %v", a, b)
	}
}

func TestEachRequestCarriesTheHeaderOfItsOwnToken(t *testing.T) {
	toks := []*oauth2.Token{
		{AccessToken: "A1", TokenType: "bearer"},
		{AccessToken: "B2", TokenType: "MAC"}, // not DPoP: that needs WithDPoP (see dpop_test.go)
		{AccessToken: "C3"},
		{AccessToken: "A1", TokenType: "Bearer"}, // same value, another token
	}
	want := []string{"Bearer A1", "MAC B2", "Bearer C3", "Bearer A1"}
	rt := transport.New(&pickingSource{toks: toks}, transport.WithBase(&headerCheck{want: want}))

	// In turn: each change of token changes the header.
	for _, i := range []int{0, 0, 1, 2, 2, 3, 0, 1} {
		if _, err := rt.RoundTrip(pickRequest(t, i)); err != nil {
			t.Fatal(err)
		}
	}

	// At once: goroutines with different tokens never get another's header.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 500 {
				if _, err := rt.RoundTrip(pickRequest(t, (g+n)%len(toks))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
