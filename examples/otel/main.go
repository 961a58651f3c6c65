// Command otel shows the OpenTelemetry adapter: one otelrefresher.Observer
// given to both the Source and the Transport records every refresh, replay
// and ended session as metrics and spans. It starts the bundled test server
// in-process, logs in, then:
//
//   - expires every access token and sends a burst of 10 requests: one
//     refresh, shared by the requests that wait for it, and 10 replays;
//   - revokes the session: the next request fails with ErrReauthRequired,
//     and the session-over counter says so.
//
// The spans are printed to stdout as they end (stdouttrace), the metrics
// once at the end (a ManualReader, printed by stdoutmetric), then a summary.
//
//	go run ./examples/otel
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/otelrefresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "otel:", err)
		os.Exit(1)
	}
}

const burst = 10

func run(out io.Writer) error {
	ctx := context.Background()
	srv := testserver.New(testserver.Config{})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		return err
	}
	defer srv.Close()

	// OpenTelemetry: spans to stdout as they end, metrics collected on
	// demand. A real program would use OTLP exporters and a PeriodicReader,
	// and usually set them as the global providers (otelrefresher.New()
	// without options uses those).
	spanOut, err := stdouttrace.New(stdouttrace.WithWriter(out), stdouttrace.WithPrettyPrint())
	if err != nil {
		return err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spanOut))
	defer tp.Shutdown(ctx)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)

	conf := &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}
	tok, err := conf.PasswordCredentialsToken(ctx, testserver.DemoUser, testserver.DemoPassword)
	if err != nil {
		return fmt.Errorf("log in: %w", err)
	}

	// The lines that matter: one Observer, given to both.
	obs := otelrefresher.New(otelrefresher.WithMeterProvider(mp), otelrefresher.WithTracerProvider(tp))
	src := refresher.NewSource(&refresher.OAuth2Endpoint{Config: conf}, refresher.WithToken(tok), refresher.WithObserver(obs))
	client := transport.NewClient(src, transport.WithObserver(obs))

	tracer := tp.Tracer("examples/otel")
	get := func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL()+testserver.PathMe, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}

	failures := 0
	srv.ExpireAccessTokens()
	fmt.Fprintf(out, "the server expired every access token; sending %d requests at once\n", burst)
	bctx, span := tracer.Start(ctx, "burst")
	var mu sync.Mutex // guards failures
	var wg sync.WaitGroup
	for range burst {
		wg.Go(func() {
			if code, err := get(bctx); err != nil || code != http.StatusOK {
				mu.Lock()
				failures++
				mu.Unlock()
				fmt.Fprintln(out, "request failed:", code, err)
			}
		})
	}
	wg.Wait()
	span.End()

	srv.RevokeAll()
	srv.ExpireAccessTokens()
	fmt.Fprintln(out, "the server revoked the session")
	rctx, span := tracer.Start(ctx, "after revocation")
	if _, err := get(rctx); !errors.Is(err, refresher.ErrReauthRequired) {
		failures++
		fmt.Fprintln(out, "want ErrReauthRequired, got:", err)
	}
	span.End()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	metricOut, err := stdoutmetric.New(stdoutmetric.WithWriter(out), stdoutmetric.WithPrettyPrint())
	if err != nil {
		return err
	}
	if err := metricOut.Export(ctx, &rm); err != nil {
		return err
	}

	fmt.Fprintf(out, "summary: requests=%d refreshes{ok}=%d refreshes{session_over}=%d sessions.over=%d replays{ok}=%d failures=%d\n",
		burst+1,
		count(rm, "autorefresh.refreshes", "ok"), count(rm, "autorefresh.refreshes", "session_over"),
		count(rm, "autorefresh.sessions.over", ""), count(rm, "autorefresh.replays", "ok"), failures)
	if failures > 0 {
		return fmt.Errorf("%d requests failed", failures)
	}
	return nil
}

// count returns the value of the counter name whose attribute "outcome" is
// outcome ("" for a counter without attributes).
func count(rm metricdata.ResourceMetrics, name, outcome string) int64 {
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if m.Name != name || !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				if v, _ := dp.Attributes.Value(attribute.Key("outcome")); v.AsString() == outcome {
					n += dp.Value
				}
			}
		}
	}
	return n
}
