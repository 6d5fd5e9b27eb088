package sources

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// TestUnknownFields: keys the importer does not send (a typo, another
// system's field) are counted per JSON path in Stats.UnknownFields, at any
// depth, and with Spec.Strict they reject their record.
func TestUnknownFields(t *testing.T) {
	t.Parallel()
	ev := func(id, payloadExtra, eventExtra string) string {
		return `{"event_type":"new_message"` + eventExtra + `,"payload":` + withFields(id, payloadExtra) + `}`
	}
	tests := []struct {
		name      string
		line      string
		want      []string // paths
		wantField string   // of the --strict reject; "-" for an event-level key
	}{
		{name: "known fields only", line: jl("a")},
		{name: "every known field", line: withFields("b0", `,"conversation_ref_id":"r","silent":true,"source":{"external_id":"x"},`+
			`"sender":{"id":"u1","name":"Anna","ref_id":"amojo-1","avatar":"a","profile":{"phone":"1","email":"e"},"profile_link":"l"},`+
			`"message":{"type":"text","text":"hi","media":"m","file_name":"f","file_size":1,"media_duration":1,"sticker_id":"s","location":{"lat":1,"lon":2},`+
			`"contact":{"name":"n","phone":"p"},"post":{"id":"p","url":"u","preview_url":"v","preview_permalink":"w","username":"x","caption":"y"},`+
			`"shared_post":{"url":"u","preview_link":"l","preview_permalink":"p","type":"post","site_name":"s"},"delivery_status":{"status_code":-1,"error_code":905,"error":"e"}},`+
			`"receiver":{"id":"c","name":"C","ref_id":"r","avatar":"a","profile":{"phone":"1","email":"e"},"profile_link":"l"},`+
			`"reply_to":{"message":{"id":"k","msgid":"m0","type":"text","text":"t","timestamp":1,"msec_timestamp":1000,"sender":{"id":"s","ref_id":"r","name":"n"},`+
			`"file_name":"f","file_size":1,"media_duration":1,"location":{"lat":1,"lon":2},"contact":{"name":"n","phone":"p"}}},`+
			`"forwards":{"messages":[{"msgid":"m0","id":"k2"}],"conversation_id":"c","conversation_ref_id":"r"}`)},
		{name: "bare payload key", line: withFields("a", `,"mood":"happy"`), want: []string{"payload.mood"}, wantField: "mood"},
		{name: "event payload key", line: ev("a", `,"mood":1`, ""), want: []string{"payload.mood"}, wantField: "mood"},
		{name: "event-level key", line: ev("a", "", `,"mood":1`), want: []string{"mood"}, wantField: "-"},
		{name: "payload key at the event level is not sent", line: ev("a", "", `,"source":{"external_id":"x"}`), want: []string{"source"}, wantField: "-"},
		{name: "typo in message", line: strings.Replace(jl("a"), `"text":"hi"`, `"text":"hi","mesage":"x"`, 1), want: []string{"payload.message.mesage"}, wantField: "message.mesage"},
		{name: "deep in a profile", line: strings.Replace(jl("a"), `"name":"Anna"`, `"name":"Anna","profile":{"phone":"1","fax":"2"}`, 1),
			want: []string{"payload.sender.profile.fax"}, wantField: "sender.profile.fax"},
		{name: "in a forwarded message", line: withFields("a", `,"forwards":{"messages":[{"msgid":"m0","mood":{"deep":[1,{"x":2}]}}]}`),
			want: []string{"payload.forwards.messages[].mood"}, wantField: "forwards.messages[].mood"},
		{name: "in a reply's sender", line: withFields("a", `,"reply_to":{"message":{"msgid":"m0","sender":{"id":"u","avatar":"x"}}}`),
			want: []string{"payload.reply_to.message.sender.avatar"}, wantField: "reply_to.message.sender.avatar"},
		{name: "several, each once", line: withFields("a", `,"x":1,"y":[{"z":1}],"x":2,"message":{"type":"text","text":"hi","x":"1"}`),
			want: []string{"payload.x", "payload.y", "payload.message.x"}, wantField: "x"},
		{name: "escaped key", line: withFields("a", `,"mo\u006fd":1,"ms\u0067id":"a"`), want: []string{"payload.mood"}, wantField: "mood"},
		{name: "keys in other case are decoded, so sent", line: strings.Replace(jl("a"), `"msgid"`, `"MsgID"`, 1)},
		{name: "string values that look like keys", line: strings.Replace(jl("a"), `"text":"hi"`, `"text":"{\"mood\": 1, \\\"x\\\\\": [}"`, 1)},
		{name: "null unknown", line: withFields("a", `,"mood":null`), want: []string{"payload.mood"}, wantField: "mood"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.True(t, json.Valid([]byte(tt.line)), tt.line)
			path := writeFile(t, "in.jsonl", tt.line+"\n"+jl("b")+"\n")
			res := readAll(t, Spec{Kind: KindJSONL, Path: path})
			require.Empty(t, res.errs)
			require.Len(t, res.records, 2)
			var want map[string]int64
			for _, p := range tt.want {
				if want == nil {
					want = map[string]int64{}
				}
				want[p] = 1
			}
			require.Equal(t, want, res.stats.UnknownFields)

			strict := readAll(t, Spec{Kind: KindJSONL, Path: path, Strict: true})
			if tt.want == nil {
				require.Empty(t, strict.errs)
				return
			}
			require.Len(t, strict.errs, 1)
			e := strict.errs[0]
			require.ErrorIs(t, e, ErrUnknownField)
			require.Contains(t, e.Error(), "not part of the Chats API payload (a typo?); --strict refuses it")
			if tt.wantField == "-" {
				require.Equal(t, "", e.Field)
				require.Contains(t, e.Error(), fmt.Sprintf("%q", tt.want[0]))
			} else {
				require.Equal(t, tt.wantField, e.Field)
			}
			require.Equal(t, []string{"b"}, strict.msgids())
			require.Equal(t, want, strict.stats.UnknownFields)
		})
	}

	t.Run("10,000 records: counts per path, others untouched", func(t *testing.T) {
		t.Parallel()
		var in bytes.Buffer
		want := map[string]int64{}
		for i := 0; i < 10000; i++ {
			p, err := json.Marshal(benchPayload(i))
			require.NoError(t, err)
			line := string(p)
			switch {
			case i%3 == 0:
				line = strings.Replace(line, `{`, `{"mood":"ok",`, 1)
				want["payload.mood"]++
			case i%7 == 0:
				line = strings.Replace(line, `"type":"text"`, `"type":"text","mesage":"x"`, 1)
				want["payload.message.mesage"]++
			}
			in.WriteString(line + "\n")
		}
		path := writeFile(t, "big.jsonl", in.String())
		res := readAll(t, Spec{Kind: KindJSONL, Path: path})
		require.Empty(t, res.errs)
		require.Len(t, res.records, 10000)
		require.Equal(t, want, res.stats.UnknownFields)
		strict := readAll(t, Spec{Kind: KindJSONL, Path: path, Strict: true})
		require.Equal(t, int64(want["payload.mood"]+want["payload.message.mesage"]), strict.stats.Rejected)
		require.Equal(t, 10000-int(strict.stats.Rejected), len(strict.records))
	})

	t.Run("at most 100 paths", func(t *testing.T) {
		t.Parallel()
		var in strings.Builder
		for i := 0; i < 150; i++ {
			in.WriteString(withFields(fmt.Sprintf("m%d", i), fmt.Sprintf(`,"field_%d":1`, i)) + "\n")
		}
		res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "many.jsonl", in.String())})
		require.Len(t, res.stats.UnknownFields, MaxUnknownFields)
		require.Equal(t, int64(1), res.stats.UnknownFields["payload.field_0"])
	})

	t.Run("Stats hands out a copy", func(t *testing.T) {
		t.Parallel()
		r, err := Open(t.Context(), Spec{Kind: KindJSONL, Path: writeFile(t, "x.jsonl", withFields("a", `,"mood":1`)+"\n"), Now: nowFunc})
		require.NoError(t, err)
		defer r.Close()
		_, err = r.Next(t.Context())
		require.NoError(t, err)
		r.Stats().UnknownFields["payload.mood"] = 99
		require.Equal(t, int64(1), r.Stats().UnknownFields["payload.mood"])
	})

	t.Run("CSV has none", func(t *testing.T) {
		t.Parallel()
		res := readAll(t, Spec{Kind: KindCSV, Path: "../testdata/messages.csv", Strict: true})
		require.Empty(t, res.errs)
		require.Nil(t, res.stats.UnknownFields)
	})

	t.Run("postgres payload column", func(t *testing.T) {
		t.Parallel()
		dsn := pgtest.URL(t)
		execSQL(t, dsn, `CREATE TABLE p (payload jsonb); INSERT INTO p VALUES ('`+withFields("a", `,"mood":1`)+`'), ('`+jl("b")+`')`)
		res := readAll(t, Spec{Kind: KindPostgres, DSN: dsn, Table: "p"})
		require.Len(t, res.records, 2)
		require.Equal(t, map[string]int64{"payload.mood": 1}, res.stats.UnknownFields)
	})
}
