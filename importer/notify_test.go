package importer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/wire"
)

// With newest-incoming, the loud message of a chat is the newest one from
// the client: a manager's later reply stays silent, and a chat with only
// outgoing messages has none. With newest, the newest message is loud
// whoever wrote it.
func TestNotifyNewestIncoming(t *testing.T) {
	base := time.Date(2024, 5, 1, 9, 0, 0, 0, time.UTC).UnixMilli()
	msg := func(conv, id string, minute int64, outgoing bool) wire.Payload {
		p := wire.Payload{
			MsecTimestamp: base + minute*60_000, MsgID: id, ConversationID: conv,
			Sender:  &wire.Participant{ID: "client-" + conv, Name: "Client " + conv},
			Message: &wire.Message{Type: wire.TypeText, Text: "text of " + id},
		}
		if outgoing {
			p.Receiver = p.Sender
			p.Sender = &wire.Participant{ID: "agent-1", RefID: "amojo-agent-1", Name: "Dana"}
		}
		return p
	}
	msgs := []wire.Payload{
		msg("ends-with-reply", "r-1", 0, false), msg("ends-with-reply", "r-2", 1, false), msg("ends-with-reply", "r-3", 2, true),
		msg("client-only", "c-1", 0, false), msg("client-only", "c-2", 1, false),
		msg("agent-only", "a-1", 0, true),
	}
	path := writePayloads(t, msgs)

	for _, tc := range []struct {
		notify importer.Notify
		loud   []string
	}{
		{importer.NotifyNewestIncoming, []string{"r-2", "c-2"}},
		{importer.NotifyNewest, []string{"r-3", "c-2", "a-1"}},
	} {
		t.Run(string(tc.notify), func(t *testing.T) {
			h := newHarness(t, sim.Options{})
			sum := h.run("notify", path, func(c *importer.Config) { c.Notify = tc.notify })
			require.Equal(t, importer.OutcomeDone, sum.Outcome)
			var loud []string
			for _, e := range h.sim.Ledger() {
				if !e.Silent {
					loud = append(loud, e.MsgID)
				}
			}
			require.ElementsMatch(t, tc.loud, loud)
		})
	}
}
