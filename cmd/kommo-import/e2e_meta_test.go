package main_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/meta"
	"github.com/kommo-import/kommo-import/wire"
)

// metaExpected reads an export with sources/meta as the binary does and
// returns its valid messages: the ids the ledger must hold.
func metaExpected(t *testing.T, kind, path, usersFile string) []ledgertest.Msg {
	t.Helper()
	users := sources.NewUserMap()
	b, err := os.ReadFile(usersFile)
	require.NoError(t, err)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
		agent, id, _ := strings.Cut(line, ",")
		require.NoError(t, users.AddAgent(agent, id))
	}
	r, err := meta.Open(t.Context(), sources.Spec{Kind: kind, Path: path, Users: users, MediaMissing: sources.MediaMissingText})
	require.NoError(t, err)
	defer r.Close()
	var out []ledgertest.Msg
	for {
		rec, err := r.Next(t.Context())
		if err == io.EOF {
			return out
		}
		var le *sources.LineError
		if errors.As(err, &le) {
			continue
		}
		require.NoError(t, err)
		out = append(out, ledgertest.Msg{Conv: rec.Payload.ConversationID, ID: rec.Payload.MsgID, Msec: rec.Payload.MsecTimestamp})
	}
}

// lastNewest is each conversation's loud msgid: its newest message, and of
// several at the newest millisecond (the files of one message) the last in
// the export's order, as the importer breaks ties by staging order.
func lastNewest(msgs []ledgertest.Msg) map[string]string {
	newest := map[string]ledgertest.Msg{}
	for _, m := range msgs {
		if n, ok := newest[m.Conv]; !ok || m.Msec >= n.Msec {
			newest[m.Conv] = m
		}
	}
	out := map[string]string{}
	for c, m := range newest {
		out[c] = m.ID
	}
	return out
}

// requireMeta is simProc.requireExact with the loud messages of lastNewest.
func requireMeta(t *testing.T, s *simProc, msgs []ledgertest.Msg) {
	t.Helper()
	ledgertest.Check(t, ledgertest.ReadLedger(t, s.ledger), msgs, lastNewest(msgs))
	require.Zero(t, s.stats(t).Duplicates, "the simulator saw a msgid twice")
}

// shown is what a message shows, a media message as the text it becomes
// while local files are not hosted: the same before and after.
func shown(m *wire.Message) string {
	if m.Type == wire.TypeText {
		return m.Text
	}
	s := "[" + m.Type + ": " + m.FileName + "]"
	if m.Text != "" {
		s += " " + m.Text
	}
	return s
}

// ledgerPayloads are the payloads the simulator accepted, in order.
func ledgerPayloads(t *testing.T, s *simProc) []wire.Payload {
	t.Helper()
	var out []wire.Payload
	for _, e := range ledgertest.ReadLedger(t, s.ledger) {
		var p wire.Payload
		require.NoError(t, json.Unmarshal(e.Payload, &p))
		p.Silent = e.Silent
		out = append(out, p)
	}
	return out
}

// dropNewest rewrites a thread's message_1.json without its n newest
// messages (the first n: Meta writes newest first), making an earlier export.
func dropNewest(t *testing.T, file string, n int) {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	doc["messages"] = doc["messages"].([]any)[n:]
	b, err = json.MarshalIndent(doc, "", "  ")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(file, b, 0o644))
}

// TestE2EMessenger imports an earlier Messenger export, the same export
// again, and the later one, with the real binaries: every message exactly
// once and in order, the owner's messages outgoing under their Kommo user,
// the client's incoming, one loud message per chat (the newest), nothing
// sent for the same export twice, and only the new messages for the later
// one, whose newest then is loud.
func TestE2EMessenger(t *testing.T) {
	t.Parallel()
	later := "../../testdata/messenger/2025"
	earlier := filepath.Join(t.TempDir(), "facebook-maria-2024")
	require.NoError(t, os.CopyFS(earlier, os.DirFS(later)))
	threads := filepath.Join(earlier, "your_facebook_activity", "messages")
	dropNewest(t, filepath.Join(threads, "inbox/annamuller_10158123456789012/message_1.json"), 2)
	dropNewest(t, filepath.Join(threads, "message_requests/olegpetrov_10158222222222222/message_1.json"), 1)
	usersFile := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(usersFile, []byte("agent,amojo_id\nMária Kovács,amojo-maria\n"), 0o644))

	first := metaExpected(t, meta.KindMessenger, earlier, usersFile)
	all := metaExpected(t, meta.KindMessenger, later, usersFile)
	require.Len(t, first, 22)
	require.Len(t, all, 25)

	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	args := func(run, path string) []string {
		return []string{"run", "--source", "messenger:" + path, "--users", usersFile, "--media-missing", "text",
			"--run", run, "--progress", "none", "--json", "--rate", "unlimited"}
	}
	// The damaged thread and the message with a text timestamp are rejected:
	// the run is incomplete, and says so.
	r := im.run(t, args("maria-2024", earlier)...)
	requireCode(t, exitIncomplete, r)
	sum := summary(t, r)
	require.EqualValues(t, 22, sum.SentNow)
	require.EqualValues(t, 2, sum.Rejected)
	requireMeta(t, s, first)

	payloads := ledgerPayloads(t, s)
	var anna []string
	for _, p := range payloads {
		out := p.Receiver != nil
		require.Equal(t, out, p.Sender.Name == "Mária Kovács", "direction of %q", p.Message.Text)
		if out {
			require.Equal(t, "amojo-maria", p.Sender.RefID)
			require.Equal(t, p.ConversationID, "fb-"+strings.TrimPrefix(p.Receiver.ID, "fb-user-"), "the client receives")
		}
		if p.ConversationID == "fb-10158123456789012" {
			anna = append(anna, shown(p.Message))
		}
	}
	require.Equal(t, []string{
		"Dobrý den! Mám dotaz k objednávce č. 1042 😊", "první", "druhá", "Dobrý den, Anno. Podívám se na to.",
		"[picture: 431234567_1234567890_n_431234567.jpg]", "[voice: audioclip17092843100001234_1234567890.mp4]",
		"třetí (stejný čas jako další soubor)", "čtvrtá (stejný čas, novější soubor)",
		"Tady je odkaz na slevu: https://www.example.cz/sleva?utm=fb\nJarní sleva 20 %",
		"[video: 1234_missing_video.mp4]", "[picture: thanks_1234.gif]",
		"[sticker: 39178562_1505197616293642_5411344281094848512_n.png]", "Děkuji! 👍", "[file: faktura_1042.pdf]",
		"[picture: 431299999_2222222222_n_431299999.jpg]", "[picture: 431288888_missing_n.jpg]",
	}, anna, "Anna's chat in the order sent: mojibake repaired, ties in file order")

	// The same export again, as a new run: nothing is sent, and its two
	// rejects are the first run's, known: they do not fail it again.
	r = im.run(t, args("maria-2024-again", earlier)...)
	requireCode(t, exitDone, r)
	require.Zero(t, summary(t, r).SentNow)
	require.EqualValues(t, 2, summary(t, r).RejectedKnown)
	requireMeta(t, s, first)

	// The later export: only its three new messages, the newest of each
	// chat that got one loud.
	// The damaged thread is the same file, known; the message with a text
	// timestamp is in a thread dropNewest rewrote (keys sorted, escapes
	// changed) and has no msgid: another record, new, and exit 3.
	r = im.run(t, args("maria-2025", later)...)
	requireCode(t, exitIncomplete, r)
	sum = summary(t, r)
	require.EqualValues(t, 1, sum.RejectedKnown)
	require.EqualValues(t, 1, sum.RejectedNew)
	require.EqualValues(t, 3, sum.SentNow)
	entries := ledgertest.ReadLedger(t, s.ledger)
	require.Len(t, entries, 25)
	ledgertest.Check(t, entries[:22], first, lastNewest(first))
	newest := lastNewest(all)
	for _, e := range entries[22:] {
		require.False(t, e.Duplicate)
		require.Equal(t, newest[e.ConversationID] == e.MsgID, !e.Silent, "loud only the newest: %s", e.MsgID)
	}
	require.Zero(t, s.stats(t).Duplicates)
}

// TestE2EInstagram imports the Instagram sample through the binary.
func TestE2EInstagram(t *testing.T) {
	t.Parallel()
	usersFile := filepath.Join(t.TempDir(), "users.csv")
	require.NoError(t, os.WriteFile(usersFile, []byte("agent,amojo_id\nKovács Shop,amojo-shop\n"), 0o644))
	export := "../../testdata/instagram/2025"
	want := metaExpected(t, meta.KindInstagram, export, usersFile)
	require.Len(t, want, 8)
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	r := im.run(t, "run", "--source", "instagram:"+export, "--users", usersFile, "--media-missing", "text",
		"--run", "ig", "--progress", "none", "--json", "--rate", "unlimited")
	requireCode(t, exitDone, r)
	require.EqualValues(t, 8, summary(t, r).SentNow)
	requireMeta(t, s, want)
}
