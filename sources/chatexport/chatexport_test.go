package chatexport

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

func TestCompanyByNameIDAndUsers(t *testing.T) {
	users := sources.NewUserMap()
	require.NoError(t, users.AddAgent("Olga Agent", "amojo-1"))
	c := NewCompany(sources.Spec{Self: []string{"Acme\u00a0Support"}, Users: users})
	c.AddID("user42")
	require.True(t, c.Is("", " acme   support"))
	require.True(t, c.Is("user42", "whoever"))
	require.True(t, c.Is("", "Olga Agent"))
	require.False(t, c.Is("user7", "Client Name"))
	require.Equal(t, "john doe", Fold("\u200eJohn\u202fDoe "))
}

func TestAgentIDByIDOrName(t *testing.T) {
	users := sources.NewUserMap()
	require.NoError(t, users.AddAgent("Olga Agent", "amojo-1"))
	require.NoError(t, users.AddAgent("user77", "amojo-2"))
	c := NewCompany(sources.Spec{Users: users})
	require.Equal(t, "Olga Agent", c.AgentID("user42", "Olga Agent"), "listed by name")
	require.Equal(t, "user77", c.AgentID("user77", "Olga Agent"), "listed by id: the id wins")
	require.Equal(t, "user5", c.AgentID("user5", "Nobody"), "unlisted: the id")
	require.Equal(t, "Nobody", c.AgentID("", "Nobody"))
	require.Equal(t, "user5", NewCompany(sources.Spec{}).AgentID("user5", "Olga Agent"))
}

func TestPayloadDirection(t *testing.T) {
	chat := Chat{ID: "wa-x", Client: wire.Participant{ID: "+49 151 1234567", Name: "Anna"}}
	at := time.UnixMilli(1710428531123)
	var in, out wire.Payload
	chat.Payload(&Message{MsgID: "m1", Time: at, Author: "Anna", Text: "hi"}, &in)
	require.Nil(t, in.Receiver)
	require.Equal(t, "Anna", in.Sender.Name)
	require.EqualValues(t, 1710428531, in.Timestamp)
	require.EqualValues(t, 1710428531123, in.MsecTimestamp)

	chat.Payload(&Message{MsgID: "m2", Time: at, Author: "Olga", FromCompany: true,
		Media: &Media{Type: wire.TypePicture, Path: "/exp/IMG 1.jpg", FileName: "IMG 1.jpg", Size: 10}, Text: "look"}, &out)
	require.Equal(t, "Olga", out.Sender.ID)
	require.Equal(t, "Anna", out.Receiver.Name)
	require.Equal(t, "file:///exp/IMG%201.jpg", out.Message.Media)
	require.Equal(t, "look", out.Message.Text)
}

func TestIDsAreStableAndOrdinal(t *testing.T) {
	a, b := NewIDs("wa-"), NewIDs("wa-")
	x1 := a.Next("chat", "1/2/23, 10:00", "Anna", "ok")
	x2 := a.Next("chat", "1/2/23, 10:00", "Anna", "ok")
	require.NotEqual(t, x1, x2, "identical messages get their ordinal")
	require.Equal(t, x1, b.Next("chat", "1/2/23, 10:00", "Anna", "ok"), "the same export gives the same ids")
	require.NotEqual(t, x1, b.Next("chat2", "1/2/23, 10:00", "Anna", "ok"))
}
