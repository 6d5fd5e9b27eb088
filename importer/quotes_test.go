package importer_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/wire"
)

// A quoted reply to a message we sent goes out with Kommo's id for it; a
// forward of a message not sent yet is embedded by msgid with its fields; a
// reply to a message the export does not hold is sent without the quote
// and counted.
func TestRepliesAndForwardsArriveWithTheirReferences(t *testing.T) {
	h := newHarness(t, sim.Options{})
	base := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli()
	text := func(conv, id string, minute int64) wire.Payload {
		return wire.Payload{
			MsecTimestamp: base + minute*60_000, MsgID: id, ConversationID: conv,
			Sender:  &wire.Participant{ID: "client-" + conv, Name: "Client " + conv},
			Message: &wire.Message{Type: wire.TypeText, Text: "text of " + id},
		}
	}
	var msgs []wire.Payload
	// Conversation a is the largest, so it is sent first: a-5 forwards b-1
	// before b is sent.
	for i, id := range []string{"a-1", "a-2", "a-3", "a-4", "a-5"} {
		msgs = append(msgs, text("a", id, int64(i)))
	}
	msgs[1].ReplyTo = &wire.ReplyTo{Message: wire.EmbeddedMessage{MsgID: "a-1"}}
	msgs[2].ReplyTo = &wire.ReplyTo{Message: wire.EmbeddedMessage{MsgID: "not-in-the-export"}}
	msgs[4].Forwards = &wire.Forwards{Messages: []wire.EmbeddedMessage{{MsgID: "b-1"}}}
	msgs = append(msgs, text("b", "b-1", 10))

	path := writePayloads(t, msgs)

	sum := h.run("quotes", path, func(c *importer.Config) { c.Workers = 1 })
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.EqualValues(t, 1, sum.QuotesDropped, "the reply to a message the export does not hold")

	byID := map[string]sim.LedgerEntry{}
	for _, e := range h.sim.Ledger() {
		byID[e.MsgID] = e
	}
	require.Len(t, byID, len(msgs))
	require.Equal(t, byID["a-1"].KommoMsgID, byID["a-2"].ReplyTo(), "a reply to a sent message names it by Kommo's id")
	require.Empty(t, byID["a-3"].ReplyTo(), "the quote of a message the export does not hold is dropped")
	require.Equal(t, "b-1", byID["a-5"].Forward(), "a forward of a message not sent yet is embedded by msgid")
	var sent struct {
		Forwards wire.Forwards `json:"forwards"`
	}
	require.NoError(t, json.Unmarshal(byID["a-5"].Payload, &sent))
	fw := sent.Forwards.Messages[0]
	require.Equal(t, "text of b-1", fw.Text)
	require.Equal(t, wire.TypeText, fw.Type)
	require.Equal(t, "Client b", fw.Sender.Name)
	require.Equal(t, msgs[5].MsecTimestamp, fw.MsecTimestamp)
}
