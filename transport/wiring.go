package transport

import (
	"errors"
	"net/http"
	"reflect"
)

// ErrNilSource is returned by a Transport that has no Source: the zero
// Transport, or a literal without one.
var ErrNilSource = errors.New("transport: Transport.Source is nil (make the Transport with transport.New, or set its Source)")

// Errors of a miswired cookie session, returned by every request of a
// Transport made with them: each one would otherwise make every request
// rotate the refresh token and fail.
var (
	// ErrRefreshJarMissing: the Transport carries the session in a jar
	// ([WithCookieJar]) but the Source's refresh call has none, so a
	// refresh neither sends the session's cookies nor stores the new ones.
	ErrRefreshJarMissing = errors.New("transport: WithCookieJar makes a cookie session, but the Source's refresh endpoint has no cookie jar, so a refresh cannot update the session's cookies: set the endpoint's jar (refresher.JSONEndpoint.Jar, or a CookieJar method on an Endpoint of one's own) and drop WithCookieJar, which then follows it")
	// ErrJarMismatch: the Transport's jar ([WithCookieJar]) is not the one
	// the Source's refresh call uses.
	ErrJarMismatch = errors.New("transport: the jar given to WithCookieJar is not the jar of the Source's refresh endpoint, so the refreshed cookies never reach the requests: name the jar once, as the endpoint's jar (refresher.JSONEndpoint.Jar), and drop WithCookieJar")
)

// jarReporter is a Source that tells which cookie jar its refresh call
// uses (nil: none), as [*refresher.Source] does.
type jarReporter interface {
	CookieJar() http.CookieJar
}

// wireJar reconciles the Transport's jar with the one of its Source's
// refresh call. A Source whose refresh call uses a jar makes the session a
// cookie session in that jar. A Transport told to use a jar whose Source
// reports none, or another one, is miswired. A Source that does not report
// its jar is taken at its word: WithCookieJar decides.
func (t *Transport) wireJar() error {
	r, ok := t.Source.(jarReporter)
	if !ok {
		return nil
	}
	refreshJar := r.CookieJar()
	switch {
	case t.jar == nil:
		t.jar = refreshJar
	case refreshJar == nil:
		return ErrRefreshJarMissing
	case !sameJar(t.jar, refreshJar):
		return ErrJarMismatch
	}
	return nil
}

// sameJar reports whether a and b are the same jar. Jars of a type that
// cannot be compared are the same only if both are nil.
func sameJar(a, b http.CookieJar) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	if reflect.TypeOf(a) != reflect.TypeOf(b) || !reflect.TypeOf(a).Comparable() {
		return false
	}
	return a == b
}
