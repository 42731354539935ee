package app

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/rotor/internal/db"
	"example.com/rotor/internal/secrets"
)

var connectionsDesc = prometheus.NewDesc(
	"rotor_db_connections",
	"Open database connections by the generation of the credential they logged in with; 0 for a credential already revoked.",
	[]string{"generation"}, nil,
)

// connectionsCollector reports the pool's connections per credential
// generation, which shows old connections draining after a rotation.
type connectionsCollector struct {
	pool    *db.Pool
	secrets *secrets.Manager
}

func (c *connectionsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- connectionsDesc
}

func (c *connectionsCollector) Collect(ch chan<- prometheus.Metric) {
	byGeneration := make(map[uint64]int)
	for user, n := range c.pool.ConnectionsByUser() {
		byGeneration[c.secrets.GenerationOf(user)] += n
	}
	for generation, n := range byGeneration {
		ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue,
			float64(n), strconv.FormatUint(generation, 10))
	}
}
