package handlers

import (
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics counts and times requests. Every label comes from a bounded
// set (route patterns, known methods, status codes), so clients cannot grow
// the number of series.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newHTTPMetrics registers the metrics on reg and panics if they are already
// registered there.
func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rotor_http_requests_total",
			Help: "HTTP requests served by the notes API, by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rotor_http_request_duration_seconds",
			Help:    "Time to serve a request of the notes API in seconds, by route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(route, method string, status int, duration time.Duration) {
	m.requests.WithLabelValues(route, methodLabel(method), strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route).Observe(duration.Seconds())
}

// methodLabel returns method if it is a standard HTTP method and "OTHER"
// otherwise, because the method of a request is any token the client sends.
func methodLabel(method string) string {
	if slices.Contains(standardMethods, method) {
		return method
	}
	return "OTHER"
}
