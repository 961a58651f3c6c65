//go:build !linux

package pgstore_test

// startPostgres starts no server outside Linux: set dsnEnv instead.
func startPostgres() (dsn string, stop func(), unavailable string) {
	return "", nil, "the tests start PostgreSQL on Linux only; set " + dsnEnv + " to a server to use"
}
