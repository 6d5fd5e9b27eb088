package sources

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
	"github.com/kommo-import/kommo-import/wire"
)

// TestEmptyValuesOmitted: an empty profile, and a CSV or postgres cell of
// only spaces, are absent: nothing of them is sent.
func TestEmptyValuesOmitted(t *testing.T) {
	t.Parallel()
	const body = `"timestamp":1709284502,"conversation_id":"c1","message":{"type":"text","text":"hi"}`
	jsonlTests := []struct {
		name, line string
		want       string // the payload's sender as sent
	}{
		{"empty profile", `{"msgid":"a",` + body + `,"sender":{"id":"u1","name":"Anna","profile":{}}}`, `{"id":"u1","name":"Anna"}`},
		{"all-empty profile", `{"msgid":"b",` + body + `,"sender":{"id":"u1","name":"Anna","profile":{"phone":"","email":""}}}`, `{"id":"u1","name":"Anna"}`},
		{"blank profile", `{"msgid":"c",` + body + `,"sender":{"id":"u1","name":"Anna","profile":{"phone":"  ","email":"\t"}}}`, `{"id":"u1","name":"Anna"}`},
		{"half-empty profile keeps the phone", `{"msgid":"d",` + body + `,"sender":{"id":"u1","name":"Anna","profile":{"phone":"+1","email":" "}}}`,
			`{"id":"u1","name":"Anna","profile":{"phone":"+1"}}`},
	}
	for _, tt := range jsonlTests {
		t.Run("jsonl "+tt.name, func(t *testing.T) {
			t.Parallel()
			res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "in.jsonl", tt.line+"\n")})
			require.Empty(t, res.errs)
			require.Len(t, res.records, 1)
			got, err := json.Marshal(res.records[0].Payload.Sender)
			require.NoError(t, err)
			require.JSONEq(t, tt.want, string(got))
		})
	}

	head := "conversation_id,msgid,timestamp,sender_id,sender_name,sender_ref_id,sender_phone,sender_email,receiver_id,receiver_name,message_type,message_text,message_file_name\n"
	csvTests := []struct {
		name, row string
		want      *wire.Payload
		wantErr   string // the field of the reject
	}{
		{name: "blank cells are absent", row: "c1,a,1709284502,u1,Anna,  ,   , ,  , \t,text,hi,   \n",
			want: &wire.Payload{Sender: &wire.Participant{ID: "u1", Name: "Anna"}, Message: &wire.Message{Type: "text", Text: "hi"}}},
		{name: "blank quoted cells are absent", row: `c1,a,1709284502,u1,Anna," ",,"  ",,,text,hi,` + "\n",
			want: &wire.Payload{Sender: &wire.Participant{ID: "u1", Name: "Anna"}, Message: &wire.Message{Type: "text", Text: "hi"}}},
		{name: "text with spaces kept", row: "c1,a,1709284502,u1,Anna,,,,,,text,  hi  ,\n",
			want: &wire.Payload{Sender: &wire.Participant{ID: "u1", Name: "Anna"}, Message: &wire.Message{Type: "text", Text: "  hi  "}}},
		{name: "blank receiver name is missing", row: "c1,a,1709284502,u1,Anna,amojo-1,,,c9,  ,text,hi,\n", wantErr: "receiver.name"},
		{name: "blank ref_id of an outgoing message is missing", row: "c1,a,1709284502,u1,Anna, ,,,c9,Client,text,hi,\n", wantErr: "sender.ref_id"},
	}
	for _, tt := range csvTests {
		t.Run("csv "+tt.name, func(t *testing.T) {
			t.Parallel()
			res := readAll(t, Spec{Kind: KindCSV, Path: writeFile(t, "in.csv", head+tt.row)})
			if tt.wantErr != "" {
				require.Equal(t, []errAt{{2, tt.wantErr}}, res.errAts())
				return
			}
			require.Empty(t, res.errs)
			require.Len(t, res.records, 1)
			got := res.records[0].Payload
			require.Equal(t, tt.want.Sender, got.Sender)
			require.Equal(t, tt.want.Receiver, got.Receiver)
			require.Equal(t, tt.want.Message, got.Message)
		})
	}

	t.Run("postgres blank columns are absent", func(t *testing.T) {
		t.Parallel()
		dsn := pgtest.URL(t)
		execSQL(t, dsn, `CREATE TABLE t (conversation_id text, msgid text, timestamp bigint, sender_id text, sender_name text, sender_phone text,
			sender_email varchar(10), receiver_id text, receiver_name text, message_type text, message_text text, message_file_name char(5));
			INSERT INTO t VALUES ('c1', 'a', 1709284502, 'u1', 'Anna', '  ', '', ' ', ' ', 'text', 'hi', '     ')`)
		res := readAll(t, Spec{Kind: KindPostgres, DSN: dsn, Query: "SELECT * FROM t"})
		require.Empty(t, res.errs)
		require.Len(t, res.records, 1)
		b, err := json.Marshal(res.records[0].Payload)
		require.NoError(t, err)
		require.False(t, strings.Contains(string(b), "profile") || strings.Contains(string(b), "receiver") || strings.Contains(string(b), "file_name"), "%s", b)
	})
}
