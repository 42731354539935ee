package loadgen

import (
	"slices"
	"time"
)

// Latency summarizes request latencies. Each percentile is the smallest
// latency that at least that share of the requests did not exceed (the
// nearest-rank method), so it is always a measured value. All fields are
// zero when no request ended.
type Latency struct {
	P50 time.Duration
	P90 time.Duration
	P99 time.Duration
	Max time.Duration
}

// summarize returns the percentiles of samples. It sorts samples in place.
func summarize(samples []time.Duration) Latency {
	if len(samples) == 0 {
		return Latency{}
	}
	slices.Sort(samples)

	return Latency{
		P50: percentile(samples, 50),
		P90: percentile(samples, 90),
		P99: percentile(samples, 99),
		Max: samples[len(samples)-1],
	}
}

// percentile returns the p-th percentile, 0 < p <= 100, of sorted samples
// by the nearest-rank method: the value at rank ceil(p/100 * n), computed in
// integers so that no rounding moves the rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[rank-1]
}
