package dpop

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// pemType is the PEM block type of a PKCS #8 private key.
const pemType = "PRIVATE KEY"

// MarshalKey returns p's private key as a PKCS #8 PEM block ("PRIVATE
// KEY"), which [LoadProver] reads back. Store it as carefully as the refresh
// token bound to it. A key held by an opaque [crypto.Signer] (in hardware,
// say) cannot be marshalled.
func (p *Prover) MarshalKey() ([]byte, error) {
	switch p.key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
	default:
		return nil, fmt.Errorf("dpop: cannot marshal a key of type %T", p.key)
	}
	der, err := x509.MarshalPKCS8PrivateKey(p.key)
	if err != nil {
		return nil, fmt.Errorf("dpop: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: der}), nil
}

// LoadProver returns a Prover for a private key stored as
//
//   - a PKCS #8 PEM block ("PRIVATE KEY"), as [Prover.MarshalKey] writes it;
//   - or a private JWK, a JSON object (RFC 7517).
//
// The key must be one [NewProver] accepts. Errors never quote the key.
func LoadProver(data []byte, opts ...Option) (*Prover, error) {
	var key any
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(trimmed); err != nil {
			return nil, errors.New("dpop: malformed JWK")
		}
		if jwk.IsPublic() {
			return nil, errors.New("dpop: the JWK holds a public key, not a private one")
		}
		key = jwk.Key
	} else {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, errors.New("dpop: no PEM block or JWK found")
		}
		if block.Type != pemType {
			return nil, fmt.Errorf("dpop: PEM block of type %q: want %q (PKCS #8)", block.Type, pemType)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("dpop: malformed PKCS #8 private key")
		}
		key = k
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("dpop: key of type %T cannot sign", key)
	}
	return NewProver(signer, opts...)
}
