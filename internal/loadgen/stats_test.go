package loadgen

import (
	"testing"
	"time"
)

// milliseconds returns the durations of ms milliseconds each.
func milliseconds(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

// sequence returns 1, 2, ... n milliseconds in reverse order, so that
// summarize must sort them.
func sequence(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(n-i) * time.Millisecond
	}
	return out
}

func TestSummarizeNearestRank(t *testing.T) {
	cases := []struct {
		name    string
		samples []time.Duration
		want    Latency
	}{
		{"no samples", nil, Latency{}},
		{"one sample", milliseconds(7), Latency{P50: 7 * time.Millisecond, P90: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond}},
		{"two samples", milliseconds(9, 1), Latency{P50: 1 * time.Millisecond, P90: 9 * time.Millisecond, P99: 9 * time.Millisecond, Max: 9 * time.Millisecond}},
		{"ten samples", sequence(10), Latency{P50: 5 * time.Millisecond, P90: 9 * time.Millisecond, P99: 10 * time.Millisecond, Max: 10 * time.Millisecond}},
		{"hundred samples", sequence(100), Latency{P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}},
		{"thousand and one samples", sequence(1001), Latency{P50: 501 * time.Millisecond, P90: 901 * time.Millisecond, P99: 991 * time.Millisecond, Max: 1001 * time.Millisecond}},
		{"one outlier in a hundred", append(milliseconds(500), make([]time.Duration, 99)...), Latency{P50: 0, P90: 0, P99: 0, Max: 500 * time.Millisecond}},
		{"two outliers in a hundred", append(milliseconds(500, 400), make([]time.Duration, 98)...), Latency{P50: 0, P90: 0, P99: 400 * time.Millisecond, Max: 500 * time.Millisecond}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.samples); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
