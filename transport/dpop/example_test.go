package dpop_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/autorefresh/autorefresh/transport/dpop"
)

// A resource server that demands a nonce: the first request is answered
// with a challenge, and sent once more with a proof carrying the nonce.
func ExampleProver() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(dpop.NonceHeaderName, "server-nonce-1")
		// A real server verifies the proof; this one only looks for its nonce.
		if !strings.HasPrefix(r.Header.Get("Authorization"), "DPoP ") || r.Header.Get(dpop.HeaderName) == "" ||
			!proofHasNonce(r.Header.Get(dpop.HeaderName), "server-nonce-1") {
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintln(w, "hello")
	}))
	defer srv.Close()

	key, err := dpop.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	p, err := dpop.NewProver(key)
	if err != nil {
		log.Fatal(err)
	}
	const accessToken = "access-token-bound-to-the-key"
	for attempt := 1; attempt <= 2; attempt++ {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/me", nil)
		proof, err := p.Proof(req.Method, req.URL.String(), accessToken)
		if err != nil {
			log.Fatal(err)
		}
		req.Header.Set(dpop.HeaderName, proof)
		req.Header.Set("Authorization", dpop.TokenType+" "+accessToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		p.ObserveResponse(resp) // every response: it may carry a new nonce
		fmt.Println("attempt", attempt, resp.Status)
		if !dpop.IsNonceChallenge(resp) {
			break
		}
	}
	// Output:
	// attempt 1 401 Unauthorized
	// attempt 2 200 OK
}
