package importer_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// stopAfter closes a soft-stop channel once im has sent n messages.
func stopAfter(im *importer.Importer, n int64) chan struct{} {
	soft := make(chan struct{})
	go func() {
		for im.Progress().SentNow < n {
			time.Sleep(2 * time.Millisecond)
		}
		close(soft)
	}()
	return soft
}

// newer returns msgs and n more messages, each newer than everything before
// in its conversation, in new conversations or old ones.
func newer(msgs []ledgertest.Msg, n int) []ledgertest.Msg {
	out := slices.Clone(msgs)
	var last int64
	for _, m := range msgs {
		last = max(last, m.Msec)
	}
	for i := range n {
		out = append(out, ledgertest.Msg{Conv: fmt.Sprintf("conv-%03d", i%40), ID: fmt.Sprintf("new-%04d", i), Msec: last + int64(i+1)*1000})
	}
	return out
}

// The cron case: a run is interrupted, a newer export (the old one and more)
// replaces the file, the same command runs (a new run, since the file
// changed): the new run takes over every msgid the old one had not sent,
// and an in-doubt one is looked up before it would be sent again.
func TestAnInterruptedRunsMessagesAreTakenOverByTheNextExport(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{Latency: time.Millisecond})
	v1 := ledgertest.Gen(70, 30, 20)
	im := h.importer("export-v1", ledgertest.WriteJSONL(t, v1), func(c *importer.Config) { c.Rate = 500 })
	sum, err := im.Run(context.Background(), stopAfter(im, 60))
	require.ErrorIs(t, err, importer.ErrInterrupted)
	sentByV1 := sum.Sent
	require.Less(t, sentByV1, int64(len(v1)))

	// One message v1 sent is left in doubt, as a kill right after its
	// request would leave it: the next run must find it, not send it again.
	var doubt string
	require.NoError(t, h.pool.QueryRow(context.Background(),
		`UPDATE kommo_import_messages SET state = 'sending', last_attempt_at = now() - interval '1 minute'
		 WHERE msgid = (SELECT msgid FROM kommo_import_messages WHERE run_name = 'export-v1' AND state = 'sent' LIMIT 1)
		 RETURNING msgid`).Scan(&doubt))

	v2 := newer(v1, 50)
	sum2 := h.run("export-v2", ledgertest.WriteJSONL(t, v2), nil)
	require.Equal(t, importer.OutcomeDone, sum2.Outcome)
	require.EqualValues(t, int64(len(v1))-sentByV1+1, sum2.TakenOver, "every msgid v1 had not sent, the in-doubt one included")
	require.Zero(t, sum2.KnownOther, "nothing is left held by a run nobody works")
	require.EqualValues(t, sentByV1-1, sum2.KnownSent)
	require.EqualValues(t, 1, sum2.InDoubtFound, "the in-doubt message was found in its chat, not sent again")
	ledgertest.Check(t, h.sim.Ledger(), v2, nil)

	st, err := importer.Status(context.Background(), h.pool, "export-v1")
	require.NoError(t, err)
	require.Zero(t, st.Pending+st.Sending, "v1 holds nothing back")
}

// fakeSource yields records from memory: a stream, read again from the
// start whenever staging opens it.
type fakeSource struct {
	recs []sources.Record
	i    int
}

func (f *fakeSource) Next(context.Context) (sources.Record, error) {
	if f.i >= len(f.recs) {
		return sources.Record{}, io.EOF
	}
	f.i++
	return f.recs[f.i-1], nil
}
func (f *fakeSource) Name() string         { return "fake stream" }
func (f *fakeSource) Resumable() bool      { return false }
func (f *fakeSource) Stats() sources.Stats { return sources.Stats{Records: int64(f.i)} }
func (f *fakeSource) Close() error         { return nil }
func (f *fakeSource) open() importer.OpenFunc {
	return func(context.Context) (importer.Source, error) { f.i = 0; return f, nil }
}

func records(msgs []ledgertest.Msg) []sources.Record {
	out := make([]sources.Record, len(msgs))
	for i, m := range msgs {
		out[i] = sources.Record{Line: int64(i + 1), Payload: wire.Payload{
			Timestamp: m.Msec / 1000, MsecTimestamp: m.Msec, MsgID: m.ID, ConversationID: m.Conv,
			Sender:  &wire.Participant{ID: "client-" + m.Conv, Name: "Client " + m.Conv},
			Message: &wire.Message{Type: wire.TypeText, Text: "hello from " + m.ID},
		}}
	}
	return out
}

// An interrupted staging of a stream (stdin, a query) resumes by reading
// the input again from the start: staging is idempotent by (scope, msgid),
// so whatever order the second read has, nothing is skipped or doubled.
func TestAnInterruptedStreamIsStagedAgainFromTheStart(t *testing.T) {
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(71, 30, 10)
	src := &fakeSource{recs: records(msgs)}
	stream := func(c *importer.Config) {
		c.Open, c.Source, c.BatchSize = src.open(), sources.Identity{Label: "jsonl:-", Stream: true}, 20
	}
	soft := make(chan struct{})
	close(soft) // stops after the first staging batch
	_, err := h.importer("stream", "", stream).Run(context.Background(), soft)
	require.ErrorIs(t, err, importer.ErrInterrupted)
	st, err := importer.Status(context.Background(), h.pool, "stream")
	require.NoError(t, err)
	require.False(t, st.StagingDone)
	require.Positive(t, st.StagedLine)

	// The second read comes in another order, as a query's may.
	slices.Reverse(src.recs)
	sum := h.run("stream", "", stream)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.EqualValues(t, len(msgs), sum.Staged)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
}

// A table is read whole whenever its staging starts (rows inserted before
// the point where an earlier read stopped are not skipped), and once its
// run has finished, the same command is a re-sync: a new run that sends
// what the table gained.
func TestATableIsReadAgainAndAGrownTableIsAResync(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{})
	srcURL := pgtest.URL(t)
	ctx := context.Background()
	src, err := pgx.Connect(ctx, srcURL)
	require.NoError(t, err)
	t.Cleanup(func() { src.Close(context.Background()) })
	_, err = src.Exec(ctx, `CREATE TABLE chat (conversation_id text, msgid text, msec_timestamp bigint, sender_id text, sender_name text, message_type text, message_text text)`)
	require.NoError(t, err)
	insert := func(msgs []ledgertest.Msg) {
		t.Helper()
		for _, m := range msgs {
			_, err := src.Exec(ctx, `INSERT INTO chat VALUES ($1, $2, $3, $4, $5, 'text', $6)`, m.Conv, m.ID, m.Msec, "client-"+m.Conv, "Client "+m.Conv, "hello from "+m.ID)
			require.NoError(t, err)
		}
	}
	spec := sources.Spec{Kind: sources.KindPostgres, DSN: srcURL, Table: "chat"}
	id, err := spec.Identity()
	require.NoError(t, err)
	table := func(c *importer.Config) {
		c.Run, c.Source, c.BatchSize = "", id, 25
		c.Open = func(ctx context.Context) (importer.Source, error) { return sources.Open(ctx, spec) }
	}
	first := ledgertest.Gen(72, 20, 10)
	for i := range first {
		first[i].ID = "m-" + first[i].ID // sorts after "a-..."
	}
	insert(first)
	soft := make(chan struct{})
	close(soft)
	im := h.importer("", "", table)
	_, err = im.Run(ctx, soft)
	require.ErrorIs(t, err, importer.ErrInterrupted)
	name := im.RunName()

	// Rows whose msgids sort before everything staged so far.
	early := []ledgertest.Msg{{Conv: "conv-900", ID: "a-early-1", Msec: first[0].Msec + 1}, {Conv: "conv-901", ID: "a-early-2", Msec: first[0].Msec + 2}}
	insert(early)
	sum := h.run("", "", table)
	require.Equal(t, name, sum.Name, "the same command resumed the run")
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	all := append(slices.Clone(first), early...)
	ledgertest.Check(t, h.sim.Ledger(), all, ledgertest.Newest(all))

	// The table grows; the same command again is a re-sync.
	late := []ledgertest.Msg{{Conv: "conv-902", ID: "a-late-1", Msec: first[0].Msec + 3}}
	insert(late)
	resync := h.run("", "", table)
	require.Equal(t, name+".2", resync.Name)
	require.EqualValues(t, 1, resync.SentNow)
	require.EqualValues(t, len(all), resync.KnownSent)
	ledgertest.Check(t, h.sim.Ledger(), append(all, late...), nil)
}

// holdAsLiveProcess registers a process on run whose session (the test's
// own connection) holds its lock: live, as far as every importer can tell.
func holdAsLiveProcess(t *testing.T, h *harness, run, id string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, h.pool.Config().ConnConfig.ConnString())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	_, err = conn.Exec(ctx, `SELECT pg_advisory_lock(4242)`)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO kommo_import_processes (run_name, process_id, host, pid, lock_key, expires_at)
		VALUES ($1, $2, 'elsewhere', 1, 4242, now() + interval '1 hour')`, run, id)
	require.NoError(t, err)
	return conn
}

func TestAbandonAndDeleteRuns(t *testing.T) {
	h := newHarness(t, sim.Options{})
	ctx := context.Background()
	msgs := ledgertest.Gen(73, 10, 10)
	path := ledgertest.WriteJSONL(t, msgs)
	im := h.importer("old", path, nil)
	_, err := im.Run(ctx, stopAfter(im, 5))
	require.ErrorIs(t, err, importer.ErrInterrupted)

	live := holdAsLiveProcess(t, h, "old", "someone-else")
	require.ErrorIs(t, importer.AbandonRun(ctx, h.pool, "old"), importer.ErrRunLive)
	require.ErrorIs(t, importer.DeleteRun(ctx, h.pool, "old"), importer.ErrRunLive)
	require.NoError(t, live.Close(ctx))
	// The server ends the closed session, and its lock, a moment later.
	require.Eventually(t, func() bool {
		st, err := importer.Status(ctx, h.pool, "old")
		return err == nil && !st.Live
	}, 5*time.Second, 10*time.Millisecond)

	require.ErrorIs(t, importer.DeleteRun(ctx, h.pool, "old"), importer.ErrRunHasSent, "its sent msgids keep a re-sync from sending them twice")
	require.NoError(t, importer.AbandonRun(ctx, h.pool, "old"))
	require.NoError(t, importer.AbandonRun(ctx, h.pool, "old"), "abandoning twice does nothing")
	st, err := importer.Status(ctx, h.pool, "old")
	require.NoError(t, err)
	require.Equal(t, importer.RunAbandoned, st.State)
	_, err = h.importer("old", path, nil).Run(ctx, nil)
	require.ErrorIs(t, err, importer.ErrRunAbandoned)

	// The next run of the export takes over what the abandoned one had not sent.
	sum := h.run("new", path, nil)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.Positive(t, sum.TakenOver)
	ledgertest.Check(t, h.sim.Ledger(), msgs, nil)

	// A run that sent nothing can be deleted, rows and all.
	soft := make(chan struct{})
	close(soft)
	_, err = h.importer("empty", ledgertest.WriteJSONL(t, ledgertest.Gen(74, 2, 2)), nil).Run(ctx, soft)
	require.ErrorIs(t, err, importer.ErrInterrupted)
	// Its process is gone once its session's lock is: at once when Run
	// unregistered it, a moment later when the unregister timed out (under
	// make test-under-load DeleteRun still saw it live).
	require.Eventually(t, func() bool {
		st, err := importer.Status(ctx, h.pool, "empty")
		return err == nil && !st.Live
	}, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, importer.DeleteRun(ctx, h.pool, "empty"))
	_, err = importer.Status(ctx, h.pool, "empty")
	require.ErrorIs(t, err, importer.ErrNoRun)
	require.ErrorIs(t, importer.DeleteRun(ctx, h.pool, "empty"), importer.ErrNoRun)
}

// One record the database cannot index (a 3 KB msgid that got past
// validation) is rejected on its own; its batch is staged record by record
// and everything else goes out.
func TestARecordTheDatabaseRefusesNeverBlocksItsBatch(t *testing.T) {
	h := newHarness(t, sim.Options{})
	msgs := ledgertest.Gen(75, 20, 10)
	recs := records(msgs)
	big := records([]ledgertest.Msg{{Conv: "conv-big", ID: randomID(3000), Msec: msgs[0].Msec}})[0]
	big.Line = int64(len(recs) + 1)
	src := &fakeSource{recs: append(recs, big)}
	sum := h.run("refused-record", "", func(c *importer.Config) {
		c.Open, c.Source = src.open(), sources.Identity{Label: "jsonl:-", Stream: true}
	})
	require.Equal(t, importer.OutcomeIncomplete, sum.Outcome)
	require.EqualValues(t, 1, sum.Rejected)
	require.EqualValues(t, len(msgs), sum.Staged)
	ledgertest.Check(t, h.sim.Ledger(), msgs, ledgertest.Newest(msgs))
	var reason string
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT reason FROM kommo_import_rejects WHERE run_name = 'refused-record'`).Scan(&reason))
	require.Contains(t, reason, "the database cannot store this record")
}

func randomID(n int) string {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = hexdigits[x%16]
	}
	return string(b)
}

// A source that cannot be read (a truncated archive) ends the run at once
// as a source error, not as a database outage waited out for minutes.
func TestATruncatedSourceIsASourceError(t *testing.T) {
	h := newHarness(t, sim.Options{})
	path := gzipTruncated(t, ledgertest.WriteJSONL(t, ledgertest.Gen(76, 20, 20)))
	start := time.Now()
	_, err := h.importer("truncated", path, func(c *importer.Config) { c.DBOutageLimit = time.Minute }).Run(context.Background(), nil)
	var src *importer.SourceError
	require.ErrorAs(t, err, &src)
	require.ErrorIs(t, err, sources.ErrTruncated)
	require.NotErrorIs(t, err, importer.ErrInterrupted)
	require.Less(t, time.Since(start), 10*time.Second)
}

// gzipTruncated writes path gzipped and cut in the middle, as a copy
// interrupted part-way leaves it, and returns the new file's path.
func gzipTruncated(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err = zw.Write(raw)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	out := filepath.Join(t.TempDir(), "export.jsonl.gz")
	require.NoError(t, os.WriteFile(out, buf.Bytes()[:buf.Len()/2], 0o600))
	return out
}

// A run that ends while a heartbeat is in flight leaves no live process
// behind: the next run of the scope (cron's next export) takes its unsent
// msgids over at once. The end used to cancel the beat mid-statement,
// which dropped the session without removing the process's row, and the
// server kept the lock until the cancelled statement ended: the next run
// saw the old one live and took nothing over (under make
// test-under-load, TestAnInterruptedRunsMessagesAreTakenOverByTheNextExport).
func TestARunEndingMidHeartbeatLeavesNoLiveProcess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, sim.Options{Latency: time.Millisecond})
	pool, proxy := proxiedPool(t)
	h.pool = pool
	proxy.SetLatency(15 * time.Millisecond) // a beat (three statements) takes 90 ms or more of its 100
	msgs := ledgertest.Gen(71, 20, 5)
	path := ledgertest.WriteJSONL(t, msgs)
	for i := range 4 {
		name := fmt.Sprintf("mid-beat-%d", i)
		im := h.importer(name, path, func(c *importer.Config) { c.Rate = 500; c.Heartbeat = 100 * time.Millisecond })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := im.Run(ctx, stopAfter(im, 5))
		cancel()
		require.ErrorIs(t, err, importer.ErrInterrupted)
		var rows, live int
		require.NoError(t, h.pool.QueryRow(context.Background(),
			`SELECT (SELECT count(*) FROM kommo_import_processes WHERE run_name = $1),
			        (SELECT count(*) FROM kommo_import_live_processes WHERE run_name = $1)`, name).Scan(&rows, &live))
		require.Equal(t, [2]int{0, 0}, [2]int{rows, live}, "run %d: the process that ended is neither recorded nor live", i)
	}
}
