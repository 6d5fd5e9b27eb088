package sources

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/chatsapi"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	const sec = int64(1709284502) // 2024-03-01T09:15:02Z
	base := func(edit func(p *chatsapi.Payload)) chatsapi.Payload {
		p := chatsapi.Payload{
			Timestamp: sec, MsecTimestamp: sec*1000 + 123, MsgID: "m1", ConversationID: "c1",
			Sender:  &chatsapi.Participant{ID: "u1", Name: "Anna"},
			Message: &chatsapi.Message{Type: "text", Text: "hi"},
		}
		if edit != nil {
			edit(&p)
		}
		return p
	}
	msg := func(m chatsapi.Message) func(p *chatsapi.Payload) {
		return func(p *chatsapi.Payload) { p.Message = &m }
	}
	tests := []struct {
		name      string
		in        chatsapi.Payload
		wantField string // "" = valid
		wantIs    error
		check     func(t *testing.T, p chatsapi.Payload)
	}{
		{name: "valid text", in: base(nil)},
		{name: "silent cleared", in: base(func(p *chatsapi.Payload) { p.Silent = true }),
			check: func(t *testing.T, p chatsapi.Payload) { require.False(t, p.Silent) }},
		{name: "msec derived from timestamp", in: base(func(p *chatsapi.Payload) { p.MsecTimestamp = 0 }),
			check: func(t *testing.T, p chatsapi.Payload) { require.Equal(t, sec*1000, p.MsecTimestamp) }},
		{name: "timestamp derived from msec", in: base(func(p *chatsapi.Payload) { p.Timestamp = 0 }),
			check: func(t *testing.T, p chatsapi.Payload) { require.Equal(t, sec, p.Timestamp) }},
		{name: "no timestamp", in: base(func(p *chatsapi.Payload) { p.Timestamp, p.MsecTimestamp = 0, 0 }), wantField: "timestamp", wantIs: ErrRequired},
		{name: "timestamps disagree", in: base(func(p *chatsapi.Payload) { p.MsecTimestamp = (sec + 1) * 1000 }), wantField: "msec_timestamp"},
		{name: "before 2000", in: base(func(p *chatsapi.Payload) { p.Timestamp, p.MsecTimestamp = 946684799, 0 }), wantField: "timestamp"},
		{name: "year 2000 is fine", in: base(func(p *chatsapi.Payload) { p.Timestamp, p.MsecTimestamp = 946684800, 0 })},
		{name: "in the future", in: base(func(p *chatsapi.Payload) { p.Timestamp, p.MsecTimestamp = testNow.Unix()+25*3600, 0 }), wantField: "timestamp"},
		{name: "within a day ahead", in: base(func(p *chatsapi.Payload) { p.Timestamp, p.MsecTimestamp = testNow.Unix()+23*3600, 0 })},
		{name: "milliseconds as seconds", in: base(func(p *chatsapi.Payload) { p.Timestamp, p.MsecTimestamp = sec*1000, 0 }), wantField: "timestamp"},
		{name: "negative timestamp", in: base(func(p *chatsapi.Payload) { p.Timestamp, p.MsecTimestamp = -5, 0 }), wantField: "timestamp"},
		{name: "huge timestamp", in: base(func(p *chatsapi.Payload) { p.Timestamp, p.MsecTimestamp = 1<<62, 0 }), wantField: "timestamp"},
		{name: "no conversation", in: base(func(p *chatsapi.Payload) { p.ConversationID = "" }), wantField: "conversation_id", wantIs: ErrRequired},
		{name: "no msgid", in: base(func(p *chatsapi.Payload) { p.MsgID = "" }), wantField: "msgid", wantIs: ErrRequired},
		{name: "no sender", in: base(func(p *chatsapi.Payload) { p.Sender = nil }), wantField: "sender", wantIs: ErrRequired},
		{name: "no sender id", in: base(func(p *chatsapi.Payload) { p.Sender.ID = "" }), wantField: "sender.id", wantIs: ErrRequired},
		{name: "no sender name", in: base(func(p *chatsapi.Payload) { p.Sender.Name = "" }), wantField: "sender.name", wantIs: ErrRequired},
		{name: "outgoing with ref_id", in: base(func(p *chatsapi.Payload) {
			p.Sender.RefID = "amojo-1"
			p.Receiver = &chatsapi.Participant{ID: "c1", Name: "Client"}
		})},
		{name: "outgoing without ref_id", in: base(func(p *chatsapi.Payload) { p.Receiver = &chatsapi.Participant{ID: "c1", Name: "Client"} }),
			wantField: "sender.ref_id", wantIs: ErrRequired},
		{name: "receiver without name", in: base(func(p *chatsapi.Payload) {
			p.Sender.RefID = "amojo-1"
			p.Receiver = &chatsapi.Participant{ID: "c1"}
		}), wantField: "receiver.name"},
		{name: "invalid UTF-8 text", in: base(msg(chatsapi.Message{Type: "text", Text: "caf\xe9"})), wantField: "message.text", wantIs: ErrInvalidUTF8},
		{name: "invalid UTF-8 sender name", in: base(func(p *chatsapi.Payload) { p.Sender.Name = "\xff" }), wantField: "sender.name", wantIs: ErrInvalidUTF8},
		{name: "invalid UTF-8 msgid", in: base(func(p *chatsapi.Payload) { p.MsgID = "a\xc3" }), wantField: "msgid", wantIs: ErrInvalidUTF8},
		{name: "no message", in: base(func(p *chatsapi.Payload) { p.Message = nil }), wantField: "message", wantIs: ErrRequired},
		{name: "no type", in: base(msg(chatsapi.Message{Text: "x"})), wantField: "message.type", wantIs: ErrRequired},
		{name: "unknown type", in: base(msg(chatsapi.Message{Type: "gif"})), wantField: "message.type"},
		{name: "text without text", in: base(msg(chatsapi.Message{Type: "text"})), wantField: "message.text", wantIs: ErrRequired},
		{name: "file", in: base(msg(chatsapi.Message{Type: "file", FileName: "a.pdf", FileSize: 10}))},
		{name: "file without name", in: base(msg(chatsapi.Message{Type: "file", FileSize: 10})), wantField: "message.file_name"},
		{name: "video without size", in: base(msg(chatsapi.Message{Type: "video", FileName: "v.mp4"})), wantField: "message.file_size"},
		{name: "picture without size", in: base(msg(chatsapi.Message{Type: "picture", FileName: "p.png"})), wantField: "message.file_size"},
		{name: "negative size", in: base(msg(chatsapi.Message{Type: "voice", FileSize: -1})), wantField: "message.file_size"},
		{name: "voice needs nothing", in: base(msg(chatsapi.Message{Type: "voice"}))},
		{name: "sticker", in: base(msg(chatsapi.Message{Type: "sticker", StickerID: "s1"}))},
		{name: "location", in: base(msg(chatsapi.Message{Type: "location", Location: &chatsapi.Location{Lat: -90, Lon: 180}}))},
		{name: "location missing", in: base(msg(chatsapi.Message{Type: "location"})), wantField: "message.location"},
		{name: "latitude out of range", in: base(msg(chatsapi.Message{Type: "location", Location: &chatsapi.Location{Lat: 90.5}})), wantField: "message.location.lat"},
		{name: "longitude out of range", in: base(msg(chatsapi.Message{Type: "location", Location: &chatsapi.Location{Lon: -181}})), wantField: "message.location.lon"},
		{name: "contact", in: base(msg(chatsapi.Message{Type: "contact", Contact: &chatsapi.Contact{Name: "Li", Phone: "+1"}}))},
		{name: "contact without phone", in: base(msg(chatsapi.Message{Type: "contact", Contact: &chatsapi.Contact{Name: "Li"}})), wantField: "message.contact.phone"},
		{name: "contact missing", in: base(msg(chatsapi.Message{Type: "contact"})), wantField: "message.contact.name"},
		{name: "post without url", in: base(msg(chatsapi.Message{Type: "text", Text: "x", Post: &chatsapi.Post{ID: "p"}})), wantField: "message.post.url"},
		{name: "external id too long", in: base(func(p *chatsapi.Payload) {
			p.Source = &chatsapi.Source{ExternalID: "12345678901234567890123456789012345678901"}
		}), wantField: "source.external_id"},
		{name: "NUL in msgid", in: base(func(p *chatsapi.Payload) { p.MsgID = "m\x001" }), wantField: "msgid"},
		{name: "NUL in conversation_id", in: base(func(p *chatsapi.Payload) { p.ConversationID = "\x00" }), wantField: "conversation_id"},
		{name: "msgid of 1000 bytes is fine", in: base(func(p *chatsapi.Payload) { p.MsgID = strings.Repeat("m", 1000) })},
		{name: "msgid of 1001 bytes", in: base(func(p *chatsapi.Payload) { p.MsgID = strings.Repeat("m", 1001) }), wantField: "msgid"},
		{name: "conversation_id of 3 KB", in: base(func(p *chatsapi.Payload) { p.ConversationID = strings.Repeat("ц", 1500) }), wantField: "conversation_id"},
		{name: "whitespace msgid", in: base(func(p *chatsapi.Payload) { p.MsgID = " \t " }), wantField: "msgid", wantIs: ErrRequired},
		{name: "whitespace conversation_id", in: base(func(p *chatsapi.Payload) { p.ConversationID = "\u00a0\n" }), wantField: "conversation_id", wantIs: ErrRequired},
		{name: "whitespace sender id", in: base(func(p *chatsapi.Payload) { p.Sender.ID = "  " }), wantField: "sender.id", wantIs: ErrRequired},
		{name: "whitespace sender name", in: base(func(p *chatsapi.Payload) { p.Sender.Name = "\t" }), wantField: "sender.name", wantIs: ErrRequired},
		{name: "whitespace receiver id", in: base(func(p *chatsapi.Payload) {
			p.Sender.RefID = "amojo-1"
			p.Receiver = &chatsapi.Participant{ID: " ", Name: "Client"}
		}), wantField: "receiver.id", wantIs: ErrRequired},
		{name: "whitespace receiver name", in: base(func(p *chatsapi.Payload) {
			p.Sender.RefID = "amojo-1"
			p.Receiver = &chatsapi.Participant{ID: "c1", Name: "   "}
		}), wantField: "receiver.name", wantIs: ErrRequired},
		{name: "whitespace text", in: base(msg(chatsapi.Message{Type: "text", Text: " \r\n "})), wantField: "message.text", wantIs: ErrRequired},
		{name: "text with spaces around is kept", in: base(msg(chatsapi.Message{Type: "text", Text: "  hi  "})),
			check: func(t *testing.T, p chatsapi.Payload) { require.Equal(t, "  hi  ", p.Message.Text) }},
		{name: "whitespace caption of a picture is fine", in: base(msg(chatsapi.Message{Type: "picture", Media: "https://m/p.png", FileName: "p.png", FileSize: 1, Text: " "}))},
		{name: "external id not ASCII", in: base(func(p *chatsapi.Payload) { p.Source = &chatsapi.Source{ExternalID: "канал"} }), wantField: "source.external_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := tt.in
			err := Validate(&p, testNow)
			if tt.wantField == "" {
				require.NoError(t, err)
				if tt.check != nil {
					tt.check(t, p)
				}
				return
			}
			var le *LineError
			require.True(t, errors.As(err, &le), "want *LineError, got %v", err)
			require.Equal(t, tt.wantField, le.Field, "error: %v", err)
			if tt.wantIs != nil {
				require.ErrorIs(t, err, tt.wantIs)
			}
		})
	}
}

func TestLineErrorText(t *testing.T) {
	t.Parallel()
	err := &LineError{File: "orders.csv", Line: 17, Field: "message.file_name", Err: errors.New("required for type file")}
	require.Equal(t, "orders.csv:17: message.file_name: required for type file", err.Error())
	require.Equal(t, "3: not JSON", (&LineError{Line: 3, Err: errors.New("not JSON")}).Error())
}
