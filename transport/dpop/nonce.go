package dpop

import (
	"net/http"
	"sync"
)

// Bounds of the nonce cache: a server cannot make it grow without bound.
const (
	maxOrigins  = 64   // origins remembered; the least recently used goes first
	maxNonceLen = 1024 // longer nonces are ignored
)

// ObserveResponse remembers the nonce in resp's DPoP-Nonce header, if any,
// for the origin (scheme, host and port) of the request that resp answers;
// later proofs for that origin carry it. Call it with every response from a
// server that may send nonces, successful or not. A header that is not a
// valid nonce (RFC 9449 §8.1: 1*NQCHAR, at most 1024 bytes here) is ignored.
//
// Each origin has its own nonce: an authorization server's nonce is never
// sent to a resource server, nor one resource server's to another. At most
// 64 origins are remembered, the least recently used is forgotten first.
func (p *Prover) ObserveResponse(resp *http.Response) {
	if resp == nil || resp.Request == nil || resp.Request.URL == nil {
		return
	}
	vs := resp.Header.Values(NonceHeaderName)
	if len(vs) != 1 || !validNonce(vs[0]) {
		return
	}
	u := resp.Request.URL
	if u.Host == "" {
		return
	}
	p.nonces.put(origin(u), vs[0])
}

// Nonce returns the nonce last seen from rawURL's origin, or "" if none.
func (p *Prover) Nonce(rawURL string) string {
	u, err := parseHTTPURL(rawURL)
	if err != nil {
		return ""
	}
	return p.nonces.get(origin(u))
}

// validNonce reports whether s is a nonce: 1*NQCHAR (RFC 9449 §8.1), where
// NQCHAR = %x21 / %x23-5B / %x5D-7E, of at most maxNonceLen bytes.
func validNonce(s string) bool {
	if s == "" || len(s) > maxNonceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// nonceCache maps origins to their latest nonce. It holds at most max
// origins, and forgets the least recently used one to make room.
type nonceCache struct {
	max int

	mu      sync.Mutex // guards the fields below
	entries map[string]*nonceEntry
	clock   uint64 // ticks on every get and put, orders the entries by use
}

type nonceEntry struct {
	nonce string
	used  uint64 // clock at the last get or put
}

func newNonceCache(max int) *nonceCache {
	return &nonceCache{max: max, entries: make(map[string]*nonceEntry)}
}

func (c *nonceCache) get(origin string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[origin]
	if !ok {
		return ""
	}
	c.clock++
	e.used = c.clock
	return e.nonce
}

func (c *nonceCache) put(origin, nonce string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	if e, ok := c.entries[origin]; ok {
		e.nonce, e.used = nonce, c.clock
		return
	}
	if len(c.entries) >= c.max {
		c.evictLocked()
	}
	c.entries[origin] = &nonceEntry{nonce: nonce, used: c.clock}
}

// evictLocked forgets the least recently used origin. A linear scan: the
// cache is small.
func (c *nonceCache) evictLocked() {
	var oldest string
	var used uint64
	for o, e := range c.entries {
		if oldest == "" || e.used < used {
			oldest, used = o, e.used
		}
	}
	delete(c.entries, oldest)
}

func (c *nonceCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
