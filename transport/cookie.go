package transport

import "net/http"

// WithCookieJar makes the Transport carry the session in the cookies of
// jar, the way a browser carries httpOnly session cookies: no Authorization
// header is attached, and every attempt (the first one and the replay after
// a refresh) carries the jar's cookies as they are at the moment it is sent.
//
// This matters because [http.Client] adds the jar's cookies to a request
// before calling RoundTrip: without it, a replay would carry the access
// token cookie that was just rejected, not the one the refresh set.
//
// It is rarely needed: name the jar once, as the refresh endpoint's, and
// [New] follows it (a Source that reports its refresh call's jar, as
// [*refresher.Source] does, makes a cookie session in that jar), while
// [NewClient] also sets it as the client's Jar:
//
//	jar, _ := cookiejar.New(nil)
//	ep := refresher.ExpressEndpoint(baseURL)
//	ep.Jar = jar // the refresh call, the Transport and the client all use it
//	client := transport.NewClient(refresher.NewSource(ep, refresher.WithToken(tok)))
//
// WithCookieJar remains for a Source of one's own that does not report its
// jar. Given with a Source that reports another jar, or none, the Transport
// fails every request with [ErrJarMismatch] or [ErrRefreshJarMissing]: a
// refresh that cannot update the jar would rotate the refresh token on
// every request and heal none.
func WithCookieJar(jar http.CookieJar) Option {
	return func(t *Transport) { t.jar = jar }
}

// applyJar sets r's cookies to the jar's current values: a cookie of the
// request that the jar also holds takes the jar's value, cookies the jar
// does not hold are kept, and the jar's other cookies for r.URL are added.
// r must be a copy owned by the Transport.
func applyJar(r *http.Request, jar http.CookieJar) {
	current := jar.Cookies(r.URL)
	if len(current) == 0 {
		return
	}
	fresh := make(map[string]string, len(current))
	for _, c := range current {
		fresh[c.Name] = c.Value
	}
	sent := r.Cookies()
	r.Header.Del("Cookie")
	for _, c := range sent {
		if v, ok := fresh[c.Name]; ok {
			c.Value = v
			delete(fresh, c.Name)
		}
		r.AddCookie(c)
	}
	for _, c := range current {
		if _, ok := fresh[c.Name]; ok {
			r.AddCookie(c)
		}
	}
}
