// Command dpop shows DPoP (RFC 9449): tokens bound to a key the client
// holds, so that a stolen refresh token is useless without the key. It
// starts the bundled test server in-process with DPoP required, logs in
// with a proof, and keeps the key next to the token (both files mode 0600).
// Then it "restarts": a new Prover from the stored key, a new Source from
// the stored token. After the server expired every access token and every
// nonce, the restarted process refreshes with the persisted key, and its
// session goes on.
//
//	go run ./examples/dpop
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
	"github.com/autorefresh/autorefresh/transport/dpop"
	"golang.org/x/oauth2"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dpop:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	srv := testserver.New(testserver.Config{DPoP: true})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer srv.Close()
	dir, err := os.MkdirTemp("", "dpop-example")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tokenPath, keyPath := filepath.Join(dir, "token.json"), filepath.Join(dir, "dpop-key.pem")
	conf := &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}
	ctx := context.Background()

	// First run: a new key, kept next to the token, as long as the token.
	key, err := dpop.GenerateKey()
	if err != nil {
		return err
	}
	p, err := dpop.NewProver(key)
	if err != nil {
		return err
	}
	pem, err := p.MarshalKey()
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, pem, 0o600); err != nil {
		return err
	}
	tok, err := login(ctx, conf, p)
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}
	fmt.Fprintf(out, "logged in: token_type=%s, bound to key %s\n", tok.TokenType, p.Thumbprint())
	failures := 0
	if err := session(ctx, out, conf, p, tokenPath, tok, srv.URL()); err != nil {
		failures++
		fmt.Fprintln(out, "first run:", err)
	}

	srv.ExpireAccessTokens()
	srv.ExpireDPoPNonces()
	fmt.Fprintln(out, "restart; the server expired every access token and every nonce")

	// Second run: the key and the token from disk.
	pem, err = os.ReadFile(keyPath)
	if err != nil {
		return err
	}
	p2, err := dpop.LoadProver(pem)
	if err != nil {
		return err
	}
	if err := session(ctx, out, conf, p2, tokenPath, nil, srv.URL()); err != nil {
		failures++
		fmt.Fprintln(out, "second run:", err)
	}

	st := srv.Stats()
	fmt.Fprintf(out, "summary: key-kept=%t 401s=%d refreshes=%d failures=%d\n",
		p2.Thumbprint() == p.Thumbprint(), st.Unauthorized, st.Rotations, failures)
	if failures > 0 {
		return fmt.Errorf("%d runs failed", failures)
	}
	return nil
}

// session is one run of the program: a Source on the token file (tok, if
// not nil, is its first token) and a client that proves possession of p's
// key with every request.
func session(ctx context.Context, out io.Writer, conf *oauth2.Config, p *dpop.Prover, tokenPath string, tok *oauth2.Token, base string) error {
	store := refresher.NewFileStore(tokenPath)
	defer store.Close()
	opts := []refresher.Option{refresher.WithStore(store)}
	if tok != nil {
		opts = append(opts, refresher.WithToken(tok))
	}
	// The same Prover at the token endpoint and on the requests.
	src := refresher.NewSource(&refresher.OAuth2Endpoint{Config: conf, DPoP: p}, opts...)
	client := transport.NewClient(src, transport.WithDPoP(p))

	resp, err := client.Get(base + testserver.PathMe)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Fprintf(out, "GET %s → %d %s", testserver.PathMe, resp.StatusCode, body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// login makes the password grant with a DPoP proof, so that the server
// binds the tokens to p's key. The first answer may ask for the server's
// nonce (use_dpop_nonce): the grant is then sent once more with it.
func login(ctx context.Context, conf *oauth2.Config, p *dpop.Prover) (*oauth2.Token, error) {
	form := url.Values{
		"grant_type": {"password"},
		"username":   {testserver.DemoUser},
		"password":   {testserver.DemoPassword},
		"client_id":  {conf.ClientID},
	}.Encode()
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, conf.Endpoint.TokenURL, strings.NewReader(form))
		if err != nil {
			return nil, err
		}
		proof, err := p.Proof(req.Method, req.URL.String(), "")
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set(dpop.HeaderName, proof)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		p.ObserveResponse(resp)
		var answer struct {
			AccessToken  string `json:"access_token"`
			TokenType    string `json:"token_type"`
			RefreshToken string `json:"refresh_token"`
			ExpiresIn    int64  `json:"expires_in"`
			Error        string `json:"error"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return &oauth2.Token{
				AccessToken:  answer.AccessToken,
				TokenType:    answer.TokenType,
				RefreshToken: answer.RefreshToken,
				Expiry:       time.Now().Add(time.Duration(answer.ExpiresIn) * time.Second),
			}, nil
		case dpop.IsNonceError(resp.StatusCode, resp.Header, answer.Error):
			continue // p has seen the nonce: the next proof carries it
		default:
			return nil, fmt.Errorf("status %d: %s", resp.StatusCode, answer.Error)
		}
	}
	return nil, errors.New("the server asked for a new nonce twice")
}
