package transport_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// guard bounds a test that would hang if the behaviour under test broke;
// it is no synchronisation: the test waits on done.
const guard = 10 * time.Second

// fullDuplexServer echoes each line of the request body as soon as it is
// read, checking the bearer token first.
func fullDuplexServer(t *testing.T, a *authServer) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+a.currentAccess() {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			io.WriteString(w, "echo "+sc.Text()+"\n")
			rc.Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestFullDuplexBodyIsSentAsItIsRead(t *testing.T) {
	a := newAuthServer(t)
	srv := fullDuplexServer(t, a)
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(a.issue())))

	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, srv.URL, pr)
	require.NoError(t, err)
	go io.WriteString(pw, "one\n") // the rest waits for the answer

	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := c.Do(req)
		if !assert.NoError(t, err) {
			pw.Close()
			return
		}
		defer resp.Body.Close()
		rd := bufio.NewReader(resp.Body)
		line, err := rd.ReadString('\n')
		assert.NoError(t, err)
		assert.Equal(t, "echo one\n", line)
		io.WriteString(pw, "two\n") // written only once the first echo came back
		line, err = rd.ReadString('\n')
		assert.NoError(t, err)
		assert.Equal(t, "echo two\n", line)
		pw.Close()
	}()
	select {
	case <-done:
	case <-time.After(guard):
		pw.CloseWithError(errors.New("test guard"))
		t.Fatal("the exchange deadlocked: the body was read ahead of sending")
	}
}

func TestStalledBodyIsBoundedByTheRequestContext(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(a.issue())))
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.url("/echo"), pr)
	require.NoError(t, err)
	go io.WriteString(pw, "the producer stalls after this")

	done := make(chan error, 1)
	go func() {
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(guard):
		pw.CloseWithError(errors.New("test guard"))
		t.Fatal("the request's context did not end the exchange")
	}
}

// chunkedBody is a body that the caller produces piece by piece.
func chunkedBody(chunks ...[]byte) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		for _, c := range chunks {
			if _, err := pw.Write(c); err != nil {
				return
			}
		}
		pw.Close()
	}()
	return pr
}

func TestStreamedBodyIsReplayedFromItsCopy(t *testing.T) {
	a := newAuthServer(t)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))))
	chunks := [][]byte{bytes.Repeat([]byte("a"), 10_000), bytes.Repeat([]byte("b"), 70_000), []byte("end")}
	whole := bytes.Join(chunks, nil)

	req, err := http.NewRequest(http.MethodPost, a.url("/echo"), chunkedBody(chunks...))
	require.NoError(t, err)
	require.Nil(t, req.GetBody)
	resp, err := c.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{sha(whole), sha(whole)}, a.bodyHashes(), "sent whole, then replayed whole")
}

func TestBodyStillStreamingWhenRejectedIsNotReplayed(t *testing.T) {
	a := newAuthServer(t)
	// The server rejects the token at once, without reading the body.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))))
	pr, pw := io.Pipe()
	req, err := http.NewRequest(http.MethodPost, srv.URL, pr)
	require.NoError(t, err)
	go io.WriteString(pw, "a stream whose producer waits for the answer\n")

	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := c.Do(req)
		pw.Close()
		if assert.NoError(t, err) {
			readAll(t, resp)
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		}
	}()
	select {
	case <-done:
	case <-time.After(guard):
		pw.CloseWithError(errors.New("test guard"))
		t.Fatal("the Transport waited for a body that waits for the answer")
	}
	assert.Equal(t, int64(1), a.calls.Load(), "the token is refreshed for the next request")
}

func TestBodyNotReadByTheFirstAttemptIsReplayedWhole(t *testing.T) {
	a := newAuthServer(t)
	var attempts atomic.Int64
	// The first attempt is refused without its body being read (as a
	// refused 100-continue), and its body closed.
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if attempts.Add(1) == 1 {
			r.Body.Close()
			return &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}, Body: http.NoBody, Request: r}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(stale(a))), transport.WithBase(base))
	body := []byte(strings.Repeat("x", 5000))
	cb := &countingBody{Reader: bytes.NewReader(body)}
	req, err := http.NewRequest(http.MethodPost, a.url("/echo"), cb)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	readAll(t, resp)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{sha(body)}, a.bodyHashes(), "the replay carried the whole body")
	assert.Equal(t, int32(1), cb.closes.Load(), "Close calls on the caller's body")
}

// nilBody401 answers 401 with a nil Body until the token is fresh, then
// passes the request on.
func nilBody401(a *authServer) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.Header.Get("Authorization") != "Bearer "+a.currentAccess() {
			if r.Body != nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			return &http.Response{StatusCode: http.StatusUnauthorized, Header: http.Header{}, Request: r}, nil
		}
		return http.DefaultTransport.RoundTrip(r)
	})
}

func TestNilResponseBodyIsHandledOnEveryPath(t *testing.T) {
	cases := []struct {
		name     string
		body     func() io.Reader
		limit    int64
		failing  bool // the refresh fails
		wantCode int
	}{
		{name: "replay without body", body: func() io.Reader { return nil }, wantCode: 200},
		{name: "replay of a plain reader", body: func() io.Reader { return io.MultiReader(strings.NewReader("b")) }, wantCode: 200},
		{name: "replay with GetBody", body: func() io.Reader { return strings.NewReader("c") }, wantCode: 200},
		{name: "body over the limit", body: func() io.Reader { return io.MultiReader(strings.NewReader("dddd")) }, limit: 2, wantCode: 401},
		{name: "refresh fails", body: func() io.Reader { return nil }, failing: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAuthServer(t)
			tok := stale(a)
			if tc.failing {
				tok = &oauth2.Token{AccessToken: "old", RefreshToken: "reused"}
			}
			opts := []transport.Option{transport.WithBase(nilBody401(a))}
			if tc.limit > 0 {
				opts = append(opts, transport.WithReplayLimit(tc.limit))
			}
			c := transport.NewClient(refresher.NewSource(a.endpoint(), refresher.WithToken(tok)), opts...)
			req, err := http.NewRequest(http.MethodPost, a.url("/echo"), tc.body())
			require.NoError(t, err)
			resp, err := c.Do(req)
			if tc.failing {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			readAll(t, resp)
			assert.Equal(t, tc.wantCode, resp.StatusCode)
		})
	}
}

func TestBaseReturningNoAnswerAndNoErrorFails(t *testing.T) {
	a := newAuthServer(t)
	base := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })
	c := transport.NewClient(refresher.NewSource(noEndpoint(t), refresher.WithToken(a.issue())), transport.WithBase(base))
	_, err := c.Get(a.url("/echo"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "neither an answer nor an error")
}
