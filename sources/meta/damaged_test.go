package meta

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
)

// A damaged thread is one rejected record that names the file, the line and
// the offset of the fault, and is counted; the threads around it are read.
func TestDamagedThreadsSkippedOthersGoOn(t *testing.T) {
	good := dyi("Bob", []string{"Bob", "Me"}, m("Bob", 1, "still here"))
	for _, tc := range []struct {
		name, file, content string
		want                string
	}{
		{"cut short", "message_1.json", "{\n  \"participants\": [{\"name\": \"Eve\"}],\n  \"messages\": [\n    {\"sender_name\": \"Eve\",",
			"messages/inbox/eve_2222222/message_1.json line 4 (offset 81): the file ends in the middle of the JSON (cut short?): the thread is skipped"},
		{"a syntax error", "message_1.json", "{\n  \"participants\": [],\n  \"messages\": [\n    {\"sender_name\": \"Eve\" \"timestamp_ms\": 1}\n  ]\n}",
			"messages/inbox/eve_2222222/message_1.json line 4 (offset 67): invalid character '\"' after object key:value pair: the thread is skipped"},
		{"a list at the top", "message_1.json", "[1, 2]",
			"messages/inbox/eve_2222222/message_1.json line 1 (offset 1): not a JSON object: the thread is skipped"},
		{"messages not a list", "message_1.json", `{"participants": [], "messages": {"a": 1}}`,
			`messages/inbox/eve_2222222/message_1.json line 1 (offset 34): "messages" is not a list: the thread is skipped`},
		{"participants of the wrong type", "message_1.json", `{"participants": "Eve", "messages": []}`,
			"messages/inbox/eve_2222222/message_1.json line 1 (offset 22): participants: json: cannot unmarshal string into Go value of type []meta.dyiParticipant: the thread is skipped"},
		{"no messages", "message_1.json", `{"participants": [{"name": "Eve"}]}`,
			`messages/inbox/eve_2222222/message_1.json: no "messages" in the file: the thread is skipped`},
		{"the older file damaged", "message_2.json", `{"participants": [], "messages": [`,
			"messages/inbox/eve_2222222/message_2.json line 1 (offset 34): the file ends in the middle of the JSON (cut short?): the thread is skipped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			writeJSON(t, root, "messages/inbox/alice_1111111/message_1.json", dyi("Alice", []string{"Alice", "Me"}, m("Alice", 1, "before")))
			writeJSON(t, root, "messages/inbox/eve_2222222/message_1.json", dyi("Eve", []string{"Eve", "Me"}, m("Eve", 1, "lost with its thread")))
			writeFile(t, root, "messages/inbox/eve_2222222/"+tc.file, []byte(tc.content))
			writeJSON(t, root, "messages/inbox/zed_3333333/message_1.json", good)
			res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root})
			require.Equal(t, []string{"before", "still here"}, texts(res))
			require.Len(t, res.errs, 1)
			require.Equal(t, root+":2: "+tc.want, res.errs[0].Error())
			require.Equal(t, map[string]int64{SkipDamagedChat: 1}, res.skipped)
			require.EqualValues(t, 1, res.stats.Rejected)
		})
	}
}

// A byte-order mark, which an editor may add to a file, is no damage.
func TestByteOrderMark(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "messages/inbox/bob_1111111/message_1.json",
		[]byte("\ufeff"+`{"participants":[{"name":"Bob"},{"name":"Me"}],"title":"Bob","messages":[{"sender_name":"Bob","timestamp_ms":1700000000000,"content":"hi"}]}`))
	res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root})
	require.Empty(t, res.errs)
	require.Equal(t, []string{"hi"}, texts(res))
}

// A message of the wrong shape is one rejected record naming its file,
// line, offset and field; the rest of its thread is read.
func TestBadMessage(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "messages/inbox/bob_1111111/message_1.json", []byte(strings.Join([]string{
		`{"participants": [{"name": "Bob"}, {"name": "Me"}], "title": "Bob", "messages": [`,
		`  {"sender_name": "Bob", "timestamp_ms": 1700000003000, "content": "three"},`,
		`  {"sender_name": "Bob", "timestamp_ms": 1700000002000, "content": ["not", "text"]},`,
		`  {"sender_name": "Bob", "content": "no time"},`,
		`  {"timestamp_ms": 1700000001500, "content": "no author"},`,
		`  {"sender_name": "Bob", "timestamp_ms": 1700000001000, "content": "one"}`,
		`]}`}, "\n")))
	res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root})
	require.Equal(t, []string{"one", "three"}, texts(res))
	require.Equal(t, []string{
		root + ":1: timestamp_ms: messages/inbox/bob_1111111/message_1.json line 4 (offset 246, messages[2]): required: the message has no time",
		root + ":3: sender_name: messages/inbox/bob_1111111/message_1.json line 5 (offset 294, messages[3]): required: the message has no author",
		root + ":4: content: messages/inbox/bob_1111111/message_1.json line 3 (offset 161, messages[1]): a JSON array where the export has a string",
	}, errTexts(res))
	require.Equal(t, `{"sender_name": "Bob", "timestamp_ms": 1700000002000, "content": ["not", "text"]}`, string(res.errs[2].Raw))
}
