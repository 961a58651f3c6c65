package dpop

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// parseHTTPURL parses rawURL, an absolute http or https URL.
func parseHTTPURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL, whose query may hold secrets: say less.
		return nil, errors.New("dpop: malformed request URL")
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return nil, fmt.Errorf("dpop: request URL scheme %q: want http or https", u.Scheme)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, errors.New("dpop: request URL is not absolute")
	}
	return u, nil
}

// htu returns the htu claim for u: scheme, host and path, without query and
// fragment, in the normal form of RFC 3986 §6.2.2 and §6.2.3 (RFC 9449
// §4.3 asks servers to compare htu so normalised).
func htu(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := hostPort(u)
	if port != "" && port != defaultPort(scheme) {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	path := removeDotSegments(normalizePercent(u.EscapedPath()))
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path
}

// origin returns u's origin, scheme://host:port, the key of the nonce cache:
// lower case, the port always spelled out.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host, port := hostPort(u)
	if port == "" {
		port = defaultPort(scheme)
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// hostPort returns u's host in lower case, without brackets, and its port.
func hostPort(u *url.URL) (host, port string) {
	return strings.ToLower(u.Hostname()), u.Port()
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// normalizePercent decodes the percent-encoded octets of p that are
// unreserved characters and writes the others' hex digits in upper case
// (RFC 3986 §6.2.2.1 and §6.2.2.2).
func normalizePercent(p string) string {
	if !strings.Contains(p, "%") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			c := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(c) {
				b.WriteByte(c)
			} else {
				b.WriteByte('%')
				b.WriteString(strings.ToUpper(p[i+1 : i+3]))
			}
			i += 2
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// removeDotSegments removes the "." and ".." segments of path p (RFC 3986
// §5.2.4).
func removeDotSegments(in string) string {
	if !strings.Contains(in, ".") {
		return in
	}
	var out []string // segments, each with its leading "/"
	pop := func() {
		if len(out) > 0 {
			out = out[:len(out)-1]
		}
	}
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			pop()
		case in == "/..":
			in = "/"
			pop()
		case in == "." || in == "..":
			in = ""
		default:
			end := strings.IndexByte(in[1:], '/') + 1
			if end == 0 {
				end = len(in)
			}
			out = append(out, in[:end])
			in = in[end:]
		}
	}
	return strings.Join(out, "")
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
