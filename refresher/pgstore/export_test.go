package pgstore

import "github.com/autorefresh/autorefresh/refresher"

// LeaseBackendPID returns the process ID of the PostgreSQL backend whose
// session holds l, a lease of a Store.
func LeaseBackendPID(l refresher.Lease) uint32 {
	ls := l.(*lease)
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.conn.Conn().PgConn().PID()
}
