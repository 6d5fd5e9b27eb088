package meta

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
)

// A thread over message_1 … message_11 (message_10 and message_11 sort after
// message_9 as numbers, not as text), each file newest first, with equal
// times inside files and across their boundaries: yielded oldest first, ties
// in their true order.
func TestSplitThreadOldestFirst(t *testing.T) {
	root := t.TempDir()
	dir := "your_facebook_activity/messages/inbox/anna_1234567/"
	var want []string
	// File N holds messages (11-N)*3 … (11-N)*3+2: message_11 the oldest.
	for n := 1; n <= 11; n++ {
		var msgs []map[string]any
		for k := 0; k < 3; k++ {
			i := (11-n)*3 + k
			// Two messages a second: the second of each pair ties with the
			// first, and the last of a file ties with the next file's first.
			msgs = append(msgs, m("Anna Müller", int64(i/2), fmt.Sprintf("m%02d", i)))
		}
		writeJSON(t, root, fmt.Sprintf("%smessage_%d.json", dir, n), dyi("Anna Müller", []string{"Anna Müller", "Me"}, msgs...))
	}
	for i := 0; i < 33; i++ {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root})
	require.Empty(t, res.errs)
	require.Equal(t, want, texts(res))
	for i := 1; i < len(res.recs); i++ {
		require.Greater(t, res.recs[i].Line, res.recs[i-1].Line, "staging order is the order sent")
	}
}

// A file whose messages run oldest first (as the E2EE export writes them,
// and as a hand-edited file may) is not reversed; one written newest first
// is. Out-of-order times inside a file are sorted.
func TestFileOrderDetected(t *testing.T) {
	root := t.TempDir()
	dir := "messages/inbox/anna_1234567/"
	writeJSON(t, root, dir+"message_1.json", map[string]any{
		"participants": []any{map[string]any{"name": "Anna"}, map[string]any{"name": "Me"}}, "title": "Anna",
		"messages": []any{m("Anna", 1, "a"), m("Anna", 2, "b"), m("Anna", 5, "e"), m("Anna", 3, "c"), m("Anna", 4, "d")},
	})
	res := readAll(t, sources.Spec{Kind: KindMessenger, Path: root})
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, texts(res))

	root = t.TempDir()
	writeJSON(t, root, "Anna_1.json", map[string]any{"participants": []any{"Anna", "Me"}, "threadName": "Anna",
		"messages": []any{
			map[string]any{"senderName": "Anna", "text": "first", "timestamp": baseMS, "type": "Generic"},
			map[string]any{"senderName": "Anna", "text": "second, same ms", "timestamp": baseMS, "type": "Generic"},
			map[string]any{"senderName": "Anna", "text": "third", "timestamp": baseMS + 1, "type": "Generic"},
		}})
	res = readAll(t, sources.Spec{Kind: KindMessenger, Path: root})
	require.Equal(t, []string{"first", "second, same ms", "third"}, texts(res))
	require.Equal(t, "fb-e2ee-Anna_1", res.recs[0].Payload.ConversationID)
}
