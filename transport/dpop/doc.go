// Package dpop makes DPoP proofs (RFC 9449): it binds access and refresh
// tokens to a key pair held by the client, so that a stolen token is useless
// without the private key.
//
// A [Prover] holds that key. For every request that carries a DPoP-bound
// token (and for every call to the token endpoint) it makes a fresh proof,
// a JWT signed with the key, sent in the DPoP request header:
//
//	proof, err := p.Proof(req.Method, req.URL.String(), accessToken)
//	req.Header.Set(dpop.HeaderName, proof)
//	req.Header.Set("Authorization", "DPoP "+accessToken)
//
// and it learns the servers' nonces from the DPoP-Nonce header of every
// response passed to [Prover.ObserveResponse], one nonce per origin. A
// server that wants a newer nonce answers with a challenge that
// [IsNonceChallenge] (resource servers) or [IsNonceError] (token endpoints)
// recognises; the request is then sent once more with a new proof.
//
// # The key lives as long as the tokens bound to it
//
// The authorization server binds a refresh token to the key's thumbprint
// ([Prover.Thumbprint], the token's cnf.jkt). A process that restarts with a
// new key holds a refresh token it can no longer use: its user must log in
// again. To keep the session, store the key next to the token, with the same
// care as the refresh token itself (it is worth as much):
//
//	pem, err := p.MarshalKey() // PKCS #8, PEM "PRIVATE KEY"
//	...
//	p, err := dpop.LoadProver(pem)
//
// [LoadProver] also reads a private JWK (JSON). A key that cannot leave its
// hardware (any [crypto.Signer] that is not one of the standard library's
// private key types) works with [NewProver] but cannot be marshalled: it
// persists by itself.
//
// A Prover, printed with any fmt verb, shows its algorithm and thumbprint,
// never its private key.
package dpop
