package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/testcontainers/testcontainers-go"
)

// cpuTime is the CPU time, user and system, that each part of a stack has
// used since it started.
type cpuTime struct {
	// process is this test process, which runs both rotor and the load
	// generator, so their CPU times cannot be separated.
	process  time.Duration
	postgres time.Duration
	vault    time.Duration

	// machineTicks counts the time of all CPUs of the machine, busy or
	// idle, and stolenTicks the part of it that the hypervisor gave to other
	// guests, both in the unit of /proc/stat.
	machineTicks int64
	stolenTicks  int64
}

// stolenShare returns the part of the machine's CPU time that other guests
// took.
func (c cpuTime) stolenShare() float64 {
	if c.machineTicks <= 0 {
		return 0
	}
	return float64(c.stolenTicks) / float64(c.machineTicks)
}

func (c cpuTime) sub(earlier cpuTime) cpuTime {
	return cpuTime{
		process:      c.process - earlier.process,
		postgres:     c.postgres - earlier.postgres,
		vault:        c.vault - earlier.vault,
		machineTicks: c.machineTicks - earlier.machineTicks,
		stolenTicks:  c.stolenTicks - earlier.stolenTicks,
	}
}

// cpuMeter reads the CPU time of this process from the kernel and that of
// the Postgres and Vault containers from the Docker engine's statistics,
// which count every process of a container.
type cpuMeter struct {
	docker     *testcontainers.DockerClient
	postgresID string
	vaultID    string
}

func newCPUMeter(t *testing.T, s *stack) *cpuMeter {
	t.Helper()
	docker, err := testcontainers.NewDockerClientWithOpts(t.Context())
	if err != nil {
		t.Fatalf("connect to the Docker engine to read containers' CPU time: %v", err)
	}
	t.Cleanup(func() { docker.Close() })
	return &cpuMeter{
		docker:     docker,
		postgresID: s.pg.Container.GetContainerID(),
		vaultID:    s.vault.Container.GetContainerID(),
	}
}

func (m *cpuMeter) read(t *testing.T) cpuTime {
	t.Helper()
	var c cpuTime
	var err error
	if c.process, err = processCPUTime(); err != nil {
		t.Fatalf("read this process's CPU time: %v", err)
	}
	if c.postgres, err = m.containerCPUTime(t.Context(), m.postgresID); err != nil {
		t.Fatalf("read the Postgres container's CPU time: %v", err)
	}
	if c.vault, err = m.containerCPUTime(t.Context(), m.vaultID); err != nil {
		t.Fatalf("read the Vault container's CPU time: %v", err)
	}
	if c.machineTicks, c.stolenTicks, err = machineCPUTicks(); err != nil {
		t.Fatalf("read the machine's CPU time: %v", err)
	}
	return c
}

func (m *cpuMeter) containerCPUTime(ctx context.Context, id string) (time.Duration, error) {
	stats, err := m.docker.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if err != nil {
		return 0, err
	}
	defer stats.Body.Close()

	var sample container.StatsResponse
	if err := json.NewDecoder(stats.Body).Decode(&sample); err != nil {
		return 0, fmt.Errorf("decode the statistics of container %s: %w", id, err)
	}
	return time.Duration(sample.CPUStats.CPUUsage.TotalUsage), nil
}

// machineCPUTicks returns the time of all CPUs from the first line of
// /proc/stat, and the part of it stolen by the hypervisor, which is the
// eighth value on that line. A shared host runs this machine's work more
// slowly while its other guests are busy, and steal is the part of that
// slowdown which Linux can see.
func machineCPUTicks() (total, stolen int64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	fields := strings.Fields(line)
	if len(fields) < 9 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ticks [8]int64
	for i := range ticks {
		if ticks[i], err = strconv.ParseInt(fields[i+1], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: value %d of %q: %w", i+1, line, err)
		}
	}
	for _, n := range ticks {
		total += n
	}
	return total, ticks[7], nil
}

// processCPUTime returns the user and system CPU time of this process.
func processCPUTime() (time.Duration, error) {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0, err
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano()), nil
}

// connectionCostSamples is how many connections measureConnectionCost opens.
const connectionCostSamples = 50

// connectionCost is the CPU time that opening and closing one Postgres
// connection costs each side.
type connectionCost struct {
	client   time.Duration
	postgres time.Duration
}

// measureConnectionCost opens and closes connectionCostSamples connections
// to s's Postgres one after the other, each with a SCRAM login and one
// query as rotor's connections have, and returns the CPU time per
// connection. A rotation opens a connection for each one that requests
// held at once, so this is most of what a rotation costs Postgres.
func measureConnectionCost(t *testing.T, s *stack, meter *cpuMeter) connectionCost {
	t.Helper()
	before := meter.read(t)
	for range connectionCostSamples {
		conn, err := pgx.Connect(t.Context(), s.pg.URL)
		if err != nil {
			t.Fatalf("connect to Postgres: %v", err)
		}
		var one int
		err = conn.QueryRow(t.Context(), "SELECT 1").Scan(&one)
		conn.Close(t.Context())
		if err != nil {
			t.Fatalf("SELECT 1: %v", err)
		}
	}
	used := meter.read(t).sub(before)
	return connectionCost{
		client:   used.process / connectionCostSamples,
		postgres: used.postgres / connectionCostSamples,
	}
}
