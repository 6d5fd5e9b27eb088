package sources

import (
	"crypto/md5"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kommo-import/kommo-import/wire"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	const sec = int64(1709284502) // 2024-03-01T09:15:02Z
	base := func(edit func(p *wire.Payload)) wire.Payload {
		p := wire.Payload{
			Timestamp: sec, MsecTimestamp: sec*1000 + 123, MsgID: "m1", ConversationID: "c1",
			Sender:  &wire.Participant{ID: "u1", Name: "Anna"},
			Message: &wire.Message{Type: "text", Text: "hi"},
		}
		if edit != nil {
			edit(&p)
		}
		return p
	}
	msg := func(m wire.Message) func(p *wire.Payload) {
		return func(p *wire.Payload) { p.Message = &m }
	}
	tests := []struct {
		name      string
		in        wire.Payload
		wantField string // "" = valid
		wantIs    error
		check     func(t *testing.T, p wire.Payload)
	}{
		{name: "valid text", in: base(nil)},
		{name: "silent cleared", in: base(func(p *wire.Payload) { p.Silent = true }),
			check: func(t *testing.T, p wire.Payload) { require.False(t, p.Silent) }},
		{name: "msec derived from timestamp", in: base(func(p *wire.Payload) { p.MsecTimestamp = 0 }),
			check: func(t *testing.T, p wire.Payload) { require.Equal(t, sec*1000, p.MsecTimestamp) }},
		{name: "timestamp derived from msec", in: base(func(p *wire.Payload) { p.Timestamp = 0 }),
			check: func(t *testing.T, p wire.Payload) { require.Equal(t, sec, p.Timestamp) }},
		{name: "no timestamp", in: base(func(p *wire.Payload) { p.Timestamp, p.MsecTimestamp = 0, 0 }), wantField: "timestamp", wantIs: ErrRequired},
		{name: "timestamps disagree", in: base(func(p *wire.Payload) { p.MsecTimestamp = (sec + 1) * 1000 }), wantField: "msec_timestamp"},
		{name: "before 2000", in: base(func(p *wire.Payload) { p.Timestamp, p.MsecTimestamp = 946684799, 0 }), wantField: "timestamp"},
		{name: "year 2000 is fine", in: base(func(p *wire.Payload) { p.Timestamp, p.MsecTimestamp = 946684800, 0 })},
		{name: "in the future", in: base(func(p *wire.Payload) { p.Timestamp, p.MsecTimestamp = testNow.Unix()+25*3600, 0 }), wantField: "timestamp"},
		{name: "within a day ahead", in: base(func(p *wire.Payload) { p.Timestamp, p.MsecTimestamp = testNow.Unix()+23*3600, 0 })},
		{name: "milliseconds as seconds", in: base(func(p *wire.Payload) { p.Timestamp, p.MsecTimestamp = sec*1000, 0 }), wantField: "timestamp"},
		{name: "negative timestamp", in: base(func(p *wire.Payload) { p.Timestamp, p.MsecTimestamp = -5, 0 }), wantField: "timestamp"},
		{name: "huge timestamp", in: base(func(p *wire.Payload) { p.Timestamp, p.MsecTimestamp = 1<<62, 0 }), wantField: "timestamp"},
		{name: "no conversation", in: base(func(p *wire.Payload) { p.ConversationID = "" }), wantField: "conversation_id", wantIs: ErrRequired},
		{name: "no msgid", in: base(func(p *wire.Payload) { p.MsgID = "" }), wantField: "msgid", wantIs: ErrRequired},
		{name: "no sender", in: base(func(p *wire.Payload) { p.Sender = nil }), wantField: "sender", wantIs: ErrRequired},
		{name: "no sender id", in: base(func(p *wire.Payload) { p.Sender.ID = "" }), wantField: "sender.id", wantIs: ErrRequired},
		{name: "no sender name", in: base(func(p *wire.Payload) { p.Sender.Name = "" }), wantField: "sender.name", wantIs: ErrRequired},
		{name: "outgoing with ref_id", in: base(func(p *wire.Payload) {
			p.Sender.RefID = "amojo-1"
			p.Receiver = &wire.Participant{ID: "c1", Name: "Client"}
		})},
		{name: "outgoing without ref_id", in: base(func(p *wire.Payload) { p.Receiver = &wire.Participant{ID: "c1", Name: "Client"} }),
			wantField: "sender.ref_id", wantIs: ErrRequired},
		{name: "receiver without name", in: base(func(p *wire.Payload) {
			p.Sender.RefID = "amojo-1"
			p.Receiver = &wire.Participant{ID: "c1"}
		}), wantField: "receiver.name"},
		{name: "invalid UTF-8 text", in: base(msg(wire.Message{Type: "text", Text: "caf\xe9"})), wantField: "message.text", wantIs: ErrInvalidUTF8},
		{name: "invalid UTF-8 sender name", in: base(func(p *wire.Payload) { p.Sender.Name = "\xff" }), wantField: "sender.name", wantIs: ErrInvalidUTF8},
		{name: "invalid UTF-8 msgid", in: base(func(p *wire.Payload) { p.MsgID = "a\xc3" }), wantField: "msgid", wantIs: ErrInvalidUTF8},
		{name: "no message", in: base(func(p *wire.Payload) { p.Message = nil }), wantField: "message", wantIs: ErrRequired},
		{name: "no type", in: base(msg(wire.Message{Text: "x"})), wantField: "message.type", wantIs: ErrRequired},
		{name: "unknown type", in: base(msg(wire.Message{Type: "gif"})), wantField: "message.type"},
		{name: "text without text", in: base(msg(wire.Message{Type: "text"})), wantField: "message.text", wantIs: ErrRequired},
		{name: "file", in: base(msg(wire.Message{Type: "file", Media: "https://m/a.pdf", FileName: "a.pdf", FileSize: 10}))},
		{name: "file without name", in: base(msg(wire.Message{Type: "file", Media: "https://m/a", FileSize: 10})), wantField: "message.file_name"},
		{name: "video without size", in: base(msg(wire.Message{Type: "video", Media: "https://m/v", FileName: "v.mp4"})), wantField: "message.file_size"},
		{name: "picture without size", in: base(msg(wire.Message{Type: "picture", Media: "https://m/p", FileName: "p.png"})), wantField: "message.file_size"},
		{name: "negative size", in: base(msg(wire.Message{Type: "voice", Media: "https://m/v", FileSize: -1})), wantField: "message.file_size"},
		{name: "voice needs only its media", in: base(msg(wire.Message{Type: "voice", Media: "https://m/v.ogg"}))},
		{name: "sticker by id", in: base(msg(wire.Message{Type: "sticker", StickerID: "s1"}))},
		{name: "sticker by media", in: base(msg(wire.Message{Type: "sticker", Media: "https://m/s.webp"}))},
		{name: "picture without media", in: base(msg(wire.Message{Type: "picture", FileName: "p.png", FileSize: 1})), wantField: "message.media", wantIs: ErrRequired},
		{name: "video without media", in: base(msg(wire.Message{Type: "video"})), wantField: "message.media", wantIs: ErrRequired},
		{name: "file without media", in: base(msg(wire.Message{Type: "file", FileName: "a.pdf", FileSize: 1})), wantField: "message.media", wantIs: ErrRequired},
		{name: "voice without media", in: base(msg(wire.Message{Type: "voice", MediaDuration: 3})), wantField: "message.media", wantIs: ErrRequired},
		{name: "audio with blank media", in: base(msg(wire.Message{Type: "audio", Media: "  "})), wantField: "message.media", wantIs: ErrRequired},
		{name: "sticker without media or id", in: base(msg(wire.Message{Type: "sticker"})), wantField: "message.media", wantIs: ErrRequired},
		{name: "location", in: base(msg(wire.Message{Type: "location", Location: &wire.Location{Lat: -90, Lon: 180}}))},
		{name: "location missing", in: base(msg(wire.Message{Type: "location"})), wantField: "message.location"},
		{name: "latitude out of range", in: base(msg(wire.Message{Type: "location", Location: &wire.Location{Lat: 90.5}})), wantField: "message.location.lat"},
		{name: "longitude out of range", in: base(msg(wire.Message{Type: "location", Location: &wire.Location{Lon: -181}})), wantField: "message.location.lon"},
		{name: "contact", in: base(msg(wire.Message{Type: "contact", Contact: &wire.Contact{Name: "Li", Phone: "+1"}}))},
		{name: "contact without phone", in: base(msg(wire.Message{Type: "contact", Contact: &wire.Contact{Name: "Li"}})), wantField: "message.contact.phone"},
		{name: "contact missing", in: base(msg(wire.Message{Type: "contact"})), wantField: "message.contact.name"},
		{name: "post without url", in: base(msg(wire.Message{Type: "text", Text: "x", Post: &wire.Post{ID: "p"}})), wantField: "message.post.url"},
		{name: "external id too long", in: base(func(p *wire.Payload) {
			p.Source = &wire.Source{ExternalID: "12345678901234567890123456789012345678901"}
		}), wantField: "source.external_id"},
		{name: "NUL in msgid", in: base(func(p *wire.Payload) { p.MsgID = "m\x001" }), wantField: "msgid"},
		{name: "NUL in conversation_id", in: base(func(p *wire.Payload) { p.ConversationID = "\x00" }), wantField: "conversation_id"},
		{name: "msgid of 1000 bytes is fine", in: base(func(p *wire.Payload) { p.MsgID = strings.Repeat("m", 1000) })},
		{name: "msgid of 1001 bytes", in: base(func(p *wire.Payload) { p.MsgID = strings.Repeat("m", 1001) }), wantField: "msgid"},
		{name: "conversation_id of 3 KB", in: base(func(p *wire.Payload) { p.ConversationID = strings.Repeat("ц", 1500) }), wantField: "conversation_id"},
		{name: "whitespace msgid", in: base(func(p *wire.Payload) { p.MsgID = " \t " }), wantField: "msgid", wantIs: ErrRequired},
		{name: "whitespace conversation_id", in: base(func(p *wire.Payload) { p.ConversationID = "\u00a0\n" }), wantField: "conversation_id", wantIs: ErrRequired},
		{name: "whitespace sender id", in: base(func(p *wire.Payload) { p.Sender.ID = "  " }), wantField: "sender.id", wantIs: ErrRequired},
		{name: "whitespace sender name", in: base(func(p *wire.Payload) { p.Sender.Name = "\t" }), wantField: "sender.name", wantIs: ErrRequired},
		{name: "whitespace receiver id", in: base(func(p *wire.Payload) {
			p.Sender.RefID = "amojo-1"
			p.Receiver = &wire.Participant{ID: " ", Name: "Client"}
		}), wantField: "receiver.id", wantIs: ErrRequired},
		{name: "whitespace receiver name", in: base(func(p *wire.Payload) {
			p.Sender.RefID = "amojo-1"
			p.Receiver = &wire.Participant{ID: "c1", Name: "   "}
		}), wantField: "receiver.name", wantIs: ErrRequired},
		{name: "whitespace text", in: base(msg(wire.Message{Type: "text", Text: " \r\n "})), wantField: "message.text", wantIs: ErrRequired},
		{name: "text with spaces around is kept", in: base(msg(wire.Message{Type: "text", Text: "  hi  "})),
			check: func(t *testing.T, p wire.Payload) { require.Equal(t, "  hi  ", p.Message.Text) }},
		{name: "whitespace caption of a picture is fine", in: base(msg(wire.Message{Type: "picture", Media: "https://m/p.png", FileName: "p.png", FileSize: 1, Text: " "}))},
		{name: "reply by msgid", in: base(func(p *wire.Payload) { p.ReplyTo = reply(wire.EmbeddedMessage{MsgID: "m0"}) })},
		{name: "reply by Kommo id", in: base(func(p *wire.Payload) { p.ReplyTo = reply(wire.EmbeddedMessage{ID: "6cbab3d5"}) })},
		{name: "reply without id or msgid", in: base(func(p *wire.Payload) { p.ReplyTo = reply(wire.EmbeddedMessage{Text: "hi"}) }),
			wantField: "reply_to.message.msgid", wantIs: ErrRequired},
		{name: "empty reply dropped", in: base(func(p *wire.Payload) {
			p.ReplyTo = reply(wire.EmbeddedMessage{Sender: &wire.EmbeddedSender{}})
		}),
			check: func(t *testing.T, p wire.Payload) { require.Nil(t, p.ReplyTo) }},
		{name: "reply to itself", in: base(func(p *wire.Payload) { p.ReplyTo = reply(wire.EmbeddedMessage{MsgID: "m1"}) }), wantField: "reply_to.message.msgid"},
		{name: "reply msgid with NUL", in: base(func(p *wire.Payload) { p.ReplyTo = reply(wire.EmbeddedMessage{MsgID: "m\x00"}) }), wantField: "reply_to.message.msgid"},
		{name: "reply msgid of only spaces", in: base(func(p *wire.Payload) { p.ReplyTo = reply(wire.EmbeddedMessage{MsgID: "  "}) }),
			wantField: "reply_to.message.msgid", wantIs: ErrRequired},
		{name: "reply of an unknown type", in: base(func(p *wire.Payload) { p.ReplyTo = reply(wire.EmbeddedMessage{MsgID: "m0", Type: "gif"}) }), wantField: "reply_to.message.type"},
		{name: "reply text not UTF-8", in: base(func(p *wire.Payload) { p.ReplyTo = reply(wire.EmbeddedMessage{MsgID: "m0", Text: "\xff"}) }),
			wantField: "reply_to.message.text", wantIs: ErrInvalidUTF8},
		{name: "forward", in: base(func(p *wire.Payload) { p.Forwards = forward("c0", wire.EmbeddedMessage{MsgID: "m0"}) })},
		{name: "forward of two", in: base(func(p *wire.Payload) {
			p.Forwards = forward("", wire.EmbeddedMessage{MsgID: "m0"}, wire.EmbeddedMessage{MsgID: "m2"})
		}), wantField: "forwards.messages"},
		{name: "forward of none", in: base(func(p *wire.Payload) { p.Forwards = forward("c0") }), wantField: "forwards.messages"},
		{name: "empty forwards dropped", in: base(func(p *wire.Payload) { p.Forwards = forward("") }),
			check: func(t *testing.T, p wire.Payload) { require.Nil(t, p.Forwards) }},
		{name: "forward without id", in: base(func(p *wire.Payload) { p.Forwards = forward("", wire.EmbeddedMessage{Text: "x"}) }),
			wantField: "forwards.messages[0].msgid", wantIs: ErrRequired},
		{name: "forward of itself", in: base(func(p *wire.Payload) { p.Forwards = forward("", wire.EmbeddedMessage{MsgID: "m1"}) }), wantField: "forwards.messages[0].msgid"},
		{name: "forward conversation with NUL", in: base(func(p *wire.Payload) { p.Forwards = forward("c\x00", wire.EmbeddedMessage{MsgID: "m0"}) }), wantField: "forwards.conversation_id"},
		{name: "shared post gets its type", in: base(func(p *wire.Payload) { p.Message.SharedPost = &wire.SharedPost{URL: "https://s/1"} }),
			check: func(t *testing.T, p wire.Payload) { require.Equal(t, "post", p.Message.SharedPost.Type) }},
		{name: "shared post without url", in: base(func(p *wire.Payload) { p.Message.SharedPost = &wire.SharedPost{SiteName: "Shop"} }),
			wantField: "message.shared_post.url", wantIs: ErrRequired},
		{name: "shared post of another type", in: base(func(p *wire.Payload) { p.Message.SharedPost = &wire.SharedPost{URL: "u", Type: "video"} }),
			wantField: "message.shared_post.type"},
		{name: "empty shared post dropped", in: base(func(p *wire.Payload) { p.Message.SharedPost = &wire.SharedPost{} }),
			check: func(t *testing.T, p wire.Payload) { require.Nil(t, p.Message.SharedPost) }},
		{name: "delivered", in: base(func(p *wire.Payload) { p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: 1} })},
		{name: "read", in: base(func(p *wire.Payload) { p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: 2} })},
		{name: "error 903", in: base(func(p *wire.Payload) {
			p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: -1, ErrorCode: 903}
		})},
		{name: "error 905 with text", in: base(func(p *wire.Payload) {
			p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: -1, ErrorCode: 905, Error: "blocked"}
		})},
		{name: "unknown status", in: base(func(p *wire.Payload) { p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: 3} }),
			wantField: "message.delivery_status.status_code"},
		{name: "no status but an error code", in: base(func(p *wire.Payload) { p.Message.DeliveryStatus = &wire.DeliveryStatus{ErrorCode: 901} }),
			wantField: "message.delivery_status.status_code", wantIs: ErrRequired},
		{name: "error without code", in: base(func(p *wire.Payload) { p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: -1} }),
			wantField: "message.delivery_status.error_code", wantIs: ErrRequired},
		{name: "error code out of range", in: base(func(p *wire.Payload) {
			p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: -1, ErrorCode: 906}
		}),
			wantField: "message.delivery_status.error_code"},
		{name: "error 905 without text", in: base(func(p *wire.Payload) {
			p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: -1, ErrorCode: 905, Error: " "}
		}), wantField: "message.delivery_status.error", wantIs: ErrRequired},
		{name: "an error code on a read message", in: base(func(p *wire.Payload) {
			p.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: 2, ErrorCode: 901}
		}),
			wantField: "message.delivery_status.error_code"},
		{name: "empty delivery status dropped", in: base(func(p *wire.Payload) { p.Message.DeliveryStatus = &wire.DeliveryStatus{} }),
			check: func(t *testing.T, p wire.Payload) { require.Nil(t, p.Message.DeliveryStatus) }},
		{name: "external id not ASCII", in: base(func(p *wire.Payload) { p.Source = &wire.Source{ExternalID: "канал"} }), wantField: "source.external_id"},
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

func reply(e wire.EmbeddedMessage) *wire.ReplyTo { return &wire.ReplyTo{Message: e} }

func forward(conv string, es ...wire.EmbeddedMessage) *wire.Forwards {
	return &wire.Forwards{Messages: es, ConversationID: conv}
}

// TestPayloadBytesUnchanged: the fields added for replies, forwards, shared
// posts and delivery statuses leave a payload without them byte for byte
// as before (B3 of the signature vectors: its MD5 is in the reference).
func TestPayloadBytesUnchanged(t *testing.T) {
	t.Parallel()
	const b3 = `{"event_type":"new_message","payload":{"timestamp":1639604761,"msec_timestamp":1639604761694,"msgid":"my_int-5f2836a8ca475","conversation_id":"my_int-d5a421f7f217","sender":{"id":"my_int-1376265f-86df-4c49-a0c3-a4816df41af8","name":"Client"},"message":{"type":"text","text":"Hello"},"silent":true}}`
	ev := wire.Event{EventType: wire.EventNewMessage, Payload: wire.Payload{
		Timestamp: 1639604761, MsecTimestamp: 1639604761694, MsgID: "my_int-5f2836a8ca475", ConversationID: "my_int-d5a421f7f217",
		Sender:  &wire.Participant{ID: "my_int-1376265f-86df-4c49-a0c3-a4816df41af8", Name: "Client"},
		Message: &wire.Message{Type: "text", Text: "Hello"}, Silent: true,
	}}
	b, err := json.Marshal(ev)
	require.NoError(t, err)
	require.Equal(t, b3, string(b))
	require.Equal(t, "48c02baa6df014d77fd2b768fbfe61b6", fmt.Sprintf("%x", md5.Sum(b)))

	ev.Payload.ReplyTo = reply(wire.EmbeddedMessage{ID: "k-1"})
	ev.Payload.Forwards = forward("c0", wire.EmbeddedMessage{MsgID: "m0"})
	ev.Payload.Message.SharedPost = &wire.SharedPost{URL: "https://s/1", Type: "post"}
	ev.Payload.Message.DeliveryStatus = &wire.DeliveryStatus{StatusCode: 2}
	b, err = json.Marshal(ev)
	require.NoError(t, err)
	require.Equal(t, strings.Replace(strings.Replace(b3, `"text":"Hello"}`, `"text":"Hello","shared_post":{"url":"https://s/1","type":"post"},"delivery_status":{"status_code":2}}`, 1),
		`"silent":true}`, `"silent":true,"reply_to":{"message":{"id":"k-1"}},"forwards":{"messages":[{"msgid":"m0"}],"conversation_id":"c0"}}`, 1), string(b))
}

func TestLineErrorText(t *testing.T) {
	t.Parallel()
	err := &LineError{File: "orders.csv", Line: 17, Field: "message.file_name", Err: errors.New("required for type file")}
	require.Equal(t, "orders.csv:17: message.file_name: required for type file", err.Error())
	require.Equal(t, "3: not JSON", (&LineError{Line: 3, Err: errors.New("not JSON")}).Error())
}
