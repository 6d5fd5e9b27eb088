package store

import (
	"context"
	"math"

	"github.com/jackc/pgx/v5"
)

// The media send path: messages whose message.media names a local file
// carry its reference in media_path (set at staging), and each file a run
// has put in a media store is a row of kommo_import_media_uploads (run,
// store, local path -> object key, size, sha256). The uploader walks the
// run's local files ahead of the sending and records them; the worker at a
// message's turn reads its row and only makes the URL.

// countLocalMediaLeft counts the run's unsent messages that name a local
// file (the partial index on media_path serves it).
const countLocalMediaLeft = `
SELECT count(*) FROM kommo_import_messages
WHERE run_name = $1 AND media_path IS NOT NULL AND state IN ('pending', 'sending', 'failed')`

// LocalMediaLeft counts the run's messages not sent yet (failed ones
// included: retry sends them) whose media is a local file.
func (q *Queries) LocalMediaLeft(ctx context.Context, run string) (int64, error) {
	var n int64
	err := q.db.QueryRow(ctx, countLocalMediaLeft, run).Scan(&n)
	return n, err
}

const selectStagedAsText = `SELECT COALESCE((SELECT (skipped ->> $2)::bigint FROM kommo_import_runs WHERE name = $1), 0)`

// StagedAsText is how many records the run staged under the skip reason
// reason (sources.SkipMediaNotHosted: local files staged as text while no
// store was given); 0 for a run that does not exist.
func (q *Queries) StagedAsText(ctx context.Context, run, reason string) (int64, error) {
	var n int64
	err := q.db.QueryRow(ctx, selectStagedAsText, run, reason).Scan(&n)
	return n, err
}

const selectMediaSamples = `
SELECT media_path FROM kommo_import_messages
WHERE run_name = $1 AND media_path IS NOT NULL AND state IN ('pending', 'sending')
LIMIT $2 * 8`

// MediaSamples returns up to limit distinct local files of the run's unsent
// messages: what a --media-base-url preflight checks.
func (q *Queries) MediaSamples(ctx context.Context, run string, limit int) ([]string, error) {
	rows, err := q.db.Query(ctx, selectMediaSamples, run, limit)
	if err != nil {
		return nil, err
	}
	paths, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range paths {
		if !seen[p] && len(out) < limit {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// MediaConv is a conversation with local files to send, in claim order.
type MediaConv struct {
	ID       string
	Messages int64 // the claim order's key: the largest first
}

// FirstMediaConv is the keyset position before every conversation.
var FirstMediaConv = MediaConv{Messages: math.MaxInt64}

const selectMediaConversations = `
SELECT c.conversation_id, c.messages FROM kommo_import_conversations c
WHERE c.run_name = $1 AND NOT c.done AND NOT c.held
  AND (c.messages < $2::bigint OR (c.messages = $2::bigint AND c.conversation_id > $3))
  AND EXISTS (SELECT 1 FROM kommo_import_messages m
              WHERE m.run_name = c.run_name AND m.conversation_id = c.conversation_id
                AND m.media_path IS NOT NULL AND m.state IN ('pending', 'sending'))
ORDER BY c.messages DESC, c.conversation_id
LIMIT $4`

// MediaConversations returns up to limit conversations of the run, after
// after in the order workers claim them (largest first), that are not done
// nor held and have unsent messages naming local files.
func (q *Queries) MediaConversations(ctx context.Context, run string, after MediaConv, limit int) ([]MediaConv, error) {
	rows, err := q.db.Query(ctx, selectMediaConversations, run, after.Messages, after.ID, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[MediaConv])
}

// MediaItem is an unsent message of a conversation naming a local file.
type MediaItem struct {
	Msec, Seq int64  // its place in the conversation's order
	Path      string // media_path
	Recorded  bool   // the file has an upload row for the store
}

const selectMediaPage = `
SELECT m.msec_timestamp, m.seq, m.media_path, u.local_path IS NOT NULL
FROM kommo_import_messages m
LEFT JOIN kommo_import_media_uploads u ON u.run_name = m.run_name AND u.store = $2 AND u.local_path = m.media_path
WHERE m.run_name = $1 AND m.conversation_id = $3 AND m.media_path IS NOT NULL AND m.state IN ('pending', 'sending')
  AND (m.msec_timestamp, m.seq) > ($4, $5)
ORDER BY m.msec_timestamp, m.seq
LIMIT $6`

// MediaPage returns the next (at most limit) unsent messages of the
// conversation after (afterMsec, afterSeq) that name a local file, in send
// order, each saying whether its file is recorded for store.
func (q *Queries) MediaPage(ctx context.Context, run, store, conv string, afterMsec, afterSeq int64, limit int) ([]MediaItem, error) {
	rows, err := q.db.Query(ctx, selectMediaPage, run, store, conv, afterMsec, afterSeq, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[MediaItem])
}

// MediaUpload is a local file as a store holds it for a run.
type MediaUpload struct {
	Run, Store, Path string
	Key              string
	Size             int64
	SHA256           string // hex; "" with --media-base-url
	Uploaded         bool   // the run's Put sent the bytes (false: the store had them)
}

// clearProblem is a CTE that clears the media_problem of message $msgid of
// scope $scope (when there is one): its file goes out as media now.
const clearProblem = `cleared AS (
    UPDATE kommo_import_messages SET media_problem = NULL
    WHERE scope_id = @scope AND msgid = @msgid AND media_problem IS NOT NULL
)`

const selectMediaUpload = `
WITH ` + clearProblem + `
SELECT object_key, size, COALESCE(encode(sha256, 'hex'), ''), uploaded
FROM kommo_import_media_uploads WHERE run_name = @run AND store = @store AND local_path = @path`

// LoadMediaUpload reads u.Run's row for u.Path in u.Store into u; found is
// false when there is none. The media_problem of message msgid (of scope)
// is cleared in the same statement: its file is to go out now (the caller
// records the problem again if it cannot).
func (q *Queries) LoadMediaUpload(ctx context.Context, u *MediaUpload, scope, msgid string) (found bool, err error) {
	err = q.db.QueryRow(ctx, selectMediaUpload, pgx.NamedArgs{"run": u.Run, "store": u.Store, "path": u.Path, "scope": scope, "msgid": msgid}).
		Scan(&u.Key, &u.Size, &u.SHA256, &u.Uploaded)
	if IsNoRows(err) {
		return false, nil
	}
	return err == nil, err
}

const insertMediaUpload = `
WITH ` + clearProblem + `
INSERT INTO kommo_import_media_uploads (run_name, store, local_path, object_key, size, sha256, uploaded)
VALUES (@run, @store, @path, @key, @size, decode(NULLIF(@sha, ''), 'hex'), @uploaded)
ON CONFLICT (run_name, store, local_path) DO UPDATE SET uploaded = true
    WHERE EXCLUDED.uploaded AND NOT kommo_import_media_uploads.uploaded
RETURNING xmax = 0`

// Recorded says what RecordMediaUpload changed.
type Recorded int

const (
	RecordedNothing  Recorded = iota // the file was recorded already
	RecordedNew                      // the first record of the file
	RecordedUploaded                 // a record that said "found" now says "uploaded"
)

// RecordMediaUpload records a file put. The first row for a file stays
// (whoever put the same file meanwhile found, or shared, the same object),
// except that a Put that uploaded the bytes marks a row that says they were
// found: a Put that HEADed the object a moment after another uploaded it
// may record first. msgid, when not "", is the message whose turn it is:
// its media_problem is cleared in the same statement.
func (q *Queries) RecordMediaUpload(ctx context.Context, u MediaUpload, scope, msgid string) (Recorded, error) {
	var inserted bool
	err := q.db.QueryRow(ctx, insertMediaUpload, pgx.NamedArgs{"run": u.Run, "store": u.Store, "path": u.Path, "key": u.Key,
		"size": u.Size, "sha": u.SHA256, "uploaded": u.Uploaded, "scope": scope, "msgid": msgid}).Scan(&inserted)
	switch {
	case IsNoRows(err):
		return RecordedNothing, nil
	case err != nil:
		return RecordedNothing, err
	case inserted:
		return RecordedNew, nil
	}
	return RecordedUploaded, nil
}

const setMediaProblem = `
UPDATE kommo_import_messages SET media_problem = $7
WHERE scope_id = $5 AND msgid = $6 AND run_name = $1 AND state <> 'sent'
  AND EXISTS (SELECT 1 FROM kommo_import_conversations WHERE ` + leaseHeld + `)`

// SetMediaProblem records, while l holds its conversation, why msgid's
// local file cannot go out as media: it goes out as its text placeholder,
// or fails (the caller marks which).
func (q *Queries) SetMediaProblem(ctx context.Context, l Lease, msgid, reason string) error {
	_, err := q.db.Exec(ctx, setMediaProblem, l.Run, l.Conversation, l.Owner, l.Epoch, l.Scope, msgid, reason)
	return err
}

// MediaCounts is what a run did with its local files.
type MediaCounts struct {
	Messages     int64 // messages naming a local file
	SentAsMedia  int64 // ... sent with their file
	Files        int64 // files recorded (put, found in the store, or found published)
	Uploaded     int64 // ... of them uploaded by the run
	Bytes        int64 // the recorded files' size
	Placeholders int64 // messages sent as their text placeholder: the file could not be used
	Failed       int64 // messages failed for their file (retry sends them once it is there)
}

const selectMediaCounts = `
SELECT
    (SELECT count(*) FROM kommo_import_messages WHERE run_name = $1 AND media_path IS NOT NULL),
    (SELECT count(*) FROM kommo_import_messages WHERE run_name = $1 AND media_path IS NOT NULL
        AND state = 'sent' AND media_problem IS NULL),
    u.files, u.uploaded, u.bytes,
    (SELECT count(*) FROM kommo_import_messages WHERE run_name = $1 AND media_problem IS NOT NULL AND state = 'sent'),
    (SELECT count(*) FROM kommo_import_messages WHERE run_name = $1 AND media_problem IS NOT NULL AND state = 'failed')
FROM (SELECT count(*) AS files, count(*) FILTER (WHERE uploaded) AS uploaded, COALESCE(sum(size), 0)::bigint AS bytes
      FROM kommo_import_media_uploads WHERE run_name = $1) u`

// MediaCounts counts what the run did with its local files.
func (q *Queries) MediaCounts(ctx context.Context, run string) (MediaCounts, error) {
	var c MediaCounts
	err := q.db.QueryRow(ctx, selectMediaCounts, run).Scan(&c.Messages, &c.SentAsMedia, &c.Files, &c.Uploaded, &c.Bytes, &c.Placeholders, &c.Failed)
	return c, err
}

// MediaProblemRow is a message whose local file could not go out as media.
type MediaProblemRow struct {
	MsgID, ConversationID string
	Line                  int64
	State                 State
	Problem               string
}

const selectMediaProblems = `
SELECT msgid, conversation_id, line, state, media_problem FROM kommo_import_messages
WHERE run_name = $1 AND media_problem IS NOT NULL AND state = 'sent'
ORDER BY line`

// EachMediaPlaceholder calls fn for each message of the run that went out
// as its text placeholder, in source order, streaming; r is reused.
func (q *Queries) EachMediaPlaceholder(ctx context.Context, run string, fn func(r *MediaProblemRow) error) error {
	rows, err := q.db.Query(ctx, selectMediaProblems, run)
	if err != nil {
		return err
	}
	defer rows.Close()
	var r MediaProblemRow
	for rows.Next() {
		if err := rows.Scan(&r.MsgID, &r.ConversationID, &r.Line, &r.State, &r.Problem); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return rows.Err()
}
