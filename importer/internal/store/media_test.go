package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer/internal/store"
)

// mediaStatements runs the media statements (media.go) for
// TestEveryStatementRuns, on a run of their own: staged with local files,
// walked by the uploader, recorded, read at the message's turn, a problem
// set, counted, listed, and deleted with the run.
func mediaStatements(t *testing.T, pool *pgxpool.Pool, run func(string)) {
	ctx := context.Background()
	q := store.New(pool)
	const scope, name, st = "scope-m", "run-m", "media store s3://b/p at http://x"
	_, err := q.OpenRun(ctx, store.RunParams{Name: name, Scope: scope, Source: "jsonl:/m", Notify: "newest", Rate: 5, OnFailure: "hold"})
	require.NoError(t, err)
	run("StagedAsText")
	n, err := q.StagedAsText(ctx, name, "media file not hosted (sent as text)")
	require.NoError(t, err)
	require.Zero(t, n)
	require.NoError(t, q.CheckpointStaging(ctx, store.StagingCheckpoint{Run: name, Skipped: map[string]int64{"media file not hosted (sent as text)": 3}}))
	n, err = q.StagedAsText(ctx, name, "media file not hosted (sent as text)")
	require.NoError(t, err)
	require.EqualValues(t, 3, n)
	n, err = q.StagedAsText(ctx, "nope", "media file not hosted (sent as text)")
	require.NoError(t, err)
	require.Zero(t, n)

	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	cq := store.New(conn)
	require.NoError(t, cq.CreateStageTables(ctx))
	zip := "zip:///exp/chat.zip?entry=IMG-1.jpg"
	rows := []store.StageRow{
		{MsgID: "a1", ConversationID: "ca", Line: 1, Msec: 1000, Payload: []byte(`{}`), MediaPath: "/exp/a.jpg"},
		{MsgID: "a2", ConversationID: "ca", Line: 2, Msec: 2000, Payload: []byte(`{}`)},
		{MsgID: "a3", ConversationID: "ca", Line: 3, Msec: 3000, Payload: []byte(`{}`), MediaPath: "/exp/sticker.webp"},
		{MsgID: "a4", ConversationID: "ca", Line: 4, Msec: 4000, Payload: []byte(`{}`), MediaPath: "/exp/sticker.webp"},
		{MsgID: "b1", ConversationID: "cb", Line: 5, Msec: 1500, Payload: []byte(`{}`), MediaPath: zip},
		{MsgID: "c1", ConversationID: "cc", Line: 6, Msec: 1500, Payload: []byte(`{}`)},
	}
	require.NoError(t, pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		tq := cq.WithTx(tx)
		require.NoError(t, tq.CopyStage(ctx, rows))
		_, err := tq.InsertStaged(ctx, scope, name)
		require.NoError(t, err)
		return tq.Plan(ctx, name, scope, "newest", nil)
	}))

	run("LocalMediaLeft")
	left, err := q.LocalMediaLeft(ctx, name)
	require.NoError(t, err)
	require.EqualValues(t, 4, left)
	run("MediaSamples")
	samples, err := q.MediaSamples(ctx, name, 5)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"/exp/a.jpg", "/exp/sticker.webp", zip}, samples, "distinct files")

	run("MediaConversations")
	convs, err := q.MediaConversations(ctx, name, store.FirstMediaConv, 1)
	require.NoError(t, err)
	require.Equal(t, []store.MediaConv{{ID: "ca", Messages: 4}}, convs, "the largest first")
	convs, err = q.MediaConversations(ctx, name, convs[0], 10)
	require.NoError(t, err)
	require.Equal(t, []store.MediaConv{{ID: "cb", Messages: 1}}, convs, "then the next; cc has no local file")
	run("MediaPage")
	page, err := q.MediaPage(ctx, name, st, "ca", -1<<63, -1<<63, 2)
	require.NoError(t, err)
	require.Len(t, page, 2)
	require.Equal(t, "/exp/a.jpg", page[0].Path)
	require.Equal(t, "/exp/sticker.webp", page[1].Path)
	require.False(t, page[0].Recorded)

	run("RecordMediaUpload")
	up := store.MediaUpload{Run: name, Store: st, Path: "/exp/a.jpg", Key: "p/sha256/ab/a.jpg", Size: 10,
		SHA256: "ab" + "00000000000000000000000000000000000000000000000000000000000000", Uploaded: true}
	rec, err := q.RecordMediaUpload(ctx, up, scope, "")
	require.NoError(t, err)
	require.Equal(t, store.RecordedNew, rec)
	other2 := store.MediaUpload{Run: name, Store: st, Path: zip, Key: "p/sha256/cd/IMG-1.jpg", Size: 7,
		SHA256: "cd" + "00000000000000000000000000000000000000000000000000000000000000"}
	rec, err = q.RecordMediaUpload(ctx, other2, scope, "b1")
	require.NoError(t, err)
	require.Equal(t, store.RecordedNew, rec)
	rec, err = q.RecordMediaUpload(ctx, up, scope, "")
	require.NoError(t, err)
	require.Equal(t, store.RecordedNothing, rec, "the first row stays")
	other2.Uploaded = true
	rec, err = q.RecordMediaUpload(ctx, other2, scope, "")
	require.NoError(t, err)
	require.Equal(t, store.RecordedUploaded, rec, "a row that said found says uploaded once a Put did upload")
	page, err = q.MediaPage(ctx, name, st, "ca", page[0].Msec, page[0].Seq, 10)
	require.NoError(t, err)
	require.Len(t, page, 2, "after a1")
	page, err = q.MediaPage(ctx, name, st, "ca", -1<<63, -1<<63, 1)
	require.NoError(t, err)
	require.True(t, page[0].Recorded)
	other, err := q.MediaPage(ctx, name, "another store", "ca", -1<<63, -1<<63, 1)
	require.NoError(t, err)
	require.False(t, other[0].Recorded, "another store holds nothing of it")

	// A problem, set under the conversation's lease, cleared when the
	// record is read at the message's turn.
	claimed, err := q.ClaimConversation(ctx, store.ClaimParams{Run: name, Scope: scope, Owner: "p#0", Lease: time.Minute, Notify: "newest"})
	require.NoError(t, err)
	require.Equal(t, "ca", claimed[0].ID)
	lease := store.Lease{Run: name, Scope: scope, Conversation: "ca", Owner: "p#0", Epoch: claimed[0].Epoch}
	run("SetMediaProblem")
	require.NoError(t, q.SetMediaProblem(ctx, lease, "a1", "media file /exp/a.jpg: missing"))
	require.NoError(t, q.SetMediaProblem(ctx, lease, "a3", "media file /exp/sticker.webp: empty"))
	require.NoError(t, q.SetMediaProblem(ctx, store.Lease{Run: name, Scope: scope, Conversation: "ca", Owner: "other#0", Epoch: 1}, "a4", "x"))
	run("LoadMediaUpload")
	got := store.MediaUpload{Run: name, Store: st, Path: "/exp/a.jpg"}
	found, err := q.LoadMediaUpload(ctx, &got, scope, "a1")
	require.NoError(t, err)
	require.True(t, found)
	require.Equal(t, up, got)
	missing := store.MediaUpload{Run: name, Store: st, Path: "/exp/nope.jpg"}
	found, err = q.LoadMediaUpload(ctx, &missing, scope, "")
	require.NoError(t, err)
	require.False(t, found)
	require.NoError(t, q.MarkSent(ctx, name, scope, "ca", store.Sent{MsgID: "a1", KommoMsgID: "k1"}))
	require.NoError(t, q.MarkSent(ctx, name, scope, "ca", store.Sent{MsgID: "a3", KommoMsgID: "k3"}))
	require.NoError(t, q.MarkFailed(ctx, lease, "a4", "media: x"))

	run("MediaCounts")
	c, err := q.MediaCounts(ctx, name)
	require.NoError(t, err)
	require.Equal(t, store.MediaCounts{Messages: 4, SentAsMedia: 1, Files: 2, Uploaded: 2, Bytes: 17, Placeholders: 1, Failed: 0}, c,
		"a1 sent as media (its problem cleared), a3 as text; a4's problem was refused without the lease")
	run("EachMediaPlaceholder")
	var listed []string
	require.NoError(t, q.EachMediaPlaceholder(ctx, name, func(r *store.MediaProblemRow) error {
		listed = append(listed, r.MsgID+": "+r.Problem)
		return nil
	}))
	require.Equal(t, []string{"a3: media file /exp/sticker.webp: empty"}, listed)

	// Deleting the run (it sent nothing here as far as DeleteRun cares)
	// removes its uploads too.
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return store.New(tx).DeleteRun(ctx, name) }))
	var uploads int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM kommo_import_media_uploads WHERE run_name = $1`, name).Scan(&uploads))
	require.Zero(t, uploads)
}
