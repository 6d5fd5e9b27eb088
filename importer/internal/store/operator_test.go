package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// runOperatorStatements runs the statements of operator.go (and the status
// columns migration 010 added), for TestEveryStatementRuns, on runs of a
// scope of their own; run marks each method it runs.
func runOperatorStatements(t *testing.T, pool *pgxpool.Pool, run func(string)) {
	t.Helper()
	ctx := context.Background()
	q := store.New(pool)
	const scope, name = "scope-op", "op-1"
	_, err := q.OpenRun(ctx, store.RunParams{Name: name, Scope: scope, Source: "jsonl:/op", Notify: "newest", Rate: 5, OnFailure: "hold"})
	require.NoError(t, err)
	stage(t, pool, scope, name, []store.StageRow{
		{MsgID: "o1", ConversationID: "c1", Line: 1, Msec: 1000, Payload: []byte(`{}`)},
		{MsgID: "o2", ConversationID: "c1", Line: 2, Msec: 2000, Payload: []byte(`{}`)},
	})

	// A process that sends one message and dies without recording its end.
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	cq := store.New(conn)
	got, err := cq.TryLockProcess(ctx, 77)
	require.NoError(t, err)
	require.True(t, got)
	require.NoError(t, cq.Heartbeat(ctx, store.Process{Run: name, ID: "dead", Host: "h1", PID: 99, LockKey: 77, DeadAfter: time.Minute}))
	claimed, err := q.ClaimConversation(ctx, store.ClaimParams{Run: name, Scope: scope, Owner: "dead#0", Lease: time.Minute, Notify: "newest"})
	require.NoError(t, err)
	require.Len(t, claimed, 1)
	l := store.Lease{Run: name, Scope: scope, Conversation: "c1", Owner: "dead#0", Epoch: claimed[0].Epoch}
	_, _, err = q.MarkSending(ctx, l, time.Minute, "o1", 1)
	require.NoError(t, err)
	require.NoError(t, q.MarkSent(ctx, name, scope, "c1", store.Sent{MsgID: "o1", KommoMsgID: "k", ChatID: "chat-o"}))
	require.NoError(t, q.MarkEnded(ctx, name, "interrupted by a signal", "earlier")) // an earlier invocation's stop...
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, cq.Heartbeat(ctx, store.Process{Run: name, ID: "dead", Host: "h1", PID: 99, LockKey: 77, DeadAfter: time.Minute}))
	require.NoError(t, conn.Conn().Close(ctx)) // ... then this one is killed: its session ends
	conn.Release()

	rs, ok, err := q.RunStatus(ctx, name)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "interrupted by a signal", rs.StopReason)
	require.Equal(t, [2]any{"h1", 99}, [2]any{rs.LostHost, rs.LostPID}, "the process that died after the recorded stop")
	require.True(t, rs.LostAt.After(rs.StoppedAt))
	require.False(t, rs.ProgressAt.IsZero(), "the last delivery is the last message sent, heartbeat or not")
	require.Equal(t, [3]int64{2, 1, 1}, [3]int64{rs.Staged, rs.Sent, rs.Pending})

	run("MarkStarted")
	require.NoError(t, q.MarkStarted(ctx, name))
	require.NoError(t, q.MarkEnded(ctx, name, "", "other"))
	rs, _, err = q.RunStatus(ctx, name)
	require.NoError(t, err)
	require.Empty(t, rs.StopReason)
	require.Empty(t, rs.LostHost, "an end recorded after it: the story is that end's")

	// A process whose last heartbeat reaches the database after its own
	// recorded end (the beat was cancelled on the client but ran late on a
	// loaded server, and its row stayed: the unregister timed out) did not
	// die without recording its stop. make test-under-load saw status say
	// it had, after a SIGTERM (TestE2EStatusAfterAKillDoesNotShowAnEarlierStop).
	require.NoError(t, q.Heartbeat(ctx, store.Process{Run: name, ID: "termed", Host: "h2", PID: 98, LockKey: 78, DeadAfter: time.Minute}))
	require.NoError(t, q.MarkEnded(ctx, name, "interrupted by a signal", "termed"))
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, q.Heartbeat(ctx, store.Process{Run: name, ID: "termed", Host: "h2", PID: 98, LockKey: 78, DeadAfter: time.Minute}))
	rs, _, err = q.RunStatus(ctx, name)
	require.NoError(t, err)
	require.Equal(t, "interrupted by a signal", rs.StopReason)
	require.Empty(t, rs.LostHost, "the process that recorded the stop is not a lost one")

	// Known rejects: a later run of the scope rejects the same bytes and
	// the same msgid (other bytes); a third record is new.
	rejects := func(run string, rows []store.RejectRow) {
		conn, err := pool.Acquire(ctx)
		require.NoError(t, err)
		defer conn.Release()
		cq := store.New(conn)
		require.NoError(t, cq.CreateStageTables(ctx))
		require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if err := cq.WithTx(tx).CopyRejects(ctx, rows); err != nil {
				return err
			}
			return cq.WithTx(tx).InsertRejects(ctx, scope, run)
		}))
	}
	rejects(name, []store.RejectRow{{Line: 7, Reason: "invalid JSON", Raw: []byte("{oops")}, {Line: 8, Field: "timestamp", Reason: "bad", Raw: []byte(`{"msgid":"m-ts","timestamp":"soon"}`), MsgID: "m-ts"}})
	_, err = q.OpenRun(ctx, store.RunParams{Name: "op-2", Scope: scope, Source: "jsonl:/op", Notify: "newest", Rate: 5, OnFailure: "hold", MaxRejects: 1})
	require.NoError(t, err)
	rejects("op-2", []store.RejectRow{
		{Line: 1, Reason: "invalid JSON", Raw: []byte("{oops")},
		{Line: 2, Field: "timestamp", Reason: "bad", Raw: []byte(`{"msgid":"m-ts","timestamp":"later"}`), MsgID: "m-ts"},
		{Line: 3, Field: "sender", Reason: "required", Raw: []byte(`{"msgid":"new"}`), MsgID: "new"},
	})
	rs, _, err = q.RunStatus(ctx, "op-2")
	require.NoError(t, err)
	require.Equal(t, [4]int64{0, 2, 0, 1}, [4]int64{rs.Rejected, rs.RejectedKnown, rs.RejectedAcked, rs.MaxRejects}, "rejected counts at the staging checkpoint; known by bytes and by msgid")
	run("KnownFromRuns")
	from, err := q.KnownFromRuns(ctx, "op-2")
	require.NoError(t, err)
	require.Equal(t, []string{name}, from)
	run("AckRejects")
	n, err := q.AckRejects(ctx, "op-2")
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "the new one only")
	rs, _, err = q.RunStatus(ctx, "op-2")
	require.NoError(t, err)
	require.EqualValues(t, 1, rs.RejectedAcked)
	var infos []string
	require.NoError(t, q.EachReject(ctx, "op-2", func(r *store.RejectedRow) error {
		infos = append(infos, fmt.Sprintf("%d:%s:%s:%v", r.Line, r.MsgID, r.KnownFrom, r.Acked))
		return nil
	}))
	require.Equal(t, []string{"1::op-1:false", "2:m-ts:op-1:false", "3:new::true"}, infos)
	_, err = q.OpenRun(ctx, store.RunParams{Name: "op-2", Scope: scope, Source: "jsonl:/op", Notify: "newest", Rate: 5, OnFailure: "hold", MaxRejects: -1})
	require.NoError(t, err)
	rs, _, err = q.RunStatus(ctx, "op-2")
	require.NoError(t, err)
	require.EqualValues(t, 1, rs.MaxRejects, "-1 keeps the run's")

	// A backfill: op-3 brings c1's o0, older than o1, which op-1 sent.
	_, err = q.OpenRun(ctx, store.RunParams{Name: "op-3", Scope: scope, Source: "jsonl:/op3", Notify: "newest", Rate: 5, OnFailure: "hold", Older: "skip"})
	require.NoError(t, err)
	conn3, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn3.Release()
	c3 := store.New(conn3)
	require.NoError(t, c3.CreateStageTables(ctx))
	var older store.Older
	require.NoError(t, pgx.BeginFunc(ctx, conn3, func(tx pgx.Tx) error {
		tq := c3.WithTx(tx)
		if err := tq.CopyStage(ctx, []store.StageRow{
			{MsgID: "o0", ConversationID: "c1", Line: 1, Msec: 500, Payload: []byte(`{}`)},
			{MsgID: "o3", ConversationID: "c1", Line: 2, Msec: 3000, Payload: []byte(`{}`)},
			{MsgID: "x1", ConversationID: "c9", Line: 3, Msec: 100, Payload: []byte(`{}`)},
		}); err != nil {
			return err
		}
		if _, err := tq.InsertStaged(ctx, scope, "op-3"); err != nil {
			return err
		}
		run("MarkOlder")
		older, err = tq.MarkOlder(ctx, "op-3", scope, true)
		return err
	}))
	require.Equal(t, store.Older{Messages: 1, Conversations: 1, Chats: []store.OlderChat{{ConversationID: "c1", Messages: 1, Shown: 1000}}}, older)
	rs, _, err = q.RunStatus(ctx, "op-3")
	require.NoError(t, err)
	require.Equal(t, [4]any{int64(1), int64(1), "skip", int64(1)}, [4]any{rs.Older, rs.OlderConversations, rs.OlderMode, rs.GivenUp})

	run("EachGivenUp")
	var given []string
	require.NoError(t, q.EachGivenUp(ctx, "op-3", func(m *store.FailedRow) error { given = append(given, m.MsgID+": "+m.LastError); return nil }))
	require.Equal(t, []string{"o0: older than what its chat already shows (its newest message sent is from 1970-01-01 00:00:01 UTC): given up by --older skip"}, given)

	// A dry run of op-4 over o1 (sent by op-1), o3 (op-3's, unsent: op-3
	// is not live, so taken over) and "fresh" (new, older than o1), in a
	// READ ONLY transaction rolled back.
	conn4, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn4.Release()
	c4 := store.New(conn4)
	run("CreateDryRunTable")
	require.NoError(t, c4.CreateDryRunTable(ctx))
	var dry store.DryRun
	var dryOlder store.Older
	err = pgx.BeginTxFunc(ctx, conn4, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		tq := c4.WithTx(tx)
		run("CopyDryRun")
		if err := tq.CopyDryRun(ctx, []store.StageRow{
			{MsgID: "o1", ConversationID: "c1", Line: 1, Msec: 1000},
			{MsgID: "o3", ConversationID: "c1", Line: 2, Msec: 3000},
			{MsgID: "fresh", ConversationID: "c1", Line: 3, Msec: 900},
		}); err != nil {
			return err
		}
		run("AnalyzeDryRun")
		if err := tq.AnalyzeDryRun(ctx); err != nil {
			return err
		}
		run("DryRunCounts")
		if dry, err = tq.DryRunCounts(ctx, scope, "op-4", "newest"); err != nil {
			return err
		}
		run("DryRunOlder")
		dryOlder, err = tq.DryRunOlder(ctx, scope, "op-4")
		return err
	})
	require.NoError(t, err)
	require.Equal(t, store.DryRun{New: 1, AlreadySent: 1, TakeOver: 1, Conversations: 1, Loud: 1, HeldBy: []string{}, TakenFrom: []string{"op-3"}}, dry)
	require.Equal(t, store.Older{Messages: 1, Conversations: 1, Chats: []store.OlderChat{{ConversationID: "c1", Messages: 1, Shown: 1000}}}, dryOlder)
	run("DropDryRunTable")
	require.NoError(t, c4.DropDryRunTable(ctx))

	// A verification of op-1: o1 (sent) is found missing and marked; the
	// checkpoint keeps what it found.
	run("LatestVerification")
	_, ok, err = q.LatestVerification(ctx, name)
	require.NoError(t, err)
	require.False(t, ok, "never verified")
	run("StartVerification")
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return q.WithTx(tx).StartVerification(ctx, name, 0) }))
	run("SaveVerified")
	require.NoError(t, q.SaveVerified(ctx, name, store.Verified{ConversationID: "c1", Checked: 1, Missing: 1, OutOfOrder: 1, Requests: 2,
		Issues: []store.VerifiedIssue{{Kind: "missing", MsgID: "o1", ConversationID: "c1", ChatID: "chat-o"},
			{Kind: "out_of_order", MsgID: "o1", ConversationID: "c1", After: "zz", Count: 1}}}))
	v, ok, err := q.LatestVerification(ctx, name)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, store.Verification{Checked: 1}, v, "not finished: a verify --resume goes on")
	vc, err := q.VerifyConversations(ctx, name, "", 10)
	require.NoError(t, err)
	require.Empty(t, vc, "a conversation checked is not listed again")
	run("VerifiedSums")
	sums, err := q.VerifiedSums(ctx, name)
	require.NoError(t, err)
	require.Equal(t, store.VerifiedTotals{Conversations: 1, Checked: 1, Missing: 1, OutOfOrder: 1, OutOfOrderChats: 1, Requests: 2}, sums)
	run("VerifiedIssues")
	issues, err := q.VerifiedIssues(ctx, name, "out_of_order", 10)
	require.NoError(t, err)
	require.Equal(t, []store.VerifiedIssue{{Kind: "out_of_order", MsgID: "o1", ConversationID: "c1", After: "zz", Count: 1}}, issues)
	run("MarkMissing")
	marked, err := q.MarkMissing(ctx, name, []string{"o1", "o2"}, time.Hour)
	require.NoError(t, err)
	require.Empty(t, marked, "sent within the window: in flight")
	marked, err = q.MarkMissing(ctx, name, []string{"o1", "o2"}, time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, []string{"o1"}, marked, "only a message recorded sent")
	run("CountVerifyMarked")
	n, err = q.CountVerifyMarked(ctx, name)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
	run("VerifyMarked")
	ids, err := q.VerifyMarked(ctx, name)
	require.NoError(t, err)
	require.Equal(t, []string{"o1"}, ids)
	var reason string
	require.NoError(t, q.EachFailed(ctx, name, func(m *store.FailedRow) error { reason = m.LastError; return nil }))
	require.Regexp(t, `^verify: recorded sent at \S+ \S+ UTC \(Kommo message k\), absent from its chat's history at .* UTC: lost; retry sends it again$`, reason)
	run("FinishVerification")
	require.NoError(t, q.FinishVerification(ctx, name))
	v, _, err = q.LatestVerification(ctx, name)
	require.NoError(t, err)
	require.True(t, v.Finished)
}

// stage stages rows for run in one batch, as staging does, and plans it.
func stage(t *testing.T, pool *pgxpool.Pool, scope, name string, rows []store.StageRow) {
	t.Helper()
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	q := store.New(conn)
	require.NoError(t, q.CreateStageTables(ctx))
	require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tq := q.WithTx(tx)
		if err := tq.CopyStage(ctx, rows); err != nil {
			return err
		}
		n, err := tq.InsertStaged(ctx, scope, name)
		if err != nil {
			return err
		}
		if err := tq.CheckpointStaging(ctx, store.StagingCheckpoint{Run: name, Line: int64(len(rows)), Inserted: n, Records: int64(len(rows)), Done: true}); err != nil {
			return err
		}
		if _, err := tq.MarkPlanned(ctx, name); err != nil {
			return err
		}
		return tq.Plan(ctx, name, scope, "newest", nil)
	}))
}
