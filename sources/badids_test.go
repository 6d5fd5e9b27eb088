package sources

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/kommo-import/kommo-import/wire"
	"github.com/stretchr/testify/require"
)

// badIDCase spoils one record of a big file.
type badIDCase struct {
	field string
	spoil func(p *wire.Payload)
}

var badIDCases = []badIDCase{
	{"msgid", func(p *wire.Payload) { p.MsgID = "m\x00" + p.MsgID }},
	{"conversation_id", func(p *wire.Payload) { p.ConversationID += "\x00" }},
	{"msgid", func(p *wire.Payload) { p.MsgID = p.MsgID + strings.Repeat("x", 3000) }},
	{"conversation_id", func(p *wire.Payload) { p.ConversationID = strings.Repeat("c", 1001) }},
	{"msgid", func(p *wire.Payload) { p.MsgID = "   " }},
	{"conversation_id", func(p *wire.Payload) { p.ConversationID = "\t" }},
	{"sender.id", func(p *wire.Payload) { p.Sender.ID = " " }},
	{"sender.name", func(p *wire.Payload) { p.Sender.Name = "  " }},
	{"message.text", func(p *wire.Payload) { p.Message.Text = " \n " }},
}

// bigWithBadIDs is n bench records, every 97th spoiled by the next case.
// It returns the payloads and, per spoiled record number (0-based), the
// field the reject must name.
func bigWithBadIDs(n int) ([]wire.Payload, map[int]string) {
	ps := make([]wire.Payload, n)
	bad := map[int]string{}
	for i := range ps {
		ps[i] = benchPayload(i)
		if i%97 == 50 {
			c := badIDCases[len(bad)%len(badIDCases)]
			c.spoil(&ps[i])
			bad[i] = c.field
		}
	}
	return ps, bad
}

// TestBadIDsInABigFile: 10,000 records with every kind of bad id spread
// through them: each bad one is rejected on its own line naming its field,
// and every other record comes through (the importer stages in batches of
// 10,000, so one id the database refuses would fail them all).
func TestBadIDsInABigFile(t *testing.T) {
	t.Parallel()
	const n = 10000
	ps, bad := bigWithBadIDs(n)
	var jsonl, csvBuf bytes.Buffer
	enc := json.NewEncoder(&jsonl)
	for _, p := range ps {
		require.NoError(t, enc.Encode(wire.Event{EventType: wire.EventNewMessage, Payload: p}))
	}
	cw := csv.NewWriter(&csvBuf)
	require.NoError(t, cw.Write([]string{"conversation_id", "msgid", "timestamp", "msec_timestamp", "sender_id", "sender_name", "sender_avatar", "sender_phone", "message_type", "message_text"}))
	for _, p := range ps {
		require.NoError(t, cw.Write([]string{p.ConversationID, p.MsgID, strconv.FormatInt(p.Timestamp, 10), strconv.FormatInt(p.MsecTimestamp, 10),
			p.Sender.ID, p.Sender.Name, p.Sender.Avatar, p.Sender.Profile.Phone, p.Message.Type, p.Message.Text}))
	}
	cw.Flush()
	require.NoError(t, cw.Error())

	for _, tt := range []struct {
		kind  string
		input []byte
		line  func(i int) int64 // record number -> line
	}{
		{KindJSONL, jsonl.Bytes(), func(i int) int64 { return int64(i) + 1 }},
		{KindCSV, csvBuf.Bytes(), nil},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			res := readAll(t, Spec{Kind: tt.kind, Path: writeFile(t, "big."+tt.kind, string(tt.input))})
			var wantIDs []string
			wantErrs := []string{}
			for i, p := range ps {
				if f, ok := bad[i]; ok {
					wantErrs = append(wantErrs, f)
					continue
				}
				wantIDs = append(wantIDs, p.MsgID)
			}
			gotErrs := []string{}
			for _, e := range res.errs {
				gotErrs = append(gotErrs, e.Field)
				require.NotEmpty(t, e.Raw)
			}
			require.Equal(t, wantErrs, gotErrs, "errors: %v", firstErrs(res.errs))
			require.Equal(t, wantIDs, res.msgids())
			require.Equal(t, int64(len(bad)), res.stats.Rejected)
			if tt.line != nil {
				j := 0
				for i := range ps {
					if _, ok := bad[i]; ok {
						require.Equal(t, tt.line(i), res.errs[j].Line)
						j++
					}
				}
			}
		})
	}
}

func firstErrs(errs []*LineError) string {
	var b strings.Builder
	for i, e := range errs {
		if i == 5 {
			break
		}
		fmt.Fprintf(&b, "%d: %s: %v; ", e.Line, e.Field, e.Err)
	}
	return b.String()
}
