package refresher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"golang.org/x/oauth2"
)

// Revoker is implemented by an [Endpoint] that can end a session at the
// server: [OAuth2Endpoint] through RFC 7009 token revocation, and
// [JSONEndpoint] through a configured logout call. [Source.Logout] uses it.
type Revoker interface {
	// Revoke asks the server to invalidate t's refresh token (and with it,
	// on most servers, the whole token family).
	Revoke(ctx context.Context, t *oauth2.Token) error
}

// Clearer is implemented by a [Store] that can delete its token.
// [Source.Logout] uses it; every Store of this module implements it.
type Clearer interface {
	Clear(ctx context.Context) error
}

// ErrLoggedOut is the reason a Source gives after [Source.Logout]. It wraps
// [ErrReauthRequired].
var ErrLoggedOut = fmt.Errorf("%w: logged out", ErrReauthRequired)

// ErrNotRevoked is wrapped by the error of [Source.Logout] when the refresh
// token could not be revoked at the server: the Endpoint cannot revoke
// (no revocation URL or logout call is configured), or the call failed. The
// session was ended locally all the same.
var ErrNotRevoked = errors.New("refresher: the refresh token was not revoked at the server")

// Logout ends the session: it revokes the refresh token at the server
// (the newest one, read from the Store under its lock, since another
// process may have rotated it), clears the Store, and leaves the Source
// over: every call fails with [ErrLoggedOut] (an [ErrReauthRequired]) until
// [Source.SetToken] or the login callback gives it a new token. A refresh
// running meanwhile is superseded.
//
// The local token is dropped whatever happens at the server; an error
// wrapping [ErrNotRevoked] reports a revocation that did not happen, and
// an error from the Store one that left the token stored.
func (s *Source) Logout(ctx context.Context) error {
	if s.endpoint == nil {
		return errZeroSource
	}
	s.mu.Lock()
	s.gen++
	tok := entryToken(s.cur.Load())
	if tok == nil {
		tok = s.overTok
	}
	s.overLocked(ErrLoggedOut, tok)
	s.mu.Unlock()
	s.reportOver(ctx, ErrLoggedOut)

	c := &call{}
	lease, err := s.lock(ctx, c)
	if err != nil {
		return fmt.Errorf("refresher: logout: %w", err)
	}
	defer s.unlock(ctx, c, lease)
	release, err := s.holdSaving(ctx)
	if err != nil {
		return fmt.Errorf("refresher: logout: %w", err)
	}
	defer release()

	if s.store != nil {
		if st, err := s.store.Load(ctx); err == nil && st != nil && st.AccessToken != "" {
			tok = st // the newest refresh token of this session
		}
	}
	revokeErr := s.revoke(ctx, tok)
	var clearErr error
	if s.store != nil {
		clearErr = s.clearStore(ctx)
	}
	return errors.Join(revokeErr, clearErr)
}

// revoke revokes t at the server, if the Endpoint can.
func (s *Source) revoke(ctx context.Context, t *oauth2.Token) (err error) {
	if t == nil || t.RefreshToken == "" && t.AccessToken == "" {
		return nil
	}
	rv, ok := s.endpoint.(Revoker)
	if !ok {
		return fmt.Errorf("%w: the Endpoint cannot revoke tokens", ErrNotRevoked)
	}
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{In: "the Endpoint's Revoke", Value: v}
		}
		if err != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "refresher: logout: revocation failed; the session was ended locally", slog.String("error", err.Error()))
			if !errors.Is(err, ErrNotRevoked) {
				err = fmt.Errorf("%w: %w", ErrNotRevoked, err)
			}
		}
	}()
	return rv.Revoke(ctx, t)
}

// clearStore deletes the stored token.
func (s *Source) clearStore(ctx context.Context) error {
	cl, ok := s.store.(Clearer)
	if !ok {
		return errors.New("refresher: logout: the Store cannot delete its token (it implements no Clear method)")
	}
	if err := cl.Clear(ctx); err != nil {
		return fmt.Errorf("refresher: logout: clear the Store: %w", err)
	}
	return nil
}
