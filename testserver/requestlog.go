package testserver

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Credential kinds recorded in [RequestRecord.Credential]. A request that
// presents several records them joined with "+", e.g.
// "basic-client+refresh_token".
const (
	CredNone          = "none"           // nothing presented
	CredBearer        = "bearer"         // Authorization: Bearer
	CredBasicClient   = "basic-client"   // Authorization: Basic (client authentication)
	CredAuthorization = "authorization"  // Authorization with another scheme
	CredCookie        = "cookie"         // cookie accessToken
	CredRefreshCookie = "refresh-cookie" // cookie refreshToken
	CredFormClient    = "form-client"    // client_secret form field
	CredClientID      = "client-id"      // client_id form field without a secret
	CredPassword      = "password"       // a user password (password grant, login)
	CredRefreshToken  = "refresh_token"  // a refresh token in the form or JSON body
	CredToken         = "token"          // the token form field of the revocation endpoint
)

// RequestRecord describes one request served by a [Server]. It never holds a
// secret, a password or a token: only which kind of credential was presented.
type RequestRecord struct {
	Time   time.Time `json:"time"` // arrival, by the server clock
	Method string    `json:"method"`
	Path   string    `json:"path"`
	// Credential names the credentials presented, see [CredBearer] and the
	// other Cred constants; [CredNone] if none.
	Credential string `json:"credential"`
	// Status is the status code answered, or 0 if the connection was
	// closed without an answer ([Server.DropAfterRotate]).
	Status int `json:"status"`
}

// MaxRequestLog is how many records [Server.Requests] keeps; older ones are
// discarded.
const MaxRequestLog = 100_000

// requestLog is the bounded log behind Server.Requests.
type requestLog struct {
	mu      sync.Mutex      // guards the fields below
	records []RequestRecord // a ring once full: records[next] is the oldest
	next    int
	total   int // records ever added

	changed notifier // notified after each add
}

func (l *requestLog) add(r RequestRecord) {
	l.mu.Lock()
	if len(l.records) < MaxRequestLog {
		l.records = append(l.records, r)
	} else {
		l.records[l.next] = r
		l.next = (l.next + 1) % MaxRequestLog
	}
	l.total++
	l.mu.Unlock()
	l.changed.notify()
}

// WaitRequests blocks until at least n requests have been answered (or
// dropped without an answer) since the server was created, that is until n
// records have been added to the log, or until ctx is done. A request is
// logged just before its answer is sent, or, when it gets none, after its
// connection is closed.
func (s *Server) WaitRequests(ctx context.Context, n int) error {
	l := &s.reqLog
	for {
		changed := l.changed.wait()
		l.mu.Lock()
		total := l.total
		l.mu.Unlock()
		if total >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Requests returns a copy of the request log, oldest first.
func (s *Server) Requests() []RequestRecord {
	recs, _ := s.reqLog.last(-1)
	return recs
}

// last returns a copy of the n newest records (all of them if n < 0),
// oldest first, and how many records were ever added.
func (l *requestLog) last(n int) ([]RequestRecord, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := len(l.records)
	if n < 0 || n > size {
		n = size
	}
	out := make([]RequestRecord, n)
	for i := range n {
		out[i] = l.records[(l.next+size-n+i)%size]
	}
	return out, l.total
}

// credNote collects the credential kinds of one request. Only the handler's
// goroutine touches it.
type credNote struct{ kinds []string }

type credNoteKey struct{}

// noteCred records that r presented a credential of the given kind.
func noteCred(r *http.Request, kind string) {
	if n, ok := r.Context().Value(credNoteKey{}).(*credNote); ok && !slices.Contains(n.kinds, kind) {
		n.kinds = append(n.kinds, kind)
	}
}

func (n *credNote) String() string {
	if len(n.kinds) == 0 {
		return CredNone
	}
	return strings.Join(n.kinds, "+")
}

// noteHeaderCreds records the credentials presented in r's headers.
func noteHeaderCreds(r *http.Request) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, _, _ := strings.Cut(h, " ")
		switch strings.ToLower(scheme) {
		case "bearer":
			noteCred(r, CredBearer)
		case "basic":
			noteCred(r, CredBasicClient)
		default:
			noteCred(r, CredAuthorization)
		}
	}
	if _, err := r.Cookie(cookieAccess); err == nil {
		noteCred(r, CredCookie)
	}
	if _, err := r.Cookie(cookieRefresh); err == nil {
		noteCred(r, CredRefreshCookie)
	}
}

// recorder captures the status written through it and calls done once,
// just before the status goes out, so that the request is counted and
// logged before its client can see the answer.
type recorder struct {
	http.ResponseWriter
	status int
	done   func(status int)
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
		w.done(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets [http.ResponseController] reach the connection.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// record wraps h: it caps the body, notes the credentials, counts 401s and
// logs the request.
func (s *Server) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.enter() {
			http.Error(w, "testserver: closed", http.StatusServiceUnavailable)
			return
		}
		defer s.inflight.Done()
		rec := RequestRecord{Time: s.clock.Now(), Method: r.Method, Path: r.URL.Path}
		if s.cfg.MaxBodyBytes > 0 {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		note := new(credNote)
		r = r.WithContext(context.WithValue(r.Context(), credNoteKey{}, note))
		noteHeaderCreds(r)
		logged := false
		done := func(status int) {
			logged = true
			rec.Credential = note.String()
			rec.Status = status
			if status == http.StatusUnauthorized {
				s.counters.unauthorized.Add(1)
			}
			s.reqLog.add(rec)
		}
		rw := &recorder{ResponseWriter: w, done: done}
		defer func() {
			// No answer: dropped, or aborted with http.ErrAbortHandler.
			if !logged {
				done(0)
			}
		}()
		h.ServeHTTP(rw, r)
	})
}
