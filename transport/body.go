package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
)

// teeBody is the body of the first attempt of a request without GetBody.
// It is sent as it is read, without reading ahead, so that a body produced
// slowly, or a full-duplex exchange whose body goes on while its answer
// comes in, works as through the base RoundTripper alone. It keeps a copy
// of what was read, up to a limit, for a replay.
//
// The caller's body is closed exactly once: by the base RoundTripper's
// Close, once the Transport has let the copy go; by the Transport when the
// base closed the tee before; or by the replay that took it over.
type teeBody struct {
	src   io.ReadCloser
	limit int64
	once  sync.Once // guards src.Close

	mu       sync.Mutex // guards the fields below
	buf      []byte     // what was read so far, while not over the limit
	over     bool       // more than limit bytes were read: no replay
	eof      bool       // src returned io.EOF: buf is the whole body
	reading  bool       // a Read of src is under way
	closed   bool       // the base RoundTripper closed the tee
	released bool       // the Transport let the copy go: Close closes src
	taken    bool       // a replay took src over
	aborted  error      // the request's context ended: what Read returns
}

var errTeeClosed = errors.New("transport: read of a request body after Close")

func (b *teeBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, errTeeClosed
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.src.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	if b.aborted != nil && err != nil {
		err = b.aborted // the caller's body was closed because the context ended
	}
	if n > 0 && !b.over && !b.released {
		if int64(len(b.buf)+n) > b.limit {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

// Close is the base RoundTripper's: it closes the caller's body unless the
// Transport may still replay from it.
func (b *teeBody) Close() error {
	b.mu.Lock()
	b.closed = true
	closeNow := b.released && !b.taken
	b.mu.Unlock()
	if closeNow {
		return b.closeSrc()
	}
	return nil
}

func (b *teeBody) closeSrc() error {
	var err error
	b.once.Do(func() { err = b.src.Close() })
	return err
}

// abort ends the body when the request's context ends: net/http waits for
// its write of the body to end before it returns, and a producer that
// stalls would hold it for ever. The caller's body is closed, so that a
// Read stalled on it returns err (the context's error), and nothing is
// replayed.
func (b *teeBody) abort(err error) {
	b.mu.Lock()
	b.over, b.buf, b.aborted = true, nil, err
	closeNow := !b.taken
	b.mu.Unlock()
	if closeNow {
		b.closeSrc()
	}
}

// abortWhenDone aborts b when ctx ends (see abort), until the returned
// function is called. (A function of its own, so that the closure does not
// move the caller's ctx to the heap on the fast path.)
func (b *teeBody) abortWhenDone(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, func() { b.abort(ctx.Err()) })
}

// release lets the copy go: the request will not be replayed.
func (b *teeBody) release() {
	b.mu.Lock()
	b.released, b.buf = true, nil
	closeNow := b.closed && !b.taken
	b.mu.Unlock()
	if closeNow {
		b.closeSrc()
	}
}

// replay returns the body of a replay and its length, or ok false when
// there can be none: the copy outgrew the limit, or the base RoundTripper
// is still reading the body (a stream that goes on while its answer is out;
// waiting for its end could wait for ever). A body that the base stopped
// reading before its end (it was answered early, or refused a 100-continue)
// is replayed from the copy and then from the caller's body. When ok is
// false, the copy has been let go.
func (b *teeBody) replay(size int64) (body io.ReadCloser, n int64, ok bool) {
	b.mu.Lock()
	switch {
	case b.over:
	case b.eof:
		body, n, ok = io.NopCloser(bytes.NewReader(b.buf)), int64(len(b.buf)), true
	case b.closed && !b.reading:
		b.taken = true
		body = &joinedBody{Reader: io.MultiReader(bytes.NewReader(b.buf), b.src), close: b.closeSrc}
		n, ok = size, true
	}
	b.mu.Unlock()
	if !ok || !b.taken {
		b.release() // the copy, if any, lives on in body
	}
	return body, n, ok
}

// joinedBody reads the copy and then the rest of the caller's body, and
// closes the caller's body.
type joinedBody struct {
	io.Reader
	close func() error
}

func (j *joinedBody) Close() error { return j.close() }

// replayFunc returns the body of a replay, for a request that can be sent
// again without a copy.
type replayFunc func() (io.ReadCloser, error)

// The replays of requests without a body: package-level, so that a
// body-less request allocates no closure.
var (
	replayNil    replayFunc = func() (io.ReadCloser, error) { return nil, nil }
	replayNoBody replayFunc = func() (io.ReadCloser, error) { return http.NoBody, nil }
)

// prepareBody returns the body of the first attempt and either how to get
// it again (a request without a body, or with GetBody) or the tee that
// keeps a copy of it.
func prepareBody(req *http.Request, limit int64) (first io.ReadCloser, again replayFunc, tee *teeBody) {
	switch {
	case req.Body == nil:
		return nil, replayNil, nil
	case req.Body == http.NoBody:
		return http.NoBody, replayNoBody, nil
	case req.GetBody != nil:
		return req.Body, req.GetBody, nil
	}
	tee = &teeBody{src: req.Body, limit: limit}
	return tee, nil, tee
}

// maxDetached bounds the rejected answer's body that detachBody keeps in
// memory.
const maxDetached = 64 << 10

// detachBody reads the body of a rejected answer into memory and closes
// it, so that its connection goes back to the pool before the refresh,
// which may need a connection from that same pool (a base RoundTripper
// with MaxConnsPerHost, a token endpoint on the same host): holding it
// could make a burst of 401s wait for the refresh that waits for them. The
// answer keeps its body, to be returned if no replay follows. Only a body
// of known length up to maxDetached is detached: one of unknown length may
// be a stream that never ends (a full-duplex exchange), and stays as it is.
func detachBody(resp *http.Response) {
	if resp.Body == nil || resp.Body == http.NoBody || resp.ContentLength < 0 || resp.ContentLength > maxDetached {
		return
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxDetached+1))
	if err != nil || len(buf) > maxDetached {
		resp.Body = &joinedBody{Reader: io.MultiReader(bytes.NewReader(buf), resp.Body), close: resp.Body.Close}
		return
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(buf))
}

// drainClose reads what is left of a response body, up to a bound, so that
// the connection can be reused, and closes it. A nil body (a RoundTripper
// may return one) is left alone.
func drainClose(body io.ReadCloser) {
	if body == nil {
		return
	}
	io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}
