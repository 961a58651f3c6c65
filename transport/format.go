package transport

import (
	"fmt"
	"io"
)

// Format prints t, whatever the verb, as "transport.Transport{...}" with
// its settings but not its Source: fmt's %s and %q verbs would otherwise
// print the fields behind the Source's pointers, its token among them, and
// race with the refreshes that change them.
func (t *Transport) Format(f fmt.State, _ rune) {
	if t == nil {
		io.WriteString(f, "<nil>")
		return
	}
	allowed := "any"
	if t.allowed != nil {
		allowed = fmt.Sprint(len(t.allowed))
	}
	fmt.Fprintf(f, "transport.Transport{refreshOn: %v, refreshWhen: %t, replayLimit: %d, allowedHosts: %s, insecureHTTP: %t, cookieJar: %t}",
		t.refreshOn, t.refreshWhen != nil, t.replayLimit, allowed, t.insecureHTTP, t.jar != nil)
}
