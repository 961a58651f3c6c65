package transport

import (
	"net/http"
	"strings"
)

// redirectKeepsToken reports whether req may carry the token: it is not a
// redirect, or it is a redirect to the original request's host or one of
// its subdomains (the rule net/http applies to the Authorization header of
// a redirected request).
func redirectKeepsToken(req *http.Request) bool {
	if req.Response == nil {
		return true
	}
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	return isDomainOrSubdomain(strings.ToLower(req.URL.Hostname()), strings.ToLower(first.URL.Hostname()))
}

// isDomainOrSubdomain reports whether sub is parent or a subdomain of it.
func isDomainOrSubdomain(sub, parent string) bool {
	if sub == parent {
		return true
	}
	if strings.ContainsAny(sub, ":%") {
		return false
	}
	return strings.HasSuffix(sub, parent) && len(sub) > len(parent) && sub[len(sub)-len(parent)-1] == '.'
}
