package refresher_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/autorefresh/autorefresh/refresher"
	"golang.org/x/oauth2"
)

func TestEndpointsFormatWithoutSecrets(t *testing.T) {
	const secret = "client-secret-0123456789"
	values := []any{
		&refresher.OAuth2Endpoint{Config: &oauth2.Config{ClientID: "app", ClientSecret: secret,
			Endpoint: oauth2.Endpoint{TokenURL: "https://auth.example.com/token"}}},
		&refresher.JSONEndpoint{URL: "https://api.example.com/refresh",
			Fields: map[string]string{"client_secret": secret}, Header: http.Header{"X-Api-Key": {secret}}},
		&refresher.OAuth2Endpoint{},
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			got := fmt.Sprintf(verb, v)
			if strings.Contains(got, secret) || strings.Contains(got, fmt.Sprintf("%x", secret)) {
				t.Errorf("fmt.Sprintf(%q, %T) = %q: contains the secret", verb, v, got)
			}
		}
	}
	if got, want := fmt.Sprint(values[0]), "refresher.OAuth2Endpoint{TokenURL: https://auth.example.com/token, ClientID: app}"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
