package importer_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/migrations"
)

// sustained is the rate of the simulator's accepted messages between the
// first and the last, in messages per second.
func sustained(l []sim.LedgerEntry) float64 {
	if len(l) < 2 {
		return 0
	}
	first, last := l[0].ReceivedAt, l[len(l)-1].ReceivedAt
	for _, e := range l {
		if e.ReceivedAt.Before(first) {
			first = e.ReceivedAt
		}
		if e.ReceivedAt.After(last) {
			last = e.ReceivedAt
		}
	}
	return float64(len(l)-1) / last.Sub(first).Seconds()
}

// The rate is one schedule for the scope: one process or several, as the
// API sees it no second holds more than the rate, and the rate is spent.
func TestRateIsExactWithOneOrSeveralProcesses(t *testing.T) {
	t.Parallel()
	const rate = 20
	for _, procs := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d processes", procs), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, sim.Options{})
			msgs := ledgertest.Gen(uint64(60+procs), 40, 6) // ~140 messages: 7 s at 20/s
			path := ledgertest.WriteJSONL(t, msgs)
			ims := make([]*importer.Importer, procs)
			logs := make([]syncWriter, procs)
			for i := range ims {
				ims[i] = h.importer("rate", path, func(c *importer.Config) {
					c.Rate = rate
					c.Logger = slog.New(slog.NewTextHandler(&logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))
				})
			}
			sums, errs := runTogether(ims...)
			defer func() {
				if t.Failed() {
					for i, sum := range sums {
						t.Logf("process %d: %+v, %v\n%s", i, sum, errs[i], logs[i].String())
					}
				}
			}()
			for _, err := range errs {
				require.NoError(t, err)
			}
			ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
			st := h.sim.Stats()
			got := sustained(h.sim.Ledger())
			t.Logf("%d processes: %d messages, max %d requests in any second as sent (%d as the simulator saw them), sustained %.2f/s (%.1f%% of %d)",
				procs, len(msgs), h.sent.maxInAnySecond(), st.MaxRequestsInAny1s, got, 100*got/rate, rate)
			require.LessOrEqual(t, h.sent.maxInAnySecond(), rate, "no second saw more than the rate leave")
			// The simulator shares this race-instrumented process and two
			// loaded cores: its own clock can see a request a few ms late.
			// The e2e tests measure the real binaries as the API sees them.
			require.LessOrEqual(t, st.MaxRequestsInAny1s, rate+1)
			// 99.2% on a quiet machine (the schedule's 0.8% margin). Under
			// the race detector on a loaded machine some timers wake late,
			// and a late slot is given up rather than crowd a second
			// (93-99% seen with other test packages and benchmarks beside
			// it). The real binaries are measured by the e2e tests and
			// scripts/bench-send.sh.
			// A generous floor: the tests must hold on a loaded machine (where
			// the margin widens with the measured lateness and slots are given
			// up: 67% with three processes, and 37.8% with one at a load of 6
			// while the e2e package ran beside it, under make
			// test-under-load); the rate spent to 99% is measured by make
			// bench-send. What this guards is the bound above and that
			// nothing starves.
			require.GreaterOrEqual(t, got, 0.25*rate, "the rate was spent")
		})
	}
}

// A database whose answers take 80 ms (slow commits, a distant server)
// still lets the rate be spent: a send's checkpoint starts twice the
// slowest recent one before its slot, so the request goes out on time
// instead of giving every slot up.
func TestASlowDatabaseStillSpendsTheRate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	pool, proxy := proxiedPool(t)
	h.pool = pool
	proxy.SetLatency(80 * time.Millisecond)
	msgs := ledgertest.Gen(62, 30, 4)
	const rate = 10
	sum := h.run("slow-db", ledgertest.WriteJSONL(t, msgs), func(c *importer.Config) { c.Rate = rate; c.Workers = 8 })
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	got := sustained(h.sim.Ledger())
	t.Logf("%d messages through an 80 ms database: sustained %.2f/s (%.1f%% of %d), max %d in any second; %d slots given up, %d retries, %d in doubt, %.1f s",
		len(msgs), got, 100*got/rate, rate, h.sim.Stats().MaxRequestsInAny1s, sum.SlotsGivenUp, sum.Retries, sum.InDoubt, sum.ElapsedSeconds)
	require.LessOrEqual(t, h.sent.maxInAnySecond(), rate)
	require.LessOrEqual(t, h.sim.Stats().MaxRequestsInAny1s, rate+1)
	// A generous floor (74.9% and 48.8% under make test-under-load, and
	// once 23%: 57 s for 79 messages, as when a stall between the heartbeat
	// and the reap made the process free its own conversations and park
	// them in doubt, TestADatabaseStallDoesNotSlowTheRestOfTheRun, each
	// fenced for the 30 s the harness's request timeout then was,
	// TestALapseCostsTheRunOnlyTheRequestTimeout): with a
	// fixed lead the run sent nothing at all; make bench-send measures the
	// rate.
	require.GreaterOrEqual(t, got, 0.25*rate, "the rate was spent (a generous floor; make bench-send measures it)")
}

// A database that stalls for a second (a checkpoint's fsync, a failover)
// makes the sends in flight wait that long, once. The lead (how long
// before its slot a send's checkpoint starts) follows the slow tail of the
// checkpoints; it must not follow it so far that the workers can no
// longer spend the rate: with a lead of 2 s, 8 workers make at most about
// 4 requests/s, whatever --rate says, until the stall left the window.
func TestADatabaseStallDoesNotSlowTheRestOfTheRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	pool, proxy := proxiedPool(t)
	h.pool = pool
	proxy.SetLatency(10 * time.Millisecond)
	msgs := ledgertest.Gen(64, 90, 4)
	const rate = 20
	stalled := make(chan time.Time, 1)
	go func() {
		for h.sim.Stats().Requests < 30 {
			time.Sleep(5 * time.Millisecond)
		}
		proxy.SetLatency(time.Second)
		time.Sleep(1500 * time.Millisecond)
		proxy.SetLatency(10 * time.Millisecond)
		stalled <- time.Now()
	}()
	sum := h.run("db-stall", ledgertest.WriteJSONL(t, msgs), func(c *importer.Config) { c.Rate = rate; c.Workers = 8 })
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	// The rate after the stall, from a second after it ended (its last
	// checkpoints are done) to the end.
	after := (<-stalled).Add(time.Second)
	var rest []sim.LedgerEntry
	for _, e := range h.sim.Ledger() {
		if e.ArrivedAt.After(after) {
			rest = append(rest, e)
		}
	}
	require.Greater(t, len(rest), 60, "enough messages after the stall to measure")
	got := sustained(rest)
	t.Logf("%d messages, %d after a 1 s database stall: sustained %.2f/s after it (%.1f%% of %d); %d slots given up, %d in doubt",
		len(msgs), len(rest), got, 100*got/rate, rate, sum.SlotsGivenUp, sum.InDoubt)
	// The process freed its own conversations when its beat reached the
	// database late: their messages went in doubt, parked for 28 s (the
	// harness's request timeout was the 30 s default then).
	require.Zero(t, sum.InDoubt, "no message was left in doubt by the stall")
	require.LessOrEqual(t, h.sent.maxInAnySecond(), rate)
	// 8 workers with a 2 s lead make about 3.9/s. A generous floor for a
	// loaded machine.
	require.GreaterOrEqual(t, got, 0.5*rate, "the rate was spent after the stall")
}

// A process whose heartbeats lapse for a moment (its database answers a
// second late; a loaded machine) counts as gone: another process of the run
// frees its conversations and takes them over. A message it had
// checkpointed is in doubt, and waits until that process's request could
// no longer arrive: its lease's end plus the request timeout. That is the
// whole cost; with the harness's request timeout left at the 30 s default
// while its client gave up after 2 s, one lapse under make test-under-load
// stretched a 7 s run to 35 s (23% of the rate).
func TestALapseCostsTheRunOnlyTheRequestTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	// Two processes on one database, the first through a proxy.
	dbURL := pgtest.URL(t)
	proxy, proxiedURL := pgtest.NewProxy(t, dbURL)
	var pools [2]*pgxpool.Pool
	for i, u := range []string{proxiedURL, dbURL} {
		var err error
		pools[i], err = importer.Connect(context.Background(), u, 10)
		require.NoError(t, err)
		t.Cleanup(pools[i].Close)
	}
	_, err := migrations.Apply(context.Background(), pools[1])
	require.NoError(t, err)
	msgs := ledgertest.Gen(66, 60, 3)
	path := ledgertest.WriteJSONL(t, msgs)
	var logs [2]syncWriter
	ims := make([]*importer.Importer, 2)
	for i, pool := range pools {
		h.pool = pool
		ims[i] = h.importer("lapse", path, func(c *importer.Config) {
			c.Rate = 20
			c.Logger = slog.New(slog.NewTextHandler(&logs[i], nil))
		})
	}
	go func() {
		for h.sim.Stats().Requests < 30 {
			time.Sleep(5 * time.Millisecond)
		}
		proxy.SetLatency(time.Second) // the first process's beats lapse
		time.Sleep(2 * time.Second)
		proxy.SetLatency(0)
	}()
	start := time.Now()
	_, errs := runTogether(ims...)
	took := time.Since(start)
	defer func() {
		if t.Failed() {
			t.Logf("the lapsing process:\n%s\nthe other:\n%s", logs[0].String(), logs[1].String())
		}
	}()
	for _, err := range errs {
		require.NoError(t, err)
	}
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	require.Contains(t, logs[1].String(), "freed the conversations of processes that are gone",
		"the second process took the first for gone (what this test is about)")
	t.Logf("%d messages at 20/s, one process's database a second late for 2 s: %.1f s", len(msgs), took.Seconds())
	// 133 messages at 20/s are 7 s: 7.8-8.4 s here; with the fence at the
	// 30 s default, 33.7 s.
	require.Less(t, took, 25*time.Second, "the taken-over conversations waited no longer than the request timeout")
}
