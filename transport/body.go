package transport

import (
	"bytes"
	"io"
	"net/http"
)

// replayer returns a fresh copy of a request body for a replay.
type replayer func() (io.ReadCloser, error)

// The replayers of requests without a body: package-level, so that a
// body-less request allocates no closure.
var (
	replayNil    replayer = func() (io.ReadCloser, error) { return nil, nil }
	replayNoBody replayer = func() (io.ReadCloser, error) { return http.NoBody, nil }
)

// prepareBody returns the body for the first attempt and, when the body can
// be sent again, a replayer. A body without GetBody is buffered up to limit
// bytes; a larger one is sent once, unbuffered beyond the limit, and has no
// replayer. On error the request body has been closed.
func prepareBody(req *http.Request, limit int64) (first io.ReadCloser, again replayer, size int64, err error) {
	switch {
	case req.Body == nil:
		return nil, replayNil, req.ContentLength, nil
	case req.Body == http.NoBody:
		return http.NoBody, replayNoBody, req.ContentLength, nil
	case req.GetBody != nil:
		return req.Body, req.GetBody, req.ContentLength, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		req.Body.Close()
		return nil, nil, 0, err
	}
	if int64(len(buf)) > limit {
		// Too large to replay: send what was read, then the rest.
		return &joinedBody{Reader: io.MultiReader(bytes.NewReader(buf), req.Body), Closer: req.Body}, nil, req.ContentLength, nil
	}
	if err := req.Body.Close(); err != nil {
		return nil, nil, 0, err
	}
	again = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	first, _ = again()
	return first, again, int64(len(buf)), nil
}

// joinedBody reads the buffered prefix and then the rest of the original
// body, and closes the original.
type joinedBody struct {
	io.Reader
	io.Closer
}

// drainClose reads what is left of a response body, up to a bound, so that
// the connection can be reused, and closes it.
func drainClose(body io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}
