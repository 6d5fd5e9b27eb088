package telegram

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
)

// TestCutShort: a result.json cut anywhere (a copy that did not finish)
// gives every message before the cut, then one bad record that says the file
// ends there, with its offset; never a panic, never a message twice.
func TestCutShort(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(chatSample, ResultFile))
	require.NoError(t, err)
	full := read(t, sources.Spec{Path: chatSample, Users: botUsers(), MediaMissing: sources.MediaMissingText}, 0)
	for cut := 1; cut < len(raw); cut += 97 {
		dir := export(t, string(raw[:cut]))
		res, err := tryRead(sources.Spec{Path: dir, Users: botUsers(), MediaMissing: sources.MediaMissingText}, 0)
		require.NoError(t, err, "cut at %d", cut)
		require.NoError(t, res.fatal, "cut at %d", cut)
		require.LessOrEqual(t, len(res.records), len(full.records))
		require.Equal(t, full.msgids()[:len(res.records)], res.msgids(), "cut at %d: a prefix", cut)
		require.Len(t, res.errs, 1, "cut at %d: %v", cut, res.errTexts())
		require.Contains(t, res.errs[0].Error(), "byte offset", "cut at %d", cut)
	}
	// A cut inside a message says so.
	at := bytes.Index(raw, []byte(`"Thanks, got it"`))
	res := read(t, sources.Spec{Path: export(t, string(raw[:at])), Users: botUsers(), MediaMissing: sources.MediaMissingText}, 0)
	require.Len(t, res.records, 4)
	require.Contains(t, res.errs[0].Error(), "the file ends inside this message: the export was cut short")
	require.Contains(t, res.errs[0].Error(), filepath.Join("result.json:"))
}

// TestBrokenMessage: a message that does not decode is one bad record that
// names its line and byte offset and what is wrong; the messages after it
// are read.
func TestBrokenMessage(t *testing.T) {
	t.Parallel()
	dir := export(t, oneChat(
		tgMsg(1, 1710000001, 'a', text("before")),
		`{"id": 2, "type": "message", "date_unixtime": "1710000002", "from_id": "user42",`+"\n"+`   "text": "a" "b"}`,
		tgMsg(3, 1710000003, 'a', `"reply_to_message_id": "soon", `+text("bad reply")),
		tgMsg(4, 1710000004, 'a', `"text": "ok", "date_unixtime": true`),
		tgMsg(5, 1710000005, 'a', text("after")),
	))
	res := read(t, sources.Spec{Path: dir}, 0)
	require.Equal(t, []string{"tg-42-1", "tg-42-5"}, res.msgids())
	require.Len(t, res.errs, 3, res.errTexts())
	name := filepath.Join(dir, ResultFile)
	require.Regexp(t, `^`+regexpQuote(name)+`:7: line 8, byte offset \d+: want ',' or '}' after the value of "text", found '"'$`, res.errs[0].Error())
	require.Contains(t, res.errs[1].Error(), `"soon" is not a whole number`)
	require.Contains(t, res.errs[2].Error(), "byte offset")
}

func regexpQuote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `.`, `\.`, `+`, `\+`, `(`, `\(`, `)`, `\)`, `[`, `\[`).Replace(s)
}

// TestDamagedStructure: a fault between messages or in the file's outline
// is one bad record naming the place; what came before is read.
func TestDamagedStructure(t *testing.T) {
	t.Parallel()
	// An unterminated string swallows the rest of the file: the read ends
	// with one bad record, the messages before it read.
	res := read(t, sources.Spec{Path: export(t, oneChat(tgMsg(1, 1710000001, 'a', text("one")),
		`{"id": 2, "type": "message", "text": "unterminated}`, tgMsg(3, 1710000003, 'a', text("three"))))}, 0)
	require.Equal(t, []string{"tg-42-1"}, res.msgids())
	require.Len(t, res.errs, 1)
	require.Contains(t, res.errs[0].Error(), "byte offset")

	doc := oneChat(tgMsg(1, 1710000001, 'a', text("one")), tgMsg(2, 1710000002, 'a', text("two")))
	broken := strings.Replace(doc, `"messages": [`, `"messages": [ :`, 1)
	res = read(t, sources.Spec{Path: export(t, broken)}, 0)
	require.Empty(t, res.records)
	require.Len(t, res.errs, 1)
	require.Contains(t, res.errs[0].Error(), "line 5, byte offset")
	require.Contains(t, res.errs[0].Error(), "want an array element, found ':'; nothing after it could be read")

	// A missing comma between messages is read as if it were there.
	res = read(t, sources.Spec{Path: export(t, strings.Replace(doc, "},\n", "}\n", 1))}, 0)
	require.Equal(t, []string{"tg-42-1", "tg-42-2"}, res.msgids())
}

// TestNotAnExport: what cannot be a Telegram JSON export is refused at
// Open, naming the file and what to do.
func TestNotAnExport(t *testing.T) {
	t.Parallel()
	_, err := tryRead(sources.Spec{Path: export(t, "")}, 0)
	require.ErrorContains(t, err, "the file is empty")
	_, err = tryRead(sources.Spec{Path: export(t, `[{"id": 1}]`)}, 0)
	require.ErrorContains(t, err, "not a Telegram Desktop JSON export: it starts with '[', not an object {")
	html := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(html, "messages.html"), []byte("<html>"), 0o644))
	_, err = tryRead(sources.Spec{Path: html}, 0)
	require.ErrorContains(t, err, `holds an HTML export (messages.html), which cannot be read: export again choosing "Machine-readable JSON"`)
	_, err = tryRead(sources.Spec{Path: t.TempDir()}, 0)
	require.ErrorContains(t, err, "holds no result.json")
	_, err = tryRead(sources.Spec{Path: filepath.Join(t.TempDir(), "nothing")}, 0)
	require.ErrorContains(t, err, "no such file")

	res := read(t, sources.Spec{Path: export(t, `{"about": "x", "personal_information": {"user_id": 1}}`)}, 0)
	require.ErrorContains(t, res.fatal, `no chats in this export (neither "chats" nor "messages")`)
}

// TestBOMMinifiedAndHuge: a byte order mark, a file on one line (lines are
// then message ordinals, still growing), and a message over the size limit
// (rejected on its own, the next one read).
func TestBOMMinifiedAndHuge(t *testing.T) {
	t.Parallel()
	doc := `{"name":"Anna Client","type":"personal_chat","id":42,"messages":[` +
		tgMsg(1, 1710000001, 'a', text("one")) + "," +
		tgMsg(2, 1710000002, 'a', text(strings.Repeat("x", 3000))) + "," +
		tgMsg(3, 1710000003, 'a', text("three")) + "]}"
	res := read(t, sources.Spec{Path: export(t, "\xEF\xBB\xBF"+doc), MaxRecordBytes: 2000}, 0)
	require.Equal(t, []string{"tg-42-1", "tg-42-3"}, res.msgids())
	require.Equal(t, []int64{1, 3}, []int64{res.records[0].Line, res.records[1].Line})
	require.Len(t, res.errs, 1)
	require.ErrorIs(t, res.errs[0], sources.ErrTooLarge)
	require.EqualValues(t, 2, res.errs[0].Line)
}
