package importer_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

func TestRunDeliversExactlyOnceInOrder(t *testing.T) {
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(1, 12, 25)
	path := ledgertest.WriteJSONL(t, msgs)

	sum := h.run("r1", path, nil)

	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.EqualValues(t, len(msgs), sum.Sent)
	require.EqualValues(t, len(msgs), sum.SentNow)
	require.EqualValues(t, len(msgs)+1, sum.Requests, "one request per message without faults, and the preflight")
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))

	// Running the same command again sends nothing.
	again := h.run("r1", path, nil)
	require.Zero(t, again.SentNow)
	require.Zero(t, again.Requests)
	require.Len(t, h.sim.Ledger(), len(msgs))
}

func TestRunNotifyNoneIsAllSilent(t *testing.T) {
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(2, 5, 10)
	h.run("quiet", ledgertest.WriteJSONL(t, msgs), func(c *importer.Config) { c.Notify = importer.NotifyNone })
	ledgertest.Check(t, h.sim.Ledger(), msgs, map[string]string{})
}

func TestRunSurvivesFaults(t *testing.T) {
	t.Parallel()
	faults, err := sim.ParseFaults("500=0.04,503=0.04,429=0.03,accept-500=0.04,accept-drop=0.03,hang=0.01")
	require.NoError(t, err)
	// The simulator creates a duplicate for a repeated msgid: a blind resend would show.
	h := newHarness(t, sim.Options{Faults: faults, Seed: 7, FaultRetryAfter: 50 * time.Millisecond,
		Hang: 3 * time.Second, HistoryDelay: 20 * time.Millisecond})
	msgs := ledgertest.Gen(3, 15, 20)

	sum := h.run("faulty", ledgertest.WriteJSONL(t, msgs), func(c *importer.Config) {
		c.ReconcileWait = 100 * time.Millisecond
	})

	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	st := h.sim.Stats()
	require.Positive(t, st.Faults["accept-500"]+st.Faults["accept-drop"], "the faults under test were injected")
	require.Positive(t, sum.InDoubtFound, "accepted-then-failed messages were found in history, not resent")
	require.Zero(t, st.Duplicates)
}

func TestResyncSendsOnlyNewMessages(t *testing.T) {
	h := newHarness(t, sim.Options{})
	all := ledgertest.Gen(4, 10, 12)
	// The first export was taken at a moment in the middle of the history.
	msecs := make([]int64, len(all))
	for i, m := range all {
		msecs[i] = m.Msec
	}
	slices.Sort(msecs)
	cutoff := msecs[len(msecs)/2]
	var first []ledgertest.Msg
	for _, m := range all {
		if m.Msec < cutoff {
			first = append(first, m)
		}
	}
	h.run("export-1", ledgertest.WriteJSONL(t, first), nil)
	ledgertest.Check(t, h.sim.Ledger(), first, ledgertest.Newest(first))

	sum := h.run("export-2", ledgertest.WriteJSONL(t, all), nil)
	require.EqualValues(t, len(first), sum.KnownSent, "messages sent by the first run are not staged again")
	require.EqualValues(t, len(all)-len(first), sum.SentNow)
	ledgertest.Check(t, h.sim.Ledger(), all, nil) // exactly once overall

	// Loud in the second run: the newest of each conversation, if it is new.
	newestAll := ledgertest.Newest(all)
	firstIDs := map[string]bool{}
	for _, m := range first {
		firstIDs[m.ID] = true
	}
	loud2 := map[string]string{}
	for conv, id := range newestAll {
		if !firstIDs[id] {
			loud2[conv] = id
		}
	}
	var second []string
	for _, e := range h.sim.Ledger()[len(first):] {
		if !e.Silent {
			second = append(second, e.MsgID)
		}
	}
	require.ElementsMatch(t, values(loud2), second)
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestTwoImportersShareOneRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{Rate: 40})
	msgs := ledgertest.Gen(5, 20, 8)
	path := ledgertest.WriteJSONL(t, msgs)
	im := func() *importer.Importer { return h.importer("shared", path, func(c *importer.Config) { c.Rate = 20 }) }
	_, errs := runTogether(im(), im())
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	require.Zero(t, h.sim.Stats().RateLimited, "together the processes kept to the run's rate")
	require.LessOrEqual(t, h.sim.Stats().MaxRequestsInAny1s, 20+2)
}

func TestBlockedAccountStopsTheRun(t *testing.T) {
	// One rate-limit 429 and the simulated account is blocked.
	h := newHarness(t, sim.Options{Rate: 5, Burst: 1, BlockAfter: 1, RetryAfter: time.Second})
	msgs := ledgertest.Gen(6, 4, 10)
	im := h.importer("blocked", ledgertest.WriteJSONL(t, msgs), func(c *importer.Config) { c.Rate = 100 })
	sum, err := im.Run(context.Background(), nil)
	var stop *importer.StopError
	require.True(t, errors.As(err, &stop), "got %v", err)
	require.Equal(t, importer.StopBlocked, stop.Reason)
	require.Contains(t, stop.Error(), "blocked")
	require.Equal(t, importer.OutcomeStopped, sum.Outcome)
	require.Zero(t, sum.Sending, "a refused request is not left in doubt")
	require.Less(t, sum.Sent, int64(len(msgs)))
}

func TestSoftStopCheckpointsAndResumes(t *testing.T) {
	h := newHarness(t, sim.Options{Latency: 5 * time.Millisecond})
	msgs := ledgertest.Gen(8, 10, 30)
	path := ledgertest.WriteJSONL(t, msgs)
	soft := make(chan struct{})
	im := h.importer("soft", path, func(c *importer.Config) { c.Rate = 100 })
	go func() {
		for im.Progress().SentNow < 20 {
			time.Sleep(5 * time.Millisecond)
		}
		close(soft)
	}()
	sum, err := im.Run(context.Background(), soft)
	require.ErrorIs(t, err, importer.ErrInterrupted)
	require.Equal(t, importer.OutcomeInterrupted, sum.Outcome)
	require.Zero(t, sum.Sending, "a soft stop finishes the requests in flight")
	require.Less(t, sum.Sent, int64(len(msgs)))

	final := h.run("soft", path, nil)
	require.Equal(t, importer.OutcomeDone, final.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
}

func TestClockSkewStopsWithTheSkewNamed(t *testing.T) {
	// The API's clock is 20 minutes ahead of ours: every signature is refused.
	h := newHarness(t, sim.Options{Now: func() time.Time { return time.Now().Add(20 * time.Minute) }})
	msgs := ledgertest.Gen(9, 3, 5)
	im := h.importer("skew", ledgertest.WriteJSONL(t, msgs), nil)
	sum, err := im.Run(context.Background(), nil)
	var stop *importer.StopError
	require.True(t, errors.As(err, &stop), "got %v", err)
	require.Equal(t, importer.StopClockSkew, stop.Reason)
	require.Contains(t, stop.Error(), "clock is about 20m0s behind the API's")
	// The preflight's one request found it: nothing staged, no run left
	// behind, no retries burnt.
	require.Nil(t, sum)
	require.EqualValues(t, 1, h.sim.Stats().RejectedSignature)
	requireNoRun(t, h, "skew")
}

func TestUnknownScopeStopsInsteadOfFailingEveryMessage(t *testing.T) {
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(10, 3, 5)
	sum, err := h.importerForScope("wrong-scope", ledgertest.WriteJSONL(t, msgs), "not-registered").Run(context.Background(), nil)
	var stop *importer.StopError
	require.True(t, errors.As(err, &stop), "got %v", err)
	require.Equal(t, importer.StopUnknownScope, stop.Reason)
	require.Contains(t, stop.Error(), "does not know this scope")
	require.Nil(t, sum, "stopped at the preflight: no message failed, no run left behind")
	requireNoRun(t, h, "wrong-scope")
}

// requireNoRun checks that the database holds no run named run.
func requireNoRun(t *testing.T, h *harness, run string) {
	t.Helper()
	var n int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM kommo_import_runs WHERE name = $1`, run).Scan(&n))
	require.Zero(t, n)
}

func TestTwoRunsOnOneScopeNeverSendAMsgidTwice(t *testing.T) {
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(13, 15, 10)
	// Two exports of the same history, started as different runs at once.
	paths := []string{ledgertest.WriteJSONL(t, msgs), ledgertest.WriteJSONL(t, msgs)}
	var wg sync.WaitGroup
	sums := make([]*importer.Summary, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			sums[i], err = h.importer([]string{"run-a", "run-b"}[i], paths[i], nil).Run(context.Background(), nil)
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	// The scope-level key decided: each msgid was staged by exactly one run,
	// and the other run says why it skipped it.
	require.EqualValues(t, len(msgs), sums[0].Staged+sums[1].Staged)
	for i, s := range sums {
		other := sums[1-i]
		require.EqualValues(t, other.Staged, s.KnownSent+s.KnownOther, "run %s skipped what %s holds", s.Name, other.Name)
	}
}

func TestConversationsOfADeadProcessAreTakenOver(t *testing.T) {
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(14, 4, 10)
	path := ledgertest.WriteJSONL(t, msgs)
	// Stage and plan, then stop before sending.
	soft := make(chan struct{})
	close(soft)
	_, err := h.importer("dead", path, nil).Run(context.Background(), soft)
	require.ErrorIs(t, err, importer.ErrInterrupted)
	// A process that was killed holds every conversation with an hour left on its lease.
	ctx := context.Background()
	_, err = h.pool.Exec(ctx, `INSERT INTO kommo_import_processes (run_name, process_id, host, pid, heartbeat_at)
		VALUES ('dead', 'killed-process', 'h', 1, now() - interval '1 minute')`)
	require.NoError(t, err)
	_, err = h.pool.Exec(ctx, `UPDATE kommo_import_conversations SET lease_owner = 'killed-process', lease_until = now() + interval '1 hour'`)
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sum, err := h.importer("dead", path, nil).Run(ctx, nil)
	require.NoError(t, err, "the run waited for the dead process's leases")
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
}

func TestRateLimitPausesEveryWorkerAndStepsDown(t *testing.T) {
	t.Parallel()
	// The API allows 5/s; the run was started at 40/s. Every 429 pauses all
	// workers for the API's retry-after and halves the rate: a handful of
	// 429s, not hundreds, and no message lost or sent twice.
	h := newHarness(t, sim.Options{Rate: 5, Burst: 1, RetryAfter: time.Second})
	msgs := ledgertest.Gen(15, 6, 8)
	sum := h.run("too-fast", ledgertest.WriteJSONL(t, msgs), func(c *importer.Config) { c.Rate = 40 })
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	st := h.sim.Stats()
	require.Positive(t, st.RateLimited, "the run went over the API's limit at first")
	require.LessOrEqual(t, st.RateLimited, int64(8), "after a 429 nobody retries into the pause, and the rate steps down")
	require.Equal(t, st.RateLimited, sum.RateLimited)
}
