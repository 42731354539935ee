package loadgen_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"example.com/rotor/internal/loadgen"
)

// This example sends 200 requests per second for ten seconds, 30% of them
// writes, and reads every acknowledged write back afterwards. It needs a
// running rotor and the client certificate that `make up` issues.
func ExampleRun() {
	ctx := context.Background()
	client, err := loadgen.NewClient("local/certs/client", 32)
	if err != nil {
		log.Fatal(err)
	}

	result, err := loadgen.Run(ctx, loadgen.Config{
		BaseURL:     "https://localhost:8443",
		Client:      client,
		Rate:        200,
		Duration:    10 * time.Second,
		Concurrency: 32,
		WriteRatio:  0.3,
		PatchRatio:  0.3,
		ListRatio:   0.2,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d requests, %d failed, %.1f requests/s, p99 %v\n",
		result.Requests, result.Failed(), result.RequestsPerSecond, result.Latency.P99)

	if err := loadgen.Verify(ctx, client, "https://localhost:8443", result.Notes); err != nil {
		log.Fatal(err)
	}
}
