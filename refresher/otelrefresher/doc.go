// Package otelrefresher reports the refreshes, replays and locks of
// package refresher and package transport to OpenTelemetry, as metrics and
// traces.
//
// An [Observer] is both a [refresher.Observer] and a [transport.Observer];
// give the same one to both:
//
//	obs := otelrefresher.New() // the global MeterProvider and TracerProvider
//	src := refresher.NewSource(endpoint, refresher.WithObserver(obs))
//	client := transport.NewClient(src, transport.WithObserver(obs))
//
// It lives in a package of its own so that refresher and transport do not
// depend on OpenTelemetry: a program that does not import otelrefresher
// does not link it.
//
// # Metrics
//
//	autorefresh.refreshes          counter {refresh}    outcome = ok | adopted | session_over | transient | misconfigured
//	autorefresh.refresh.duration   histogram s          outcome (as above)
//	autorefresh.refresh.waiters    histogram {caller}   callers that shared one refresh (0: a background refresh nobody waited for)
//	autorefresh.lock.wait          histogram s          time spent waiting for the Store's lock
//	autorefresh.lease.lost         counter {refresh}    refreshes aborted because the Store's lease lapsed
//	autorefresh.sessions.over      counter {session}    sessions that ended (log in again)
//	autorefresh.replays            counter {request}    outcome = ok | rejected_again | not_replayable | no_refresh | failed
//	autorefresh.tokens.withheld    counter {request}    reason = redirect | not_allowed | insecure_http
//
// # Traces
//
// Each refresh is a span, autorefresh.refresh, of its own trace (a refresh
// is shared by every caller that waits for it, so it belongs to none of
// their traces). It links to the span of the request that started it, and
// that span links back to it. Its attributes are autorefresh.outcome,
// autorefresh.kind, autorefresh.background, autorefresh.waiters and, when
// the refresh endpoint answered, http.response.status_code; a failed
// refresh has the status Error, with the error's text, and error.type set
// to its outcome. The Store's lock and a lost lease are events of the
// span. A rejected token and a withheld one are events of the request's
// span, if it has one.
//
// Nothing recorded contains a token: the events of refresher and transport
// carry none, and their errors never quote one.
package otelrefresher
