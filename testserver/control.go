package testserver

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The control API drives a Server over HTTP, for a server in another
// process: every call below maps to the Go method of the same meaning.
// Paths are relative to [PathControl]; bodies are JSON; an empty body takes
// the defaults. Answers are 204, or JSON; errors are JSON {"error": "..."}
// with 400 (bad JSON, unknown field, bad value), 401 (missing admin token),
// 404, 405 (wrong method) or 409 (clock/advance on a clock not frozen).
//
//	POST expire-access-tokens                          ExpireAccessTokens
//	POST fail-refreshes {"count":1,"status":503,"retry_after_seconds":1}
//	                                                   FailRefreshes
//	POST delay-refreshes {"delay_ms":100}              DelayRefreshes (0 ends it)
//	POST hold-refreshes                                HoldRefreshes
//	POST release-refreshes                             releases those holds
//	POST drop-after-rotate {"count":1}                 DropAfterRotate
//	POST revoke-all                                    RevokeAll
//	POST clock/advance {"seconds":30}                  Clock().Advance, frozen clock only
//	GET  stats                                         Stats
//	GET  log[?limit=N]                                 Requests (the newest N)
//	GET  state                                         everything the live page shows
//	GET  events                                        state as server-sent events
//	GET  (PathControl itself)                          the live page
//
// Control requests are not counted in [Server.Stats] nor kept in the
// request log, which describe the clients under test.

//go:embed control.html
var controlPage []byte

// maxControlBody caps the body of a control request.
const maxControlBody = 64 << 10

// maxDelay bounds delay-refreshes: longer delays are mistakes of unit.
const maxDelay = 10 * time.Minute

// controlRoute is one call of the control API.
type controlRoute struct {
	method string
	serve  func(w http.ResponseWriter, r *http.Request)
}

// control returns the handler of the control API, mounted at PathControl.
func (s *Server) control() http.Handler {
	routes := map[string]controlRoute{
		"":                     {http.MethodGet, s.servePage},
		"expire-access-tokens": {http.MethodPost, s.ctlExpireAccessTokens},
		"fail-refreshes":       {http.MethodPost, s.ctlFailRefreshes},
		"delay-refreshes":      {http.MethodPost, s.ctlDelayRefreshes},
		"hold-refreshes":       {http.MethodPost, s.ctlHoldRefreshes},
		"release-refreshes":    {http.MethodPost, s.ctlReleaseRefreshes},
		"drop-after-rotate":    {http.MethodPost, s.ctlDropAfterRotate},
		"revoke-all":           {http.MethodPost, s.ctlRevokeAll},
		"clock/advance":        {http.MethodPost, s.ctlAdvanceClock},
		"stats":                {http.MethodGet, s.ctlStats},
		"log":                  {http.MethodGet, s.ctlLog},
		"state":                {http.MethodGet, s.ctlState},
		"events":               {http.MethodGet, s.ctlEvents},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.enter() {
			controlError(w, http.StatusServiceUnavailable, "the server is closed")
			return
		}
		defer s.inflight.Done()
		w.Header().Set("Cache-Control", "no-store")
		if !s.controlAuthorized(r) {
			w.Header().Add("WWW-Authenticate", `Bearer realm="testserver control"`)
			w.Header().Add("WWW-Authenticate", `Basic realm="testserver control"`)
			controlError(w, http.StatusUnauthorized, "the control API needs Authorization: Bearer <admin token>")
			return
		}
		route, ok := routes[strings.TrimPrefix(r.URL.Path, PathControl)]
		if !ok {
			controlError(w, http.StatusNotFound, "no control call "+r.URL.Path)
			return
		}
		if r.Method != route.method && (route.method != http.MethodGet || r.Method != http.MethodHead) {
			allow := route.method
			if allow == http.MethodGet {
				allow += ", " + http.MethodHead
			}
			w.Header().Set("Allow", allow)
			controlError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, route.method))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxControlBody)
		route.serve(w, r)
	})
}

// controlAuthorized reports whether r may use the control API: always when
// there is no admin token, else with the token as a Bearer token or as the
// password of HTTP Basic (what a browser sends after its prompt). The
// token is compared in constant time.
func (s *Server) controlAuthorized(r *http.Request) bool {
	want := s.cfg.AdminToken
	if want == "" {
		return true
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return secretEqual(strings.TrimSpace(tok), want)
	}
	if _, pass, ok := r.BasicAuth(); ok {
		return secretEqual(pass, want)
	}
	return false
}

// controlError answers {"error": msg} with status.
func controlError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// decodeControl decodes the JSON body of r into v; an empty body leaves v
// as it is. Unknown fields and trailing data are errors. On failure it
// answers 400 (413 for a body over the cap) and returns false.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if tooLarge(err) {
			controlError(w, http.StatusRequestEntityTooLarge, "request body too large")
		} else {
			controlError(w, http.StatusBadRequest, "reading the body failed")
		}
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		controlError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		controlError(w, http.StatusBadRequest, "invalid JSON body: data after the JSON object")
		return false
	}
	return true
}

// noContent answers 204.
func noContent(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }

func (s *Server) ctlExpireAccessTokens(w http.ResponseWriter, r *http.Request) {
	if !decodeControl(w, r, &struct{}{}) {
		return
	}
	s.ExpireAccessTokens()
	noContent(w)
}

// failRefreshesRequest is the body of fail-refreshes.
type failRefreshesRequest struct {
	Count             *int    `json:"count"`  // default 1; 0 cancels
	Status            *int    `json:"status"` // default 503
	RetryAfterSeconds float64 `json:"retry_after_seconds"`
}

func (s *Server) ctlFailRefreshes(w http.ResponseWriter, r *http.Request) {
	var req failRefreshesRequest
	if !decodeControl(w, r, &req) {
		return
	}
	n, status := 1, http.StatusServiceUnavailable
	if req.Count != nil {
		n = *req.Count
	}
	if req.Status != nil {
		status = *req.Status
	}
	switch {
	case n < 0:
		controlError(w, http.StatusBadRequest, "count must be 0 (cancel) or more, got "+strconv.Itoa(n))
	case status < 400 || status > 599:
		controlError(w, http.StatusBadRequest, "status must be an error status from 400 to 599, got "+strconv.Itoa(status))
	case req.RetryAfterSeconds < 0:
		controlError(w, http.StatusBadRequest, "retry_after_seconds must be 0 (none) or more")
	default:
		s.FailRefreshes(n, status, time.Duration(req.RetryAfterSeconds*float64(time.Second)))
		noContent(w)
	}
}

func (s *Server) ctlDelayRefreshes(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DelayMS *int64 `json:"delay_ms"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	switch {
	case req.DelayMS == nil:
		controlError(w, http.StatusBadRequest, `delay_ms is required, e.g. {"delay_ms":100}; 0 ends the delay`)
	case *req.DelayMS < 0 || *req.DelayMS > maxDelay.Milliseconds():
		controlError(w, http.StatusBadRequest, fmt.Sprintf("delay_ms must be from 0 to %d, got %d", maxDelay.Milliseconds(), *req.DelayMS))
	default:
		s.DelayRefreshes(time.Duration(*req.DelayMS) * time.Millisecond)
		noContent(w)
	}
}

func (s *Server) ctlHoldRefreshes(w http.ResponseWriter, r *http.Request) {
	if !decodeControl(w, r, &struct{}{}) {
		return
	}
	release := s.HoldRefreshes()
	s.holdsMu.Lock()
	s.holds = append(s.holds, release)
	s.holdsMu.Unlock()
	noContent(w)
}

func (s *Server) ctlReleaseRefreshes(w http.ResponseWriter, r *http.Request) {
	if !decodeControl(w, r, &struct{}{}) {
		return
	}
	s.holdsMu.Lock()
	holds := s.holds
	s.holds = nil
	s.holdsMu.Unlock()
	for _, release := range holds {
		release()
	}
	noContent(w)
}

func (s *Server) ctlDropAfterRotate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Count *int `json:"count"` // default 1; 0 cancels
	}
	if !decodeControl(w, r, &req) {
		return
	}
	n := 1
	if req.Count != nil {
		n = *req.Count
	}
	if n < 0 {
		controlError(w, http.StatusBadRequest, "count must be 0 (cancel) or more, got "+strconv.Itoa(n))
		return
	}
	s.DropAfterRotate(n)
	noContent(w)
}

func (s *Server) ctlRevokeAll(w http.ResponseWriter, r *http.Request) {
	if !decodeControl(w, r, &struct{}{}) {
		return
	}
	s.RevokeAll()
	noContent(w)
}

func (s *Server) ctlAdvanceClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Seconds *float64 `json:"seconds"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	switch {
	case req.Seconds == nil:
		controlError(w, http.StatusBadRequest, `seconds is required, e.g. {"seconds":30}`)
		return
	case *req.Seconds <= 0 || *req.Seconds > 1e9:
		controlError(w, http.StatusBadRequest, fmt.Sprintf("seconds must be more than 0 (and at most 1e9), got %v", *req.Seconds))
		return
	case !s.clock.Frozen():
		controlError(w, http.StatusConflict, "the clock follows real time; start the server with -frozen-clock (or Config.Clock = testserver.NewClock(...)) to move it")
		return
	}
	d := time.Duration(*req.Seconds * float64(time.Second))
	s.clock.Advance(d)
	now := s.clock.Now()
	s.emit(event{Kind: eventClock, Detail: "clock advanced by " + d.String()})
	writeJSON(w, http.StatusOK, map[string]any{"now": now})
}

func (s *Server) ctlStats(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}

func (s *Server) ctlLog(w http.ResponseWriter, r *http.Request) {
	n := -1
	if v := r.URL.Query().Get("limit"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 0 {
			controlError(w, http.StatusBadRequest, "limit must be a count, got "+strconv.Quote(v))
			return
		}
	}
	recs, total := s.reqLog.last(n)
	writeJSON(w, http.StatusOK, map[string]any{"total": total, "requests": recs})
}

// controlState is everything the live page shows.
type controlState struct {
	Now           time.Time       `json:"now"`
	FrozenClock   bool            `json:"frozen_clock"`
	Stats         Stats           `json:"stats"`
	Faults        faultState      `json:"faults"`
	Families      []familyInfo    `json:"families"`
	Events        []event         `json:"events"`
	Requests      []RequestRecord `json:"requests"`
	RequestsTotal int             `json:"requests_total"`
}

// Sizes of the lists in controlState.
const (
	stateFamilies = 50
	stateEvents   = 100
	stateRequests = 50
)

func (s *Server) state() controlState {
	reqs, total := s.reqLog.last(stateRequests)
	return controlState{
		Now:           s.clock.Now(),
		FrozenClock:   s.clock.Frozen(),
		Stats:         s.Stats(),
		Faults:        s.faultState(),
		Families:      s.store.snapshot(stateFamilies),
		Events:        s.events.last(stateEvents),
		Requests:      reqs,
		RequestsTotal: total,
	}
}

func (s *Server) ctlState(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.state())
}

// eventInterval is the least time between two messages of an event stream.
const eventInterval = 100 * time.Millisecond

// ctlEvents streams the state as server-sent events: one message at once,
// then one after each change (at most one per eventInterval), until the
// client goes away or the server shuts down.
func (s *Server) ctlEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	ctx := r.Context()
	for {
		// Take the channels before reading the state: no change is missed.
		logged, evented, faulted := s.reqLog.changed.wait(), s.events.changed.wait(), s.faults.changed.wait()
		b, err := json.Marshal(s.state())
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-logged:
		case <-evented:
		case <-faulted:
		case <-ctx.Done():
			return
		case <-s.stopping:
			return
		}
		t := time.NewTimer(eventInterval)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.stopping:
			t.Stop()
			return
		}
	}
}

// servePage serves the live page.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(controlPage)
}
