package sources

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRejectNamesTheMsgID: a rejected record that was read far enough to
// have a msgid carries it (a later run of the scope tells the same record
// rejected again by it); one that did not parse has none.
func TestRejectNamesTheMsgID(t *testing.T) {
	path := writeFile(t, "x.jsonl", ``+
		`{"msgid": "broken", "conversation_id": `+"\n"+ // not JSON: no msgid
		`{"msgid": "bad-ts", "conversation_id": "c", "timestamp": "soon", "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}`+"\n"+
		`{"payload": {"msgid": "ev-ts", "conversation_id": "c", "timestamp": "soon", "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}}`+"\n"+
		`{"msgid": "no-sender", "conversation_id": "c", "timestamp": 1709284502, "message": {"type": "text", "text": "x"}}`+"\n"+
		`{"msgid": "ok", "conversation_id": "c", "timestamp": 1709284502, "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "x"}}`+"\n"+
		`{"msgid": "ok", "conversation_id": "c", "timestamp": 1709284502, "sender": {"id": "a", "name": "b"}, "message": {"type": "text", "text": "other"}}`+"\n")
	res := readAll(t, Spec{Kind: KindJSONL, Path: path})
	var got []string
	for _, e := range res.errs {
		got = append(got, e.MsgID)
	}
	require.Equal(t, []string{"", "bad-ts", "ev-ts", "no-sender", "ok"}, got)
}
