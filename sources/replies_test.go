package sources

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// withFields is jl(id) with extra payload members (",..." JSON).
func withFields(id, extra string) string {
	return strings.TrimSuffix(jl(id), "}") + extra + "}"
}

// TestRepliesAndForwardsCarried: reply_to, forwards, message.shared_post
// and message.delivery_status come through JSONL in the API's shape.
func TestRepliesAndForwardsCarried(t *testing.T) {
	t.Parallel()
	const reply = `"reply_to":{"message":{"msgid":"a","type":"text","text":"hi","timestamp":1709284502,"msec_timestamp":1709284502000,"sender":{"id":"u1","name":"Anna"}}}`
	const forward = `"forwards":{"messages":[{"id":"6cbab3d5-c4c1-46ff-b710-ad59ad10805f","file_name":"a.pdf","file_size":10,"media_duration":3,"location":{"lon":1.5,"lat":2.5},"contact":{"name":"Li","phone":"+1"}}],"conversation_id":"c0","conversation_ref_id":"f90ba33d"}`
	in := jl("a") + "\n" +
		withFields("b", ","+reply) + "\n" +
		withFields("c", ","+forward) + "\n" +
		strings.Replace(jl("d"), `"text":"hi"`, `"text":"look","shared_post":{"url":"https://s/p/1","preview_link":"https://s/p/1.jpg","preview_permalink":"https://s/perm/1","type":"post","site_name":"Shop"},"delivery_status":{"status_code":-1,"error_code":905,"error":"blocked"}`, 1) + "\n"
	res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "in.jsonl", in)})
	require.Empty(t, res.errs)
	require.Equal(t, []string{"a", "b", "c", "d"}, res.msgids())
	got := func(i int) map[string]json.RawMessage {
		b, err := json.Marshal(&res.records[i].Payload)
		require.NoError(t, err)
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(b, &m))
		return m
	}
	_, hasReply := got(0)["reply_to"]
	require.False(t, hasReply)
	require.JSONEq(t, strings.TrimPrefix(reply, `"reply_to":`), string(got(1)["reply_to"]))
	require.JSONEq(t, strings.TrimPrefix(forward, `"forwards":`), string(got(2)["forwards"]))
	require.JSONEq(t, `{"type":"text","text":"look","shared_post":{"url":"https://s/p/1","preview_link":"https://s/p/1.jpg","preview_permalink":"https://s/perm/1","type":"post","site_name":"Shop"},"delivery_status":{"status_code":-1,"error_code":905,"error":"blocked"}}`,
		string(got(3)["message"]))
}

// TestRepliesInDuplicateHash: the same msgid again with another reply_to or
// forward is a conflicting duplicate, not a repeat to skip.
func TestRepliesInDuplicateHash(t *testing.T) {
	t.Parallel()
	tests := []struct{ first, again string }{
		{jl("x"), withFields("x", `,"reply_to":{"message":{"msgid":"a"}}`)},
		{withFields("x", `,"reply_to":{"message":{"msgid":"a"}}`), withFields("x", `,"reply_to":{"message":{"msgid":"b"}}`)},
		{withFields("x", `,"forwards":{"messages":[{"msgid":"a"}]}`), withFields("x", `,"forwards":{"messages":[{"msgid":"a"}],"conversation_id":"c2"}`)},
		{jl("x"), strings.Replace(jl("x"), `"text":"hi"`, `"text":"hi","shared_post":{"url":"https://s/1"}`, 1)},
		{jl("x"), strings.Replace(jl("x"), `"text":"hi"`, `"text":"hi","delivery_status":{"status_code":2}`, 1)},
	}
	for _, tt := range tests {
		res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "in.jsonl", tt.first+"\n"+tt.again+"\n")})
		require.Equal(t, []errAt{{2, "msgid"}}, res.errAts(), "%s\n%s", tt.first, tt.again)
		require.ErrorIs(t, res.errs[0], ErrConflictingDuplicate)
	}
}

// TestRepliesFromCSV: the CSV columns for a reply, a forward, a shared post
// and a delivery status give the same payload as the JSONL form.
func TestRepliesFromCSV(t *testing.T) {
	t.Parallel()
	head := "conversation_id,msgid,timestamp,sender_id,sender_name,message_type,message_text,reply_to_msgid,forward_msgid,forward_conversation_id," +
		"shared_post_url,shared_post_preview_link,shared_post_preview_permalink,shared_post_site_name,delivery_status_code,delivery_status_error_code,delivery_status_error\n"
	csvIn := head +
		"c1,a,1709284502,u1,Anna,text,hi,,,,,,,,,,\n" +
		"c1,b,1709284502,u1,Anna,text,hi,a,,,,,,,,,\n" +
		"c1,c,1709284502,u1,Anna,text,hi,,a,c0,,,,,,,\n" +
		"c1,d,1709284502,u1,Anna,text,look,,,,https://s/p/1,https://s/p/1.jpg,https://s/perm/1,Shop,-1,905,blocked\n" +
		"c1,e,1709284502,u1,Anna,text,hi,,a,,,,,,1,,\n"
	jsonlIn := jl("a") + "\n" +
		withFields("b", `,"reply_to":{"message":{"msgid":"a"}}`) + "\n" +
		withFields("c", `,"forwards":{"messages":[{"msgid":"a"}],"conversation_id":"c0"}`) + "\n" +
		strings.Replace(jl("d"), `"text":"hi"`, `"text":"look","shared_post":{"url":"https://s/p/1","preview_link":"https://s/p/1.jpg","preview_permalink":"https://s/perm/1","site_name":"Shop"},"delivery_status":{"status_code":-1,"error_code":905,"error":"blocked"}`, 1) + "\n" +
		strings.Replace(withFields("e", `,"forwards":{"messages":[{"msgid":"a"}]}`), `"text":"hi"`, `"text":"hi","delivery_status":{"status_code":1}`, 1) + "\n"
	fromCSV := readAll(t, Spec{Kind: KindCSV, Path: writeFile(t, "in.csv", csvIn)})
	fromJSONL := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "in.jsonl", jsonlIn)})
	require.Empty(t, fromCSV.errs)
	require.Empty(t, fromJSONL.errs)
	require.Len(t, fromCSV.records, 5)
	require.Equal(t, fromJSONL.payloads(), fromCSV.payloads())

	// The same columns from postgres, typed.
	dsn := pgtest.URL(t)
	execSQL(t, dsn, `CREATE TABLE t (conversation_id text, msgid text, timestamp bigint, sender_id text, sender_name text, message_type text, message_text text,
		reply_to_msgid text, forward_msgid text, forward_conversation_id varchar(40), shared_post_url text, shared_post_preview_link text,
		shared_post_preview_permalink text, shared_post_site_name text, delivery_status_code smallint, delivery_status_error_code integer, delivery_status_error text);
		INSERT INTO t VALUES
		('c1', 'a', 1709284502, 'u1', 'Anna', 'text', 'hi', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		('c1', 'b', 1709284502, 'u1', 'Anna', 'text', 'hi', 'a', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		('c1', 'c', 1709284502, 'u1', 'Anna', 'text', 'hi', NULL, 'a', 'c0', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
		('c1', 'd', 1709284502, 'u1', 'Anna', 'text', 'look', NULL, NULL, NULL, 'https://s/p/1', 'https://s/p/1.jpg', 'https://s/perm/1', 'Shop', -1, 905, 'blocked'),
		('c1', 'e', 1709284502, 'u1', 'Anna', 'text', 'hi', '  ', 'a', NULL, NULL, NULL, NULL, NULL, 1, NULL, NULL)`)
	fromPG := readAll(t, Spec{Kind: KindPostgres, DSN: dsn, Query: "SELECT * FROM t ORDER BY msgid"})
	require.Empty(t, fromPG.errs)
	require.Equal(t, fromJSONL.payloads(), fromPG.payloads())
}
