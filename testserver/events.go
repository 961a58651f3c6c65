package testserver

import (
	"sync"
	"time"
)

// Kinds of [event], as the live page shows them.
const (
	eventLogin        = "login"         // a family started
	eventRotation     = "rotation"      // a refresh token rotated
	eventGrace        = "grace"         // a rotated token accepted within ReuseGrace
	eventReuse        = "reuse"         // a rotated token presented: family revoked
	eventRevoke       = "revoke"        // a family revoked by logout or RFC 7009
	eventRevokeAll    = "revoke-all"    // RevokeAll
	eventExpireAccess = "expire-access" // ExpireAccessTokens
	eventFault        = "fault"         // a fault injection setting changed
	eventClock        = "clock"         // the clock moved through the control API
)

// maxEvents is how many events the server keeps for the live page.
const maxEvents = 500

// event is one line of the live page's feed. It holds no secret: families
// are named by their ID, tokens by their generation in the family.
type event struct {
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"` // by the server clock
	Kind   string    `json:"kind"`
	Family string    `json:"family,omitempty"`
	User   string    `json:"user,omitempty"`
	Gen    int       `json:"gen,omitempty"` // generation of the token presented
	Detail string    `json:"detail"`
}

// eventLog is the bounded feed of events, newest last.
type eventLog struct {
	mu     sync.Mutex // guards the fields below
	events []event    // a ring once full: events[next] is the oldest
	next   int
	seq    int64 // events ever added

	changed notifier // notified after each add
}

func (l *eventLog) add(e event) {
	l.mu.Lock()
	l.seq++
	e.Seq = l.seq
	if len(l.events) < maxEvents {
		l.events = append(l.events, e)
	} else {
		l.events[l.next] = e
		l.next = (l.next + 1) % maxEvents
	}
	l.mu.Unlock()
	l.changed.notify()
}

// last returns up to n of the newest events, oldest first.
func (l *eventLog) last(n int) []event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]event, 0, min(n, len(l.events)))
	for i := max(len(l.events)-n, 0); i < len(l.events); i++ {
		out = append(out, l.events[(l.next+i)%len(l.events)])
	}
	return out
}

// emit adds an event, dated by the server clock.
func (s *Server) emit(e event) {
	e.Time = s.clock.Now()
	s.events.add(e)
}
