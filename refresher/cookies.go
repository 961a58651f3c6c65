package refresher

import (
	"net/http"
	"reflect"
)

// CookieJar returns the cookie jar that the Source's refresh call sends and
// updates, when its Endpoint has one (a [JSONEndpoint] with a Jar, or an
// Endpoint of one's own with a CookieJar method, such as a type embedding
// *JSONEndpoint), and nil otherwise.
//
// A jar makes the session a cookie session: the transport package's
// New and NewClient read it, so that the Transport re-applies the jar's
// cookies to every attempt and the [http.Client] keeps its cookies in the
// same jar. A Transport told to carry the session in a jar
// (transport.WithCookieJar) whose Source reports another jar, or none,
// fails its requests with an error naming the missing piece instead of
// refreshing on every request.
func (s *Source) CookieJar() http.CookieJar {
	if s == nil {
		return nil
	}
	if j, ok := s.endpoint.(interface{ CookieJar() http.CookieJar }); ok {
		return j.CookieJar()
	}
	return nil
}

// CookieJar returns the jar that e's refresh call uses: Jar, else the
// HTTPClient's Jar, else nil.
func (e *JSONEndpoint) CookieJar() http.CookieJar {
	if e.Jar != nil {
		return e.Jar
	}
	if e.HTTPClient != nil {
		return e.HTTPClient.Jar
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
