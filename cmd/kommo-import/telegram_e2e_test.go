package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	kimport "github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/telegram"
	"github.com/kommo-import/kommo-import/wire"
)

const (
	tgChat    = "../../testdata/telegram/ChatExport_2024-03-14"
	tgAccount = "../../testdata/telegram/DataExport_2024-04-01"
)

// tgArgs is the command an operator would type: no --run, so the run's name
// comes from the scope and the export (the same export resumes its run, a
// newer one is a new run).
func tgArgs(path string) []string {
	return []string{"run", "--source", "telegram:" + path, "--bot-id", "BOT-1", "--media-missing", "text",
		"--rate", "unlimited", "--progress", "none", "--json", "--reconcile-wait", "300ms"}
}

// tgMessages reads an export the way run does, for the messages the ledger
// must hold.
func tgMessages(t *testing.T, path string) []ledgertest.Msg {
	t.Helper()
	users := sources.NewUserMap()
	users.SetBotID("BOT-1")
	r, err := telegram.Open(context.Background(), sources.Spec{Kind: sources.KindTelegram, Path: path, Users: users, MediaMissing: sources.MediaMissingText})
	require.NoError(t, err)
	defer r.Close()
	var out []ledgertest.Msg
	for {
		rec, err := r.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, ledgertest.Msg{Conv: rec.Payload.ConversationID, ID: rec.Payload.MsgID, Msec: rec.Payload.MsecTimestamp})
	}
}

func ledgerByID(entries []sim.LedgerEntry) map[string]sim.LedgerEntry {
	out := map[string]sim.LedgerEntry{}
	for _, e := range entries {
		out[e.MsgID] = e
	}
	return out
}

func payloadOf(t *testing.T, e sim.LedgerEntry) wire.Payload {
	t.Helper()
	var p wire.Payload
	require.NoError(t, json.Unmarshal(e.Payload, &p))
	return p
}

// TestE2ETelegramExportAndResync imports a Telegram chat export with the
// real binaries: every message once, in order, the client's incoming and
// the company's outgoing, the newest loud; the same command again sends
// nothing; the later whole-account export sends only what is new, with the
// newest-message rule over everything the scope received.
func TestE2ETelegramExportAndResync(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)

	first := tgMessages(t, tgChat)
	require.Len(t, first, 19)
	r := im.run(t, tgArgs(tgChat)...)
	requireCode(t, exitDone, r)
	sum := summary(t, r)
	require.EqualValues(t, 19, sum.Sent)
	require.EqualValues(t, 1, sum.Conversations)
	require.Equal(t, map[string]int64{
		sources.SkipServiceMessage: 2, sources.SkipUnsupported: 3, sources.SkipMediaWithoutFile: 4, sources.SkipMediaNotHosted: 3,
	}, sum.Skipped)
	s.requireExact(t, first)

	entries := ledgertest.ReadLedger(t, s.ledger)
	byID := ledgerByID(entries)
	in, out := payloadOf(t, byID["tg-123456789-4501"]), payloadOf(t, byID["tg-123456789-4502"])
	require.Nil(t, in.Receiver, "the peer's message is incoming")
	require.Equal(t, "tg-user123456789", in.Sender.ID)
	require.Equal(t, "BOT-1", out.Sender.RefID, "the exporting account's message is outgoing, as the bot here")
	require.Equal(t, "tg-user123456789", out.Receiver.ID)
	reply := payloadOf(t, byID["tg-123456789-4505"])
	require.Equal(t, byID["tg-123456789-4502"].KommoMsgID, reply.ReplyTo.Message.ID, "the reply quotes the sent message by Kommo's id")
	require.Less(t, byID["tg-123456789-4517"].Seq, byID["tg-123456789-4518"].Seq, "two in one second go in id order")

	// The same command again: the same run, nothing sent.
	again := im.run(t, tgArgs(tgChat)...)
	requireCode(t, exitDone, again)
	require.Equal(t, sum.Name, summary(t, again).Name)
	require.Zero(t, summary(t, again).SentNow)
	require.Len(t, ledgertest.ReadLedger(t, s.ledger), 19)

	// Two weeks later, the whole account: only what is new goes out.
	later := tgMessages(t, tgAccount)
	r = im.run(t, tgArgs(tgAccount)...)
	requireCode(t, exitDone, r)
	resync := summary(t, r)
	require.NotEqual(t, sum.Name, resync.Name, "a newer export is a new run")
	require.EqualValues(t, 10, resync.SentNow, "3 new in Ivan's chat, 5 with Maria, 2 with a deleted account")
	require.EqualValues(t, 19, resync.KnownSent)
	entries = ledgertest.ReadLedger(t, s.ledger)
	ledgertest.Check(t, entries, later, nil)
	require.Zero(t, s.stats(t).Duplicates)
	loud := map[string][]string{}
	for _, e := range entries {
		if !e.Silent {
			loud[e.ConversationID] = append(loud[e.ConversationID], e.MsgID)
		}
	}
	require.Equal(t, map[string][]string{
		"tg-123456789": {"tg-123456789-4523", "tg-123456789-4532"}, // the first import's newest, then the re-sync's new newest
		"tg-987654321": {"tg-987654321-25"},
		"tg-111":       {"tg-111-8"},
	}, loud)
	ivan := payloadOf(t, ledgerByID(entries)["tg-123456789-4532"])
	require.Equal(t, &wire.Profile{Phone: "+7 999 123 45 67"}, ivan.Sender.Profile, "the phone from contacts.list")
}

// TestE2ETelegramDamagedExport: a result.json cut short (a copy that did
// not finish) imports every message before the cut; the cut is a rejected
// record whose reason names the byte offset, and the exit code says some
// records were rejected.
func TestE2ETelegramDamagedExport(t *testing.T) {
	t.Parallel()
	s := startSim(t, "--rate", "0")
	im := newImporter(t, s)
	raw, err := os.ReadFile(filepath.Join(tgChat, "result.json"))
	require.NoError(t, err)
	dir := t.TempDir()
	cut := strings.Index(string(raw), `"Thanks, got it"`)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "result.json"), raw[:cut], 0o644))

	r := im.run(t, tgArgs(dir)...)
	requireCode(t, exitIncomplete, r)
	sum := summary(t, r)
	require.EqualValues(t, 4, sum.Sent, "the four messages before the cut")
	require.EqualValues(t, 1, sum.Rejected)
	require.Equal(t, kimport.OutcomeIncomplete, sum.Outcome)
	rep := im.run(t, "report", "--run", sum.Name, "--format", "jsonl")
	requireCode(t, exitIncomplete, rep)
	require.Contains(t, rep.stdout, "the file ends inside this message")
	require.Regexp(t, `byte offset \d+`, rep.stdout)

	v := im.run(t, "validate", "--source", "telegram:"+dir, "--bot-id", "B", "--media-missing", "text")
	requireCode(t, exitIncomplete, v)
	require.Contains(t, v.stdout, filepath.Join(dir, "result.json")+":")
	require.Contains(t, v.stdout, "the file ends inside this message")
}
