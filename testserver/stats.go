package testserver

import "sync/atomic"

// Stats are the counters of a [Server], as returned by [Server.Stats] and,
// in JSON, by the control API's stats call.
type Stats struct {
	// Logins counts successful logins: password grants, Express API logins
	// and calls to [Server.IssueToken].
	Logins int64 `json:"logins"`
	// Refreshes counts refresh requests received, of either contract,
	// whatever their outcome.
	Refreshes int64 `json:"refreshes"`
	// Rotations counts successful rotations (including those whose answer
	// was dropped by [Server.DropAfterRotate]).
	Rotations int64 `json:"rotations"`
	// ReuseDetections counts presentations of a rotated refresh token that
	// revoked a family.
	ReuseDetections int64 `json:"reuse_detections"`
	// Unauthorized counts 401 answers, from resources and token endpoints
	// alike.
	Unauthorized int64 `json:"unauthorized"`
	// RefreshFailures counts refresh requests answered with an error, for
	// any reason (injected, invalid or reused token, bad client, bad
	// request).
	RefreshFailures int64 `json:"refresh_failures"`
	// InjectedFailures counts failures injected by [Server.FailRefreshes].
	InjectedFailures int64 `json:"injected_failures"`
	// Drops counts connections closed by [Server.DropAfterRotate].
	Drops int64 `json:"drops"`
}

// counters are the live form of Stats.
type counters struct {
	logins, refreshes, rotations, reuses, unauthorized, refreshFailures, injected, drops atomic.Int64
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	c := &s.counters
	return Stats{
		Logins:           c.logins.Load(),
		Refreshes:        c.refreshes.Load(),
		Rotations:        c.rotations.Load(),
		ReuseDetections:  c.reuses.Load(),
		Unauthorized:     c.unauthorized.Load(),
		RefreshFailures:  c.refreshFailures.Load(),
		InjectedFailures: c.injected.Load(),
		Drops:            c.drops.Load(),
	}
}
