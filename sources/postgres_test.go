package sources

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/wire"
)

func TestPostgres(t *testing.T) {
	t.Parallel()
	sender := &wire.Participant{ID: "u1", Name: "Anna"}
	tests := []struct {
		name          string
		setup         string
		spec          Spec // Kind and DSN filled in
		wantErr       string
		wantIDs       []string
		wantErrs      []errAt
		wantPayload   *wire.Payload // the first record
		wantResumable bool          // never, for now: see TestPostgresTableNotResumable
	}{
		{
			name: "typed columns",
			setup: `CREATE TABLE t (conversation_id text, msgid uuid, timestamp timestamptz, sender_id bigint, sender_name text,
				message_type text, message_file_name text, message_file_size bigint, message_location_lat double precision,
				message_location_lon numeric, message_media_duration integer, message_text varchar(20));
				INSERT INTO t VALUES ('c1', '0b6f7f5e-6d3a-4c55-9d51-0c1f9b3a2e10', '2024-03-01 09:15:02.123+00', 42, 'Anna',
				'location', NULL, NULL, 43.25, -76.5, NULL, NULL)`,
			spec:    Spec{Query: "SELECT * FROM t"},
			wantIDs: []string{"0b6f7f5e-6d3a-4c55-9d51-0c1f9b3a2e10"},
			wantPayload: &wire.Payload{Timestamp: 1709284502, MsecTimestamp: 1709284502123, MsgID: "0b6f7f5e-6d3a-4c55-9d51-0c1f9b3a2e10",
				ConversationID: "c1", Sender: &wire.Participant{ID: "42", Name: "Anna"},
				Message: &wire.Message{Type: "location", Location: &wire.Location{Lat: 43.25, Lon: -76.5}}},
		},
		{
			name: "msec_timestamp as timestamptz, timestamp as seconds",
			setup: `CREATE TABLE t (conversation_id text, msgid text, timestamp bigint, msec_timestamp timestamptz, sender_id text, sender_name text, message_type text, message_text text);
				INSERT INTO t VALUES ('c1', 'a', 1709284502, '2024-03-01 09:15:02.999+00', 'u1', 'Anna', 'text', 'hi'),
				                     ('c1', 'b', 1709284503, '2024-03-01 09:15:02.999+00', 'u1', 'Anna', 'text', 'hi')`,
			spec:     Spec{Query: "SELECT * FROM t ORDER BY msgid"},
			wantIDs:  []string{"a"},
			wantErrs: []errAt{{2, "msec_timestamp"}},
			wantPayload: &wire.Payload{Timestamp: 1709284502, MsecTimestamp: 1709284502999, MsgID: "a", ConversationID: "c1",
				Sender: sender, Message: &wire.Message{Type: "text", Text: "hi"}},
		},
		{
			name: "aliases map columns in the query",
			setup: `CREATE TABLE msgs (id text, chat text, at timestamptz, author text, body text);
				INSERT INTO msgs VALUES ('a', 'c1', '2024-03-01 09:15:02+00', 'Anna', 'hi')`,
			spec: Spec{Query: `SELECT id AS msgid, chat AS conversation_id, at AS timestamp, 'u1' AS sender_id, author AS sender_name,
				'text' AS message_type, body AS message_text FROM msgs`},
			wantIDs: []string{"a"},
			wantPayload: &wire.Payload{Timestamp: 1709284502, MsecTimestamp: 1709284502000, MsgID: "a", ConversationID: "c1",
				Sender: sender, Message: &wire.Message{Type: "text", Text: "hi"}},
		},
		{
			name: "--map and --ignore-columns",
			setup: `CREATE TABLE msgs (pk serial, id text, chat text, at timestamptz, sender_id text, sender_name text, message_type text, body text);
				INSERT INTO msgs (id, chat, at, sender_id, sender_name, message_type, body) VALUES ('a', 'c1', '2024-03-01 09:15:02+00', 'u1', 'Anna', 'text', 'hi')`,
			spec: Spec{Table: "msgs", ColumnMap: map[string]string{"msgid": "id", "conversation_id": "chat", "timestamp": "at", "message_text": "body"},
				IgnoreColumns: []string{"pk"}},
			wantIDs: []string{"a"},
		},
		{
			name:    "unknown columns",
			setup:   `CREATE TABLE msgs (pk serial, msgid text, conversation_id text, timestamp bigint, sender_id text, sender_name text, message_type text, body text)`,
			spec:    Spec{Table: "msgs"},
			wantErr: `unknown columns "pk", "body"`,
		},
		{
			name: "table read in msgid order, quoted name in a schema",
			setup: `CREATE SCHEMA imp; CREATE TABLE imp."Chat Export" (msgid text, conversation_id text, timestamp bigint, sender_id text, sender_name text, message_type text, message_text text);
				INSERT INTO imp."Chat Export" VALUES ('c', 'c1', 1709284502, 'u1', 'Anna', 'text', 'hi'), ('a', 'c1', 1709284502, 'u1', 'Anna', 'text', 'hi'),
				('b', 'c2', 1709284502, 'u1', 'Anna', 'text', NULL)`,
			spec:     Spec{Table: "imp.Chat Export"},
			wantIDs:  []string{"a", "c"},
			wantErrs: []errAt{{2, "message.text"}},
		},
		{
			name: "jsonb payload column: events and bare payloads",
			setup: `CREATE TABLE p (id serial, payload jsonb);
				INSERT INTO p (payload) VALUES
				('{"event_type":"new_message","payload":{"timestamp":1709284502,"msgid":"b","conversation_id":"c1","sender":{"id":"u1","name":"Anna"},"message":{"type":"text","text":"hi"},"silent":true}}'),
				('{"timestamp":1709284502,"msgid":"a","conversation_id":"c1","sender":{"id":"u1","name":"Anna"},"message":{"type":"text","text":"hi"}}'),
				(NULL),
				('{"timestamp":"x","msgid":"d"}'),
				('{"timestamp":1709284502,"msgid":"e","conversation_id":"c1","sender":{"id":"u1","name":"Anna"},"message":{"type":"file"}}')`,
			spec:     Spec{Table: "p", IgnoreColumns: []string{"id"}},
			wantIDs:  []string{"a", "b"},
			wantErrs: []errAt{{3, "timestamp"}, {4, "message.media"}, {5, "payload"}}, // ORDER BY msgid puts NULL last
			wantPayload: &wire.Payload{Timestamp: 1709284502, MsecTimestamp: 1709284502000, MsgID: "a", ConversationID: "c1",
				Sender: sender, Message: &wire.Message{Type: "text", Text: "hi"}},
		},
		{
			name: "json payload column from a query",
			setup: `CREATE TABLE p (doc json);
				INSERT INTO p VALUES ('{"timestamp":1709284502,"msgid":"a","conversation_id":"c1","sender":{"id":"u1","name":"Anna"},"message":{"type":"text","text":"hi"}}')`,
			spec:    Spec{Query: "SELECT doc AS payload FROM p"},
			wantIDs: []string{"a"},
		},
		{
			name:    "payload with other columns",
			setup:   `CREATE TABLE p (msgid text, payload jsonb)`,
			spec:    Spec{Table: "p"},
			wantErr: "a payload column holds the whole message",
		},
		{
			name:    "bad query",
			setup:   `SELECT 1`,
			spec:    Spec{Query: "SELECT * FROM nowhere"},
			wantErr: "nowhere",
		},
		{
			name:    "streams many rows",
			setup:   `SELECT 1`,
			spec:    Spec{Query: "SELECT 'c' || (i % 7) AS conversation_id, 'm' || i AS msgid, 1709284502 + i AS timestamp, 'u1' AS sender_id, 'Anna' AS sender_name, 'text' AS message_type, 'hi' AS message_text FROM generate_series(1, 20000) i"},
			wantIDs: nil, // counted below
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.URL(t)
			execSQL(t, dsn, tt.setup)
			spec := tt.spec
			spec.Kind, spec.DSN, spec.Now = KindPostgres, dsn, nowFunc
			r, err := Open(t.Context(), spec)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, "postgres", r.Name())
			require.Equal(t, tt.wantResumable, r.Resumable())
			require.NoError(t, r.Close())

			res := readAll(t, spec)
			if tt.wantIDs == nil {
				require.Equal(t, Stats{Records: 20000, Conversations: 7}, res.stats)
				return
			}
			if tt.wantErrs == nil {
				tt.wantErrs = []errAt{}
			}
			require.Equal(t, tt.wantErrs, res.errAts(), "errors: %v", res.errs)
			for _, e := range res.errs {
				require.Equal(t, "postgres", e.File)
				require.NotEmpty(t, e.Raw)
			}
			require.Equal(t, tt.wantIDs, res.msgids())
			if tt.wantPayload != nil {
				require.Equal(t, *tt.wantPayload, res.records[0].Payload)
			}
			for _, rec := range res.records {
				require.NotEmpty(t, rec.Raw)
				require.Zero(t, rec.Offset)
			}
		})
	}
}

func TestPostgresCancel(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	ctx, cancel := context.WithCancel(t.Context())
	r, err := Open(ctx, Spec{Kind: KindPostgres, DSN: dsn, Now: nowFunc,
		Query: "SELECT 'c' AS conversation_id, 'm' || i AS msgid, 1709284502 AS timestamp, 'u' AS sender_id, 'A' AS sender_name, 'text' AS message_type, 'x' AS message_text FROM generate_series(1, 1000000) i"})
	require.NoError(t, err)
	defer r.Close()
	_, err = r.Next(ctx)
	require.NoError(t, err)
	cancel()
	_, err = r.Next(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, r.Close())
}

// TestPostgresTableNotResumable: a table is read in msgid order, so a row
// inserted since the last read shifts every row after it: resuming by row
// number would skip rows. The reader says it cannot resume; the importer
// reads the table again from the start (msgids make that idempotent).
func TestPostgresTableNotResumable(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	execSQL(t, dsn, `CREATE TABLE t (msgid text, conversation_id text, timestamp bigint, sender_id text, sender_name text, message_type text, message_text text);
		INSERT INTO t SELECT 'm' || lpad(i::text, 5, '0'), 'c1', 1709284502 + i, 'u1', 'Anna', 'text', 'hi' FROM generate_series(2, 10000, 2) i`)
	spec := Spec{Kind: KindPostgres, DSN: dsn, Table: "t", Now: nowFunc}
	r, err := Open(t.Context(), spec)
	require.NoError(t, err)
	require.False(t, r.Resumable())
	first := map[string]int64{}
	for range 2500 {
		rec, err := r.Next(t.Context())
		require.NoError(t, err)
		first[rec.Payload.MsgID] = rec.Line
	}
	require.NoError(t, r.Close())

	// Rows that sort before the stop point arrive meanwhile.
	execSQL(t, dsn, `INSERT INTO t SELECT 'm' || lpad(i::text, 5, '0'), 'c1', 1709284502 + i, 'u1', 'Anna', 'text', 'hi' FROM generate_series(1, 999, 2) i`)
	res := readAll(t, spec)
	require.Len(t, res.records, 5500)
	skippedByLine := 0
	for _, rec := range res.records {
		if _, seen := first[rec.Payload.MsgID]; !seen && rec.Line <= 2500 {
			skippedByLine++ // a resume "after line 2500" would never stage it
		}
	}
	require.Equal(t, 500, skippedByLine, "the case resuming by row number gets wrong")
}

// TestPostgresReadOnly: the source query and the table read run in a read-only
// transaction, so a query that writes is refused and changes nothing,
// whatever the DSN asks for.
func TestPostgresReadOnly(t *testing.T) {
	t.Parallel()
	const cols = "msgid, conversation_id, timestamp, sender_id, sender_name, message_type, message_text"
	tests := []struct {
		name, query, dsnParams string
		want                   string
	}{
		{name: "DELETE RETURNING", query: "DELETE FROM t RETURNING " + cols, want: "read-only"},
		{name: "a writing CTE", query: "WITH d AS (DELETE FROM t RETURNING *) SELECT " + cols + " FROM d", want: "read-only"},
		{name: "UPDATE RETURNING", query: "UPDATE t SET message_text = 'x' RETURNING " + cols, want: "read-only"},
		{name: "nextval", query: "SELECT msgid, conversation_id, nextval('s') AS timestamp, sender_id, sender_name, message_type, message_text FROM t", want: "read-only"},
		{name: "COMMIT first, in the simple protocol", dsnParams: "default_query_exec_mode=simple_protocol",
			query: "COMMIT; DELETE FROM t RETURNING " + cols, want: "source postgres"},
		{name: "a read-write transaction asked for", dsnParams: "options=-c%20default_transaction_read_only%3Doff",
			query: "DELETE FROM t RETURNING " + cols, want: "read-only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := pgtest.URL(t)
			execSQL(t, dsn, `CREATE SEQUENCE s; CREATE TABLE t (msgid text, conversation_id text, timestamp bigint, sender_id text, sender_name text, message_type text, message_text text);
				INSERT INTO t SELECT 'm' || i, 'c1', 1709284502 + i, 'u1', 'Anna', 'text', 'hi' FROM generate_series(1, 100) i`)
			src := dsn
			if tt.dsnParams != "" {
				src += "&" + tt.dsnParams
			}
			res, err := tryReadAll(Spec{Kind: KindPostgres, DSN: src, Query: tt.query})
			require.Error(t, err)
			require.ErrorContains(t, err, tt.want)
			require.Empty(t, res.records)
			var n int
			var text string
			conn, err := pgx.Connect(t.Context(), dsn)
			require.NoError(t, err)
			defer conn.Close(t.Context())
			require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*), min(message_text) FROM t").Scan(&n, &text))
			require.Equal(t, 100, n, "nothing deleted")
			require.Equal(t, "hi", text, "nothing changed")
		})
	}
	t.Run("reads still work", func(t *testing.T) {
		t.Parallel()
		dsn := pgtest.URL(t)
		execSQL(t, dsn, `CREATE TABLE t (msgid text, conversation_id text, timestamp bigint, sender_id text, sender_name text, message_type text, message_text text);
			INSERT INTO t VALUES ('a', 'c1', 1709284502, 'u1', 'Anna', 'text', 'hi')`)
		for _, spec := range []Spec{{Table: "t"}, {Query: "SELECT * FROM t"}, {Query: "SELECT * FROM t", DSN: dsn + "&default_query_exec_mode=simple_protocol"}} {
			spec.Kind = KindPostgres
			if spec.DSN == "" {
				spec.DSN = dsn
			}
			res := readAll(t, spec)
			require.Equal(t, []string{"a"}, res.msgids())
		}
	})
}
