package dpop

// CachedOrigins returns how many origins p remembers a nonce for.
func CachedOrigins(p *Prover) int { return p.nonces.len() }
