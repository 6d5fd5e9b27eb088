package meta

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
)

// A later export of the same account gives the messages it shares with an
// earlier one the same conversation_id and msgid, though in between the
// request was accepted (message_requests → inbox), the client renamed (the
// folder's slug and every sender_name change), and Meta cut the files at
// other places.
func TestLaterExportKeepsIDs(t *testing.T) {
	old := []map[string]any{
		m("Anna Müller", 0, "Dobrý den"),
		m("Anna Müller", 0, "Dobrý den"), // the same again, the same millisecond
		m("Me Owner", 60, "Dobrý den, co pro vás můžeme udělat?"),
		m("Anna Müller", 61, "", "photos", []any{map[string]any{"uri": "messages/message_requests/annamuller_1234567/photos/p.jpg"}}),
		m("Anna Müller", 61, "", "photos", []any{map[string]any{"uri": "messages/message_requests/annamuller_1234567/photos/q.jpg"}}),
	}
	first := t.TempDir()
	writeJSON(t, first, "your_facebook_activity/messages/message_requests/annamuller_1234567/message_2.json",
		dyi("Anna Müller", []string{"Anna Müller", "Me Owner"}, old[:2]...))
	writeJSON(t, first, "your_facebook_activity/messages/message_requests/annamuller_1234567/message_1.json",
		dyi("Anna Müller", []string{"Anna Müller", "Me Owner"}, old[2:]...))

	renamed := func(msgs []map[string]any) []any {
		out := make([]any, len(msgs))
		for i, x := range msgs {
			c := map[string]any{}
			for k, v := range x {
				c[k] = v
			}
			if c["sender_name"] == "Anna Müller" {
				c["sender_name"] = "Anna Nováková"
			}
			out[i] = c
		}
		return out
	}
	newer := append(renamed(old), m("Anna Nováková", 120, "Děkuji, nashledanou"), m("Me Owner", 121, "Nashledanou!"))
	later := t.TempDir()
	msgs := make([]map[string]any, len(newer))
	for i, x := range newer {
		msgs[i] = x.(map[string]any)
	}
	writeJSON(t, later, "your_facebook_activity/messages/inbox/annanovakova_1234567/message_1.json",
		dyi("Anna Nováková", []string{"Anna Nováková", "Me Owner"}, msgs...))

	spec := sources.Spec{Kind: KindMessenger, MediaMissing: sources.MediaMissingText, Self: []string{"Me Owner"}, Users: sampleUsersFor(t, "Me Owner")}
	spec.Path = first
	a := readAll(t, spec)
	spec.Path = later
	b := readAll(t, spec)
	require.Empty(t, a.errs)
	require.Empty(t, b.errs)
	require.Len(t, a.recs, 5)
	require.Len(t, b.recs, 7)
	for i, r := range a.recs {
		require.Equal(t, r.Payload.MsgID, b.recs[i].Payload.MsgID, "record %d", i)
		require.Equal(t, "fb-1234567", b.recs[i].Payload.ConversationID)
	}
	require.NotEqual(t, a.recs[0].Payload.MsgID, a.recs[1].Payload.MsgID, "identical messages: their ordinal tells them apart")
	require.NotEqual(t, a.recs[3].Payload.MsgID, a.recs[4].Payload.MsgID)
	require.Equal(t, "Anna Nováková", b.recs[0].Payload.Sender.Name, "the client under their current name")
}

func sampleUsersFor(t *testing.T, agent string) *sources.UserMap {
	users := sources.NewUserMap()
	require.NoError(t, users.AddAgent(agent, "amojo-1"))
	return users
}
