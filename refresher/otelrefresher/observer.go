package otelrefresher

import (
	"context"
	"net"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/autorefresh/autorefresh/refresher"
	"github.com/autorefresh/autorefresh/transport"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/autorefresh/autorefresh/refresher/otelrefresher"

// SpanName is the name of the span of a refresh.
const SpanName = "autorefresh.refresh"

// Option configures an [Observer].
type Option func(*config)

type config struct {
	mp metric.MeterProvider
	tp trace.TracerProvider
}

// WithMeterProvider sets the MeterProvider of the metrics. Default (or nil):
// the global one, [otel.GetMeterProvider].
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithTracerProvider sets the TracerProvider of the spans. Default (or nil):
// the global one, [otel.GetTracerProvider].
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// Observer records the events of a [refresher.Source] and of a
// [transport.Transport] as OpenTelemetry metrics and spans (see the package
// documentation for their names). It is safe for concurrent use; one
// Observer may serve any number of Sources and Transports.
type Observer struct {
	tracer trace.Tracer

	refreshes    metric.Int64Counter
	duration     metric.Float64Histogram
	waiters      metric.Int64Histogram
	lockWait     metric.Float64Histogram
	leaseLost    metric.Int64Counter
	sessionsOver metric.Int64Counter
	replays      metric.Int64Counter
	withheld     metric.Int64Counter
}

var (
	_ refresher.Observer = (*Observer)(nil)
	_ transport.Observer = (*Observer)(nil)
)

// Bucket boundaries: durations in seconds, from a fast local refresh to the
// refresh timeout; waiters from one caller to a large burst.
var (
	secondsBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30}
	waitersBuckets = []float64{0, 1, 2, 5, 10, 25, 50, 100, 250, 500, 1000}
)

// New returns an Observer that records to the providers given by opts.
// An instrument that cannot be created is reported to [otel.Handle] and
// records nothing.
func New(opts ...Option) *Observer {
	var c config
	for _, o := range opts {
		o(&c)
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	m := c.mp.Meter(ScopeName)
	o := &Observer{tracer: c.tp.Tracer(ScopeName)}
	var err error
	check := func() {
		if err != nil {
			otel.Handle(err)
		}
	}
	o.refreshes, err = m.Int64Counter("autorefresh.refreshes", metric.WithUnit("{refresh}"),
		metric.WithDescription("Token refreshes, by outcome."))
	check()
	o.duration, err = m.Float64Histogram("autorefresh.refresh.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of a token refresh, the wait for the Store's lock included."),
		metric.WithExplicitBucketBoundaries(secondsBuckets...))
	check()
	o.waiters, err = m.Int64Histogram("autorefresh.refresh.waiters", metric.WithUnit("{caller}"),
		metric.WithDescription("Callers that shared one token refresh."),
		metric.WithExplicitBucketBoundaries(waitersBuckets...))
	check()
	o.lockWait, err = m.Float64Histogram("autorefresh.lock.wait", metric.WithUnit("s"),
		metric.WithDescription("Time a refresh waited for the Store's lock."),
		metric.WithExplicitBucketBoundaries(secondsBuckets...))
	check()
	o.leaseLost, err = m.Int64Counter("autorefresh.lease.lost", metric.WithUnit("{refresh}"),
		metric.WithDescription("Refreshes aborted before presenting the refresh token, because the Store's lease had lapsed."))
	check()
	o.sessionsOver, err = m.Int64Counter("autorefresh.sessions.over", metric.WithUnit("{session}"),
		metric.WithDescription("Sessions that ended: the user must log in again."))
	check()
	o.replays, err = m.Int64Counter("autorefresh.replays", metric.WithUnit("{request}"),
		metric.WithDescription("Requests whose token was rejected, by what became of their replay."))
	check()
	o.withheld, err = m.Int64Counter("autorefresh.tokens.withheld", metric.WithUnit("{request}"),
		metric.WithDescription("Requests that did not carry the token because of a redirect, the allow-list or plain http, by reason."))
	check()
	return o
}

// spanKey is the context key of the refresh span started by an Observer:
// another Observer may start a span of its own in the same context.
type spanKey struct{ o *Observer }

// RefreshStarted starts the refresh's span, linked to the span of the
// request that started the refresh (if ctx has one), and returns ctx with
// it. It implements [refresher.Observer].
func (o *Observer) RefreshStarted(ctx context.Context, ev refresher.RefreshStart) context.Context {
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.Bool("autorefresh.background", ev.Background)),
	}
	caller := trace.SpanFromContext(ctx)
	if sc := caller.SpanContext(); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	ctx, span := o.tracer.Start(ctx, SpanName, opts...)
	if sc := span.SpanContext(); sc.IsValid() {
		caller.AddLink(trace.Link{SpanContext: sc})
	}
	return context.WithValue(ctx, spanKey{o}, span)
}

// span returns the refresh span that o started in ctx, or a span that
// records nothing.
func (o *Observer) span(ctx context.Context) trace.Span {
	if s, ok := ctx.Value(spanKey{o}).(trace.Span); ok {
		return s
	}
	return noSpan
}

var noSpan = trace.SpanFromContext(context.Background()) // records nothing

// RefreshEnded records the refresh and ends its span. It implements
// [refresher.Observer].
func (o *Observer) RefreshEnded(ctx context.Context, ev refresher.RefreshEvent) {
	outcome := metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", string(ev.Outcome))))
	o.refreshes.Add(ctx, 1, outcome)
	o.duration.Record(ctx, ev.Duration.Seconds(), outcome)
	o.waiters.Record(ctx, int64(ev.Waiters))

	span := o.span(ctx)
	attrs := []attribute.KeyValue{
		attribute.String("autorefresh.outcome", string(ev.Outcome)),
		attribute.Bool("autorefresh.background", ev.Background),
		attribute.Int("autorefresh.waiters", ev.Waiters),
	}
	if ev.Kind != "" {
		attrs = append(attrs, attribute.String("autorefresh.kind", string(ev.Kind)))
	}
	if ev.StatusCode != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", ev.StatusCode))
	}
	if ev.Err != nil {
		attrs = append(attrs, attribute.String("error.type", string(ev.Outcome)))
		span.SetStatus(codes.Error, ev.Err.Error())
	}
	span.SetAttributes(attrs...)
	span.End()
}

// LockAcquired records the wait for the Store's lock. It implements
// [refresher.Observer].
func (o *Observer) LockAcquired(ctx context.Context, wait time.Duration) {
	o.lockWait.Record(ctx, wait.Seconds())
	o.span(ctx).AddEvent("autorefresh.lock.acquired", trace.WithAttributes(attribute.Float64("autorefresh.lock.wait", wait.Seconds())))
}

// LeaseLost counts a refresh aborted because the Store's lease lapsed. It
// implements [refresher.Observer].
func (o *Observer) LeaseLost(ctx context.Context) {
	o.leaseLost.Add(ctx, 1)
	o.span(ctx).AddEvent("autorefresh.lease.lost")
}

// SessionOver counts a session that ended. It implements
// [refresher.Observer]. (The refresh that ended it, if any, has the outcome
// session_over.)
func (o *Observer) SessionOver(ctx context.Context, _ error) {
	o.sessionsOver.Add(ctx, 1)
}

// TokenRejected counts a rejected token by what became of its replay, and
// adds an event to the request's span. It implements [transport.Observer].
func (o *Observer) TokenRejected(ctx context.Context, ev transport.RejectionEvent) {
	o.replays.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", string(ev.Outcome)))))
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{
		attribute.String("autorefresh.replay.outcome", string(ev.Outcome)),
		attribute.Int("http.response.status_code", ev.StatusCode),
	}
	if ev.ReplayStatus != 0 {
		attrs = append(attrs, attribute.Int("autorefresh.replay.status_code", ev.ReplayStatus))
	}
	span.AddEvent("autorefresh.token.rejected", trace.WithAttributes(attrs...))
}

// TokenWithheld counts a request that did not carry the token, by reason,
// and adds an event to the request's span. It implements
// [transport.Observer].
func (o *Observer) TokenWithheld(ctx context.Context, ev transport.WithheldEvent) {
	o.withheld.Add(ctx, 1, metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", string(ev.Reason)))))
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{attribute.String("autorefresh.withheld.reason", string(ev.Reason))}
	host, port, err := net.SplitHostPort(ev.Host)
	if err != nil {
		host, port = ev.Host, ""
	}
	attrs = append(attrs, attribute.String("server.address", host))
	if p, err := strconv.Atoi(port); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	span.AddEvent("autorefresh.token.withheld", trace.WithAttributes(attrs...))
}
