package tlsx_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"example.com/rotor/internal/tlsx"
	"example.com/rotor/internal/tlsx/tlsxtest"
)

// BenchmarkReloadLatency measures the time from a kubelet ..data swap to
// the first handshake that presents the new certificate, with the default
// debounce and retry settings, watching with fsnotify or polling every
// second. Each iteration is one swap. Run it with a
// fixed count, as `make bench-reload` does:
//
//	go test -run '^$' -bench BenchmarkReloadLatency -benchtime 20x ./internal/tlsx/
//
// It reports the median and the maximum in milliseconds. The loop that
// looks for the new serial runs handshakes back to back, so each figure
// includes up to one handshake time, about a millisecond on loopback.
func BenchmarkReloadLatency(b *testing.B) {
	modes := []struct {
		name string
		cfg  tlsx.ReloaderConfig
	}{
		{name: "fsnotify", cfg: tlsx.ReloaderConfig{Mode: tlsx.WatchFSNotify}},
		{name: "poll-1s", cfg: tlsx.ReloaderConfig{Mode: tlsx.WatchPoll, PollInterval: time.Second}},
	}
	for _, mode := range modes {
		b.Run(mode.name, func(b *testing.B) {
			ca := tlsxtest.NewCA(b, "rotor bench CA")
			client := ca.IssueClient(b, "spiffe://rotor.example/client/bench")
			dir := b.TempDir()
			tlsxtest.WriteVolume(b, dir, tlsxtest.SecretFiles(b, ca.IssueServer(b, "127.0.0.1"), ca))
			source := mustLoad(b, dir, "")
			ts := startServer(b, source)
			startReloader(b, source, mode.cfg)

			pairs := make([]*tlsxtest.KeyPair, b.N)
			for i := range pairs {
				pairs[i] = ca.IssueServer(b, "127.0.0.1")
			}
			latencies := make([]time.Duration, 0, b.N)

			b.ResetTimer()
			for _, pair := range pairs {
				// Polling finds a swap up to one interval later. A pause of
				// random length puts each swap at a random point of the
				// interval, as a renewal would fall, instead of right after
				// the tick that found the previous one.
				if mode.cfg.Mode == tlsx.WatchPoll {
					time.Sleep(rand.N(mode.cfg.PollInterval))
				}
				tlsxtest.WriteVolume(b, dir, tlsxtest.SecretFiles(b, pair, ca))
				swapped := time.Now()
				for servedSerial(b, ts, ca, client).Cmp(pair.Cert.SerialNumber) != 0 {
					if time.Since(swapped) > waitTimeout {
						b.Fatalf("the new certificate was not served within %s", waitTimeout)
					}
				}
				latencies = append(latencies, time.Since(swapped))
			}
			b.StopTimer()

			slices.Sort(latencies)
			b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "max-ms")
			b.ReportMetric(0, "ns/op")
		})
	}
}
