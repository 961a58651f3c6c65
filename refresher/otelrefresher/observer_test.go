package otelrefresher_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/oauth2"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/refresher/otelrefresher"
	"github.com/autorefresh/autorefresh/testserver"
	"github.com/autorefresh/autorefresh/transport"
)

// harness is an Observer on the real OpenTelemetry SDK, with a manual
// metric reader and a span recorder, and a client of a test server whose
// Source and Transport report to it.
type harness struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	tracer trace.Tracer // for the requests' own spans
	srv    *testserver.Server
	src    *recordingSource
	client *http.Client
}

// newHarness returns a harness whose Source holds a token of the test
// server's demo user: in store, if it is not nil, else given to the Source.
func newHarness(t *testing.T, store refresher.Store, opts ...transport.Option) *harness {
	t.Helper()
	h := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	t.Cleanup(func() {
		mp.Shutdown(context.Background())
		tp.Shutdown(context.Background())
	})
	h.tracer = tp.Tracer("test")
	obs := otelrefresher.New(otelrefresher.WithMeterProvider(mp), otelrefresher.WithTracerProvider(tp))

	h.srv = testserver.NewTest(t, testserver.Config{})
	tok, err := h.srv.IssueToken(testserver.DemoUser)
	require.NoError(t, err)
	conf := &oauth2.Config{
		ClientID: testserver.PublicClientID,
		Endpoint: oauth2.Endpoint{TokenURL: h.srv.URL() + testserver.PathToken, AuthStyle: oauth2.AuthStyleInParams},
	}
	srcOpts := []refresher.Option{refresher.WithObserver(obs), refresher.WithToken(tok)}
	if store != nil {
		require.NoError(t, store.Save(context.Background(), tok))
		srcOpts = []refresher.Option{refresher.WithObserver(obs), refresher.WithStore(store)}
	}
	src := refresher.NewSource(&refresher.OAuth2Endpoint{Config: conf, HTTPClient: h.srv.Client()}, srcOpts...)
	h.src = &recordingSource{src: src, joined: make(chan struct{}, 1000)}
	h.src.record(tok)
	opts = append([]transport.Option{transport.WithBase(h.srv.Client().Transport), transport.WithObserver(obs)}, opts...)
	h.client = transport.NewClient(h.src, opts...)
	return h
}

// recordingSource is the Source of the Transport: it keeps every token
// handed out, to look for them in what was recorded, and tells when a
// caller of Refresh waits for the shared refresh.
type recordingSource struct {
	src    *refresher.Source
	joined chan struct{} // a receive for each caller that waits in Refresh

	mu     sync.Mutex // guards tokens
	tokens []string
}

func (s *recordingSource) record(t *oauth2.Token) {
	if t == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = append(s.tokens, t.AccessToken, t.RefreshToken)
}

func (s *recordingSource) secrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens...)
}

func (s *recordingSource) Token(ctx context.Context) (*oauth2.Token, error) {
	t, err := s.src.Token(ctx)
	s.record(t)
	return t, err
}

func (s *recordingSource) Refresh(ctx context.Context, stale *oauth2.Token) (*oauth2.Token, error) {
	t, err := s.src.Refresh(&waitSignal{Context: ctx, joined: s.joined}, stale)
	s.record(t)
	return t, err
}

// waitSignal is a context that tells when its Done channel is first asked
// for. A [refresher.Source] asks for it once the caller of Refresh counts
// as a waiter of the refresh in flight, and waits on it with the refresh:
// not before (the refresh itself runs on a context detached from it).
type waitSignal struct {
	context.Context
	once   sync.Once
	joined chan<- struct{}
}

func (c *waitSignal) Done() <-chan struct{} {
	c.once.Do(func() { c.joined <- struct{}{} })
	return c.Context.Done()
}

// waitJoined waits until n callers of Refresh wait for the refresh.
func (h *harness) waitJoined(t *testing.T, n int) {
	t.Helper()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for i := range n {
		select {
		case <-h.src.joined:
		case <-timeout.C:
			t.Fatalf("%d of %d callers wait for the refresh", i, n)
		}
	}
}

// do sends a request to path on the test server and returns the status of
// its answer, or 0 and the error.
func (h *harness) do(ctx context.Context, method, path string, body io.Reader) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.srv.URL()+path, body)
	if err != nil {
		return 0, err
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func (h *harness) metrics(t *testing.T) map[string]metricdata.Aggregation {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	out := map[string]metricdata.Aggregation{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			out[m.Name] = m.Data
		}
	}
	return out
}

// counts returns the values of the counter name, by the value of its
// attribute key ("" for a counter without attributes).
func counts(t *testing.T, ms map[string]metricdata.Aggregation, name, key string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	data, ok := ms[name]
	if !ok {
		return out
	}
	sum, ok := data.(metricdata.Sum[int64])
	require.True(t, ok, "%s is a %T, want an int64 counter", name, data)
	assert.True(t, sum.IsMonotonic, "%s is monotonic", name)
	for _, dp := range sum.DataPoints {
		v, _ := dp.Attributes.Value(attribute.Key(key))
		out[v.AsString()] += dp.Value
	}
	return out
}

func refreshSpans(h *harness) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		if s.Name() == otelrefresher.SpanName {
			out = append(out, s)
		}
	}
	return out
}

func attrs(kvs []attribute.KeyValue) map[string]any {
	out := map[string]any{}
	for _, kv := range kvs {
		out[string(kv.Key)] = kv.Value.AsInterface()
	}
	return out
}

func TestStormAfterExpiryRecordsOneRefreshSharedByAllCallers(t *testing.T) {
	const n = 100
	h := newHarness(t, nil)
	h.srv.ExpireAccessTokens()
	release := h.srv.HoldRefreshes()
	defer release()

	var wg sync.WaitGroup
	statuses := make([]int, n)
	errs := make([]error, n)
	requests := make(map[trace.SpanID]bool)
	var mu sync.Mutex // guards requests
	for i := range n {
		wg.Go(func() {
			ctx, span := h.tracer.Start(context.Background(), "request")
			defer span.End()
			mu.Lock()
			requests[span.SpanContext().SpanID()] = true
			mu.Unlock()
			statuses[i], errs[i] = h.do(ctx, http.MethodGet, testserver.PathMe, nil)
		})
	}
	h.waitJoined(t, n)
	release()
	wg.Wait()

	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, http.StatusOK, statuses[i], "request %d", i)
	}
	assert.Equal(t, int64(1), h.srv.Stats().Rotations, "rotations")

	ms := h.metrics(t)
	assert.Equal(t, map[string]int64{"ok": 1}, counts(t, ms, "autorefresh.refreshes", "outcome"))
	waiters, ok := ms["autorefresh.refresh.waiters"].(metricdata.Histogram[int64])
	require.True(t, ok, "autorefresh.refresh.waiters is an int64 histogram")
	require.Len(t, waiters.DataPoints, 1)
	assert.Equal(t, uint64(1), waiters.DataPoints[0].Count, "one sample")
	assert.Equal(t, int64(n), waiters.DataPoints[0].Sum, "of 100 callers")
	duration, ok := ms["autorefresh.refresh.duration"].(metricdata.Histogram[float64])
	require.True(t, ok, "autorefresh.refresh.duration is a float64 histogram")
	require.Len(t, duration.DataPoints, 1)
	assert.Equal(t, uint64(1), duration.DataPoints[0].Count)
	assert.Equal(t, map[string]int64{"ok": n}, counts(t, ms, "autorefresh.replays", "outcome"), "every request healed by a replay")
	assert.Empty(t, counts(t, ms, "autorefresh.sessions.over", ""))

	spans := refreshSpans(h)
	require.Len(t, spans, 1, "one refresh span")
	refresh := spans[0]
	assert.Equal(t, map[string]any{
		"autorefresh.outcome":    "ok",
		"autorefresh.kind":       "refresh",
		"autorefresh.background": false,
		"autorefresh.waiters":    int64(n),
	}, attrs(refresh.Attributes()))
	assert.Equal(t, codes.Unset, refresh.Status().Code)
	assert.False(t, refresh.Parent().IsValid(), "a trace of its own: the refresh is shared")
	require.Len(t, refresh.Links(), 1)
	assert.True(t, requests[refresh.Links()[0].SpanContext.SpanID()], "linked from one of the requests' spans")

	var back int
	for _, s := range h.spans.Ended() {
		for _, l := range s.Links() {
			if l.SpanContext.SpanID() == refresh.SpanContext().SpanID() {
				back++
				assert.Equal(t, refresh.Links()[0].SpanContext.SpanID(), s.SpanContext().SpanID(), "the request that started it links back")
			}
		}
	}
	assert.Equal(t, 1, back, "spans that link to the refresh")
	assertNoTokens(t, h)
}

func TestRevokedSessionRecordsOneSessionOver(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.RevokeAll()
	h.srv.ExpireAccessTokens()

	for range 3 {
		_, err := h.do(context.Background(), http.MethodGet, testserver.PathMe, nil)
		require.ErrorIs(t, err, refresher.ErrReauthRequired)
	}

	ms := h.metrics(t)
	assert.Equal(t, map[string]int64{"session_over": 1}, counts(t, ms, "autorefresh.refreshes", "outcome"))
	assert.Equal(t, map[string]int64{"": 1}, counts(t, ms, "autorefresh.sessions.over", ""))

	spans := refreshSpans(h)
	require.Len(t, spans, 1, "one refresh: the callers after it fail fast")
	a := attrs(spans[0].Attributes())
	assert.Equal(t, "session_over", a["autorefresh.outcome"])
	assert.Equal(t, "session_over", a["error.type"])
	assert.NotZero(t, a["http.response.status_code"], "the token endpoint's status")
	assert.Equal(t, codes.Error, spans[0].Status().Code)
	assert.NotEmpty(t, spans[0].Status().Description)
	assertNoTokens(t, h)
}

// streamed is a request body without GetBody.
type streamed struct{ io.Reader }

func (streamed) Close() error { return nil }

func TestReplaysAreCountedByOutcome(t *testing.T) {
	h := newHarness(t, nil, transport.WithReplayLimit(16))

	h.srv.ExpireAccessTokens()
	ctx, span := h.tracer.Start(context.Background(), "request")
	status, err := h.do(ctx, http.MethodPost, testserver.PathEcho, strings.NewReader("short body"))
	span.End()
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, status, "healed by a replay")

	h.srv.ExpireAccessTokens()
	status, err = h.do(context.Background(), http.MethodPost, testserver.PathEcho, streamed{strings.NewReader(strings.Repeat("x", 100))})
	require.NoError(t, err)
	assert.Equal(t, http.StatusUnauthorized, status, "over the replay limit: the rejection is returned")

	ms := h.metrics(t)
	assert.Equal(t, map[string]int64{"ok": 1, "not_replayable": 1}, counts(t, ms, "autorefresh.replays", "outcome"))
	assert.Equal(t, map[string]int64{"ok": 2}, counts(t, ms, "autorefresh.refreshes", "outcome"))

	var events []string
	for _, s := range h.spans.Ended() {
		if s.Name() == "request" {
			for _, e := range s.Events() {
				events = append(events, e.Name+" "+attrs(e.Attributes)["autorefresh.replay.outcome"].(string))
			}
		}
	}
	assert.Equal(t, []string{"autorefresh.token.rejected ok"}, events, "the request's span tells of the replay")
	assertNoTokens(t, h)
}

func TestWithheldTokensAreCountedByReason(t *testing.T) {
	h := newHarness(t, nil)
	req, err := http.NewRequest(http.MethodGet, "http://api.example.com/x", nil)
	require.NoError(t, err)
	_, err = h.client.Do(req)
	require.ErrorIs(t, err, transport.ErrInsecureHTTP)

	ms := h.metrics(t)
	assert.Equal(t, map[string]int64{"insecure_http": 1}, counts(t, ms, "autorefresh.tokens.withheld", "reason"))
}

func TestInstrumentsHaveConventionalUnits(t *testing.T) {
	h := newHarness(t, nil)
	h.srv.ExpireAccessTokens()
	_, err := h.do(context.Background(), http.MethodGet, testserver.PathMe, nil)
	require.NoError(t, err)

	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	units := map[string]string{}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, otelrefresher.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			units[m.Name] = m.Unit
		}
	}
	assert.Equal(t, map[string]string{
		"autorefresh.refreshes":        "{refresh}",
		"autorefresh.refresh.duration": "s",
		"autorefresh.refresh.waiters":  "{caller}",
		"autorefresh.replays":          "{request}",
	}, units)
}

func TestLockWaitIsRecordedOnTheRefresh(t *testing.T) {
	h := newHarness(t, refresher.NewFileStore(filepath.Join(t.TempDir(), "token.json")))
	_, err := h.do(context.Background(), http.MethodGet, testserver.PathMe, nil) // the Source adopts the stored token
	require.NoError(t, err)
	h.srv.ExpireAccessTokens()
	_, err = h.do(context.Background(), http.MethodGet, testserver.PathMe, nil)
	require.NoError(t, err)

	ms := h.metrics(t)
	wait, ok := ms["autorefresh.lock.wait"].(metricdata.Histogram[float64])
	require.True(t, ok, "autorefresh.lock.wait is a float64 histogram")
	require.Len(t, wait.DataPoints, 1)
	assert.Equal(t, uint64(1), wait.DataPoints[0].Count, "the refresh took the file's lock once")
	assert.Equal(t, map[string]int64{"adopted": 1, "ok": 1}, counts(t, ms, "autorefresh.refreshes", "outcome"))

	var events []string
	for _, s := range refreshSpans(h) {
		if attrs(s.Attributes())["autorefresh.outcome"] == "ok" {
			for _, e := range s.Events() {
				events = append(events, e.Name)
			}
		}
	}
	assert.Equal(t, []string{"autorefresh.lock.acquired"}, events)
	assertNoTokens(t, h)
}

// lapsingStore is a shared Store whose lease has always lapsed by the time
// the refresh token is to be presented.
type lapsingStore struct{ *refresher.MemoryStore }

func (lapsingStore) LockLease(context.Context) (refresher.Lease, error) { return lapsedLease{}, nil }

type lapsedLease struct{}

func (lapsedLease) Confirm(context.Context) error { return refresher.ErrLeaseLost }
func (lapsedLease) Unlock() error                 { return nil }

func TestLostLeaseIsCountedAndFailsTheRefreshSpan(t *testing.T) {
	h := newHarness(t, lapsingStore{refresher.NewMemoryStore(nil)})
	_, err := h.do(context.Background(), http.MethodGet, testserver.PathMe, nil) // the Source adopts the stored token
	require.NoError(t, err)
	h.srv.ExpireAccessTokens()
	_, err = h.do(context.Background(), http.MethodGet, testserver.PathMe, nil)
	require.ErrorIs(t, err, refresher.ErrLeaseLost)

	ms := h.metrics(t)
	assert.Equal(t, map[string]int64{"": 1}, counts(t, ms, "autorefresh.lease.lost", ""))
	assert.Equal(t, map[string]int64{"adopted": 1, "transient": 1}, counts(t, ms, "autorefresh.refreshes", "outcome"))
	assert.Equal(t, int64(0), h.srv.Stats().Rotations, "the refresh token was not presented")

	var failed []sdktrace.ReadOnlySpan
	for _, s := range refreshSpans(h) {
		if s.Status().Code == codes.Error {
			failed = append(failed, s)
		}
	}
	require.Len(t, failed, 1)
	var events []string
	for _, e := range failed[0].Events() {
		events = append(events, e.Name)
	}
	assert.Contains(t, events, "autorefresh.lease.lost")
	assert.Equal(t, "transient", attrs(failed[0].Attributes())["error.type"])
	assertNoTokens(t, h)
}

// assertNoTokens fails t if a token handed out during the test appears in
// any recorded metric attribute, span name, attribute, event, link or
// status.
func assertNoTokens(t *testing.T, h *harness) {
	t.Helper()
	secrets := h.src.secrets()
	require.GreaterOrEqual(t, len(secrets), 2, "tokens to look for")
	var seen []string
	add := func(kvs ...attribute.KeyValue) {
		for _, kv := range kvs {
			seen = append(seen, string(kv.Key), kv.Value.Emit())
		}
	}
	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	add(rm.Resource.Attributes()...)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			seen = append(seen, m.Name, m.Description, m.Unit)
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					add(dp.Attributes.ToSlice()...)
					for _, e := range dp.Exemplars {
						add(e.FilteredAttributes...)
					}
				}
			case metricdata.Histogram[int64]:
				for _, dp := range d.DataPoints {
					add(dp.Attributes.ToSlice()...)
					for _, e := range dp.Exemplars {
						add(e.FilteredAttributes...)
					}
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					add(dp.Attributes.ToSlice()...)
					for _, e := range dp.Exemplars {
						add(e.FilteredAttributes...)
					}
				}
			default:
				t.Errorf("metric %s: unexpected %T", m.Name, d)
			}
		}
	}
	spans := h.spans.Ended()
	require.NotEmpty(t, spans)
	for _, s := range spans {
		seen = append(seen, s.Name(), s.Status().Description)
		add(s.Attributes()...)
		for _, e := range s.Events() {
			seen = append(seen, e.Name)
			add(e.Attributes...)
		}
		for _, l := range s.Links() {
			add(l.Attributes...)
		}
	}
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		for _, s := range seen {
			if strings.Contains(s, secret) {
				t.Errorf("a recorded value contains a token: %q", s)
			}
		}
	}
}

func TestNewWithoutOptionsRecordsToTheGlobalProviders(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	otel.SetMeterProvider(mp)
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetMeterProvider(metricnoop.NewMeterProvider())
		otel.SetTracerProvider(tracenoop.NewTracerProvider())
		mp.Shutdown(context.Background())
		tp.Shutdown(context.Background())
	})

	obs := otelrefresher.New()
	ctx := obs.RefreshStarted(context.Background(), refresher.RefreshStart{Background: true})
	obs.LeaseLost(ctx)
	obs.RefreshEnded(ctx, refresher.RefreshEvent{Outcome: refresher.OutcomeTransient, Background: true, Err: refresher.ErrLeaseLost})

	h := &harness{reader: reader, spans: rec}
	ms := h.metrics(t)
	assert.Equal(t, map[string]int64{"transient": 1}, counts(t, ms, "autorefresh.refreshes", "outcome"))
	assert.Equal(t, map[string]int64{"": 1}, counts(t, ms, "autorefresh.lease.lost", ""))
	spans := refreshSpans(h)
	require.Len(t, spans, 1)
	assert.Equal(t, codes.Error, spans[0].Status().Code)
	assert.Equal(t, refresher.ErrLeaseLost.Error(), spans[0].Status().Description)
	assert.Equal(t, true, attrs(spans[0].Attributes())["autorefresh.background"])
	assert.Empty(t, spans[0].Links(), "no request span to link to")
}
