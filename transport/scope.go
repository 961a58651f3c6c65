package transport

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// This file decides where a token may go. A request carries the token only
// if every rule allows it:
//
//   - redirects (http.Client calls RoundTrip again for each hop, with
//     req.Response set): every hop so far went to the original request's
//     host or one of its subdomains (net/http's rule for the Authorization
//     header), and none downgraded https to http;
//   - the allow-list, when set: the request's host or origin is listed;
//   - plain http: the host is loopback, or WithInsecureHTTP was given.
//
// A request refused by the first two rules is sent without a token; one
// refused by the last fails with ErrInsecureHTTP and is not sent.

// ErrInsecureHTTP is returned (wrapped) for a request that would carry a
// token over plain http to a host that is not loopback. The request is not
// sent. [WithInsecureHTTP] allows such requests.
var ErrInsecureHTTP = errors.New("transport: refusing to send a token over plain http to a host that is not loopback (use https, or WithInsecureHTTP)")

// redirectKeepsToken reports whether req may carry the token as far as
// redirects go: it is not a redirect, or every hop of its redirect chain
// stayed on the original request's host (or its subdomains) without going
// from https to http. Once a chain leaves the host, the token is not
// attached again, even if it comes back (as net/http strips the
// Authorization header for the rest of the chain). A chain that cannot be
// followed back to its first request keeps no token.
func redirectKeepsToken(req *http.Request) bool {
	if req.Response == nil {
		return true
	}
	var hops []*url.URL
	r := req
	for r.Response != nil {
		hops = append(hops, r.URL)
		if r.Response.Request == nil || r.Response.Request.URL == nil {
			return false
		}
		r = r.Response.Request
	}
	first := r.URL
	if first == nil {
		return false
	}
	host := canonicalHost(first.Hostname())
	for _, u := range hops {
		if !isDomainOrSubdomain(canonicalHost(u.Hostname()), host) {
			return false
		}
		if strings.EqualFold(first.Scheme, "https") && !strings.EqualFold(u.Scheme, "https") {
			return false
		}
	}
	return true
}

// isDomainOrSubdomain reports whether sub is parent or a subdomain of it.
// Both must be canonical (see canonicalHost).
func isDomainOrSubdomain(sub, parent string) bool {
	if sub == parent {
		return true
	}
	if parent == "" || strings.ContainsAny(sub, ":%") || !isASCII(sub) || !isASCII(parent) {
		return false
	}
	return strings.HasSuffix(sub, parent) && len(sub) > len(parent) && sub[len(sub)-len(parent)-1] == '.'
}

// canonicalHost lower-cases an ASCII host name and writes an IP address in
// its canonical form. A non-ASCII name is returned unchanged: it then only
// matches itself, byte for byte.
func canonicalHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	if !isASCII(h) {
		return h
	}
	return strings.ToLower(h)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isLoopback reports whether host (without port) is "localhost" or an IP
// address in 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// checkScheme returns an error wrapping ErrInsecureHTTP if a token may not
// be sent to u: only https, or any scheme to a loopback host, is allowed,
// unless insecure is set.
func checkScheme(u *url.URL, insecure bool) error {
	if insecure || strings.EqualFold(u.Scheme, "https") || isLoopback(u.Hostname()) {
		return nil
	}
	return fmt.Errorf("%w: %s://%s", ErrInsecureHTTP, u.Scheme, u.Host)
}

// allowed is one entry of the allow-list: a host, or an origin.
type allowed struct {
	scheme string // "" for a host entry: any scheme
	host   string // canonical
	port   string // "" for any port
}

// parseAllowed parses an allow-list entry: a host ("api.example.com",
// "10.0.0.1", "::1"), a host and port ("api.example.com:8443"), or an
// origin ("https://api.example.com", "http://127.0.0.1:8080").
func parseAllowed(s string) (allowed, error) {
	if s == "" {
		return allowed{}, errors.New("empty entry")
	}
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return allowed{}, err
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return allowed{}, errors.New("the scheme must be http or https")
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
			return allowed{}, errors.New("an origin has no user, path, query or fragment")
		}
		if u.Hostname() == "" {
			return allowed{}, errors.New("no host")
		}
		return allowed{scheme: u.Scheme, host: canonicalHost(u.Hostname()), port: portOf(u)}, nil
	}
	host, port := s, ""
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	}
	if host == "" || strings.ContainsAny(host, "/?#@* ") {
		return allowed{}, errors.New("not a host name or address")
	}
	return allowed{host: canonicalHost(host), port: port}, nil
}

// match reports whether the entry admits u.
func (a allowed) match(u *url.URL) bool {
	if a.scheme != "" && !strings.EqualFold(a.scheme, u.Scheme) {
		return false
	}
	if canonicalHost(u.Hostname()) != a.host {
		return false
	}
	return a.port == "" || a.port == portOf(u)
}

// portOf returns u's port, or the default port of its scheme.
func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}
