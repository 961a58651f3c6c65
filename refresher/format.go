package refresher

import (
	"fmt"
	"io"
	"time"
)

// The fmt verbs print a struct's fields, and %s or %q print the fields
// behind its pointers too: without these methods, fmt.Sprintf("%s", src)
// would print the token that a Source or a MemoryStore holds, and race with
// the refreshes that change it. They print what can be told safely instead.

// Format prints s, whatever the verb, as "refresher.Source{token: none}" or
// "refresher.Source{token: [redacted], expiry: <time or unknown>}". It never
// prints a token and is safe to call while s is in use.
func (s *Source) Format(f fmt.State, _ rune) {
	if s == nil {
		io.WriteString(f, "<nil>")
		return
	}
	e := s.cur.Load()
	switch {
	case e == nil:
		io.WriteString(f, "refresher.Source{token: none}")
	case e.tok.Expiry.IsZero():
		io.WriteString(f, "refresher.Source{token: [redacted], expiry: unknown}")
	default:
		fmt.Fprintf(f, "refresher.Source{token: [redacted], expiry: %s}", e.tok.Expiry.Format(time.RFC3339))
	}
}

// Format prints m, whatever the verb, as "refresher.MemoryStore{token:
// none}" or "refresher.MemoryStore{token: [redacted]}". It never prints a
// token.
func (m *MemoryStore) Format(f fmt.State, _ rune) {
	if m == nil {
		io.WriteString(f, "<nil>")
		return
	}
	m.mu.Lock()
	held := m.tok != nil
	m.mu.Unlock()
	if held {
		io.WriteString(f, "refresher.MemoryStore{token: [redacted]}")
	} else {
		io.WriteString(f, "refresher.MemoryStore{token: none}")
	}
}

// Format prints e, whatever the verb, as
// "refresher.OAuth2Endpoint{TokenURL: ..., ClientID: ...}": never the
// client secret.
func (e *OAuth2Endpoint) Format(f fmt.State, _ rune) {
	if e == nil || e.Config == nil {
		io.WriteString(f, "refresher.OAuth2Endpoint{}")
		return
	}
	fmt.Fprintf(f, "refresher.OAuth2Endpoint{TokenURL: %s, ClientID: %s}", e.Config.Endpoint.TokenURL, e.Config.ClientID)
}

// Format prints e, whatever the verb, as "refresher.JSONEndpoint{URL: ...}":
// never its extra Fields or Header values, which may hold an API key or a
// client secret.
func (e *JSONEndpoint) Format(f fmt.State, _ rune) {
	if e == nil {
		io.WriteString(f, "<nil>")
		return
	}
	fmt.Fprintf(f, "refresher.JSONEndpoint{URL: %s}", e.URL)
}
