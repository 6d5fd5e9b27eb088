package sources

import (
	"strings"
	"testing"

	"github.com/kommo-import/kommo-import/wire"
	"github.com/stretchr/testify/require"
)

const csvHead = "conversation_id,msgid,timestamp,sender_id,sender_name,message_type,message_text\n"

func TestCSV(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		input     string
		wantIDs   []string
		wantLines []int64
		wantTexts []string
		wantErrs  []errAt
	}{
		{name: "plain", input: csvHead + "c1,a,1709284502,u1,Anna,text,hi\nc1,b,1709284503,u1,Anna,text,ho\n",
			wantIDs: []string{"a", "b"}, wantLines: []int64{2, 3}, wantTexts: []string{"hi", "ho"}},
		{name: "BOM and CRLF", input: "\ufeff" + strings.ReplaceAll(csvHead, "\n", "\r\n") + "c1,a,1709284502,u1,Anna,text,hi\r\n",
			wantIDs: []string{"a"}, wantLines: []int64{2}, wantTexts: []string{"hi"}},
		{name: "no final newline", input: csvHead + "c1,a,1709284502,u1,Anna,text,hi",
			wantIDs: []string{"a"}, wantLines: []int64{2}, wantTexts: []string{"hi"}},
		{name: "quoted commas, quotes and newlines; line is where the record starts",
			input:   csvHead + "c1,a,1709284502,u1,Anna,text,\"one, \"\"two\"\"\nthree\"\nc1,b,1709284503,u1,\"Anna, K\",text,\"x\r\ny\"\r\nc1,c,1709284504,u1,Anna,text,z\n",
			wantIDs: []string{"a", "b", "c"}, wantLines: []int64{2, 4, 6}, wantTexts: []string{"one, \"two\"\nthree", "x\ny", "z"}},
		{name: "empty quoted field is absent", input: csvHead + "c1,a,1709284502,u1,Anna,text,\"\"\n",
			wantIDs: []string{}, wantErrs: []errAt{{2, "message.text"}}},
		{name: "blank lines skipped", input: csvHead + "\nc1,a,1709284502,u1,Anna,text,hi\n\r\n\nc1,b,1709284503,u1,Anna,text,ho\n\n",
			wantIDs: []string{"a", "b"}, wantLines: []int64{3, 6}, wantTexts: []string{"hi", "ho"}},
		{name: "text kept as is, spaces included", input: csvHead + "c1,a,1709284502,u1,Anna,text,  spaced  \n",
			wantIDs: []string{"a"}, wantLines: []int64{2}, wantTexts: []string{"  spaced  "}},
		{name: "RFC 3339 timestamp", input: csvHead + "c1,a,2024-03-01T09:15:02.5+02:00,u1,Anna,text,hi\n",
			wantIDs: []string{"a"}, wantLines: []int64{2}, wantTexts: []string{"hi"}},
		{name: "wrong field count", input: csvHead + "c1,a,1709284502,u1,Anna,text\nc1,b,1709284502,u1,Anna,text,hi,extra\nc1,c,1709284502,u1,Anna,text,ok\n",
			wantIDs: []string{"c"}, wantLines: []int64{4}, wantTexts: []string{"ok"}, wantErrs: []errAt{{2, ""}, {3, ""}}},
		{name: "bare quote", input: csvHead + "c1,a,1709284502,u1,Anna,text,say \"hi\"\nc1,b,1709284502,u1,Anna,text,ok\n",
			wantIDs: []string{"b"}, wantLines: []int64{3}, wantTexts: []string{"ok"}, wantErrs: []errAt{{2, ""}}},
		{name: "text after closing quote", input: csvHead + "c1,a,1709284502,u1,Anna,text,\"hi\"x\nc1,b,1709284502,u1,Anna,text,ok\n",
			wantIDs: []string{"b"}, wantLines: []int64{3}, wantTexts: []string{"ok"}, wantErrs: []errAt{{2, ""}}},
		{name: "quote never closed", input: csvHead + "c1,b,1709284502,u1,Anna,text,ok\nc1,a,1709284502,u1,Anna,text,\"open\nand on\n",
			wantIDs: []string{"b"}, wantLines: []int64{2}, wantTexts: []string{"ok"}, wantErrs: []errAt{{3, ""}}},
		{name: "bad number", input: csvHead + "c1,a,soon,u1,Anna,text,hi\n",
			wantIDs: []string{}, wantErrs: []errAt{{2, "timestamp"}}},
		{name: "invalid UTF-8 rejected, not repaired", input: csvHead + "c1,a,1709284502,u1,Ann\xe9,text,hi\n",
			wantIDs: []string{}, wantErrs: []errAt{{2, "sender.name"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := readAll(t, Spec{Kind: KindCSV, Path: writeFile(t, "in.csv", tt.input)})
			if tt.wantErrs == nil {
				tt.wantErrs = []errAt{}
			}
			require.Equal(t, tt.wantErrs, res.errAts(), "errors: %v", res.errs)
			require.Equal(t, tt.wantIDs, res.msgids())
			var lines []int64
			var texts []string
			for _, r := range res.records {
				lines = append(lines, r.Line)
				texts = append(texts, r.Payload.Message.Text)
			}
			require.Equal(t, tt.wantLines, lines)
			require.Equal(t, tt.wantTexts, texts)
		})
	}
}

func TestCSVOffsetsAndRaw(t *testing.T) {
	t.Parallel()
	rec1 := "c1,a,1709284502,u1,Anna,text,\"two\r\nlines\"\r\n"
	rec2 := "c1,b,1709284502,u1,Anna,text,hi\r\n"
	in := "\ufeff" + csvHead + rec1 + rec2
	res := readAll(t, Spec{Kind: KindCSV, Path: writeFile(t, "in.csv", in)})
	require.Len(t, res.records, 2)
	require.Equal(t, int64(3+len(csvHead)), res.records[0].Offset)
	require.Equal(t, rec1, string(res.records[0].Raw))
	require.Equal(t, int64(3+len(csvHead)+len(rec1)), res.records[1].Offset)
	require.Equal(t, rec2, string(res.records[1].Raw))
}

func TestCSVAllColumns(t *testing.T) {
	t.Parallel()
	in := strings.Join(CanonicalColumns, ",") + "\n" +
		"c1,m1,,1709284502123,s1,Sam,amojo-1,https://a/s.png,https://p/s,+1,s@x.io,r1,Rita,amojo-2,https://a/r.png,https://p/r,+2,r@x.io," +
		"location,cap,https://m/1,f.bin,10,5,st1,43.5,-76.25,Li,+3,https://sp/1,https://sp/1.jpg,https://sp/perm/1,Shop,-1,905,gone," +
		"p1,https://post/1,https://prev/1,https://perm/1,shop,Spring,ext_1,m0,m9,c0\n"
	res := readAll(t, Spec{Kind: KindCSV, Path: writeFile(t, "all.csv", in)})
	require.Empty(t, res.errs)
	want := wire.Payload{
		Timestamp: 1709284502, MsecTimestamp: 1709284502123, MsgID: "m1", ConversationID: "c1",
		Sender: &wire.Participant{ID: "s1", RefID: "amojo-1", Name: "Sam", Avatar: "https://a/s.png",
			Profile: &wire.Profile{Phone: "+1", Email: "s@x.io"}, ProfileLink: "https://p/s"},
		Receiver: &wire.Participant{ID: "r1", RefID: "amojo-2", Name: "Rita", Avatar: "https://a/r.png",
			Profile: &wire.Profile{Phone: "+2", Email: "r@x.io"}, ProfileLink: "https://p/r"},
		Message: &wire.Message{Type: "location", Text: "cap", Media: "https://m/1", FileName: "f.bin", FileSize: 10,
			MediaDuration: 5, StickerID: "st1", Location: &wire.Location{Lat: 43.5, Lon: -76.25},
			Contact:        &wire.Contact{Name: "Li", Phone: "+3"},
			SharedPost:     &wire.SharedPost{URL: "https://sp/1", PreviewLink: "https://sp/1.jpg", PreviewPermalink: "https://sp/perm/1", Type: "post", SiteName: "Shop"},
			DeliveryStatus: &wire.DeliveryStatus{StatusCode: -1, ErrorCode: 905, Error: "gone"},
			Post:           &wire.Post{ID: "p1", URL: "https://post/1", PreviewURL: "https://prev/1", PreviewPermalink: "https://perm/1", Username: "shop", Caption: "Spring"}},
		Source:   &wire.Source{ExternalID: "ext_1"},
		ReplyTo:  &wire.ReplyTo{Message: wire.EmbeddedMessage{MsgID: "m0"}},
		Forwards: &wire.Forwards{Messages: []wire.EmbeddedMessage{{MsgID: "m9"}}, ConversationID: "c0"},
	}
	require.Equal(t, []wire.Payload{want}, res.payloads())
}

func TestCSVHeader(t *testing.T) {
	t.Parallel()
	row := "c1,a,1709284502,u1,Anna,text,hi\n"
	tests := []struct {
		name    string
		header  string
		spec    Spec
		wantErr []string // substrings; nil = opens and reads "a"
	}{
		{name: "canonical", header: csvHead},
		{name: "case and spaces in names", header: "Conversation_ID, MsgID ,TIMESTAMP,sender_id,sender_name,message_type,message_text\n"},
		{name: "unknown columns listed with the canonical names", header: "conversation_id,id,timestamp,sender_id,sender_name,message_type,body\n",
			wantErr: []string{`unknown columns "id", "body"`, "--map", "--ignore-columns", "canonical columns: conversation_id, msgid, timestamp"}},
		{name: "mapped", header: "chat,id,timestamp,sender_id,sender_name,message_type,body\n",
			spec: Spec{ColumnMap: map[string]string{"conversation_id": "chat", "msgid": "ID", "message_text": "body"}}},
		{name: "ignored", header: "conversation_id,msgid,timestamp,sender_id,sender_name,message_type,message_text\n",
			spec: Spec{IgnoreColumns: []string{"message_text"}}, wantErr: nil},
		{name: "map to a missing column", header: csvHead, spec: Spec{ColumnMap: map[string]string{"post_id": "post"}},
			wantErr: []string{"--map post_id=post: no such column"}},
		{name: "map to a canonical name that is also present", header: "conversation_id,msgid,timestamp,sender_id,sender_name,message_type,message_text,alt\n",
			spec: Spec{ColumnMap: map[string]string{"msgid": "alt"}}, wantErr: []string{`column "msgid" is canonical but --map msgid=alt`}},
		{name: "duplicate column", header: "conversation_id,msgid,msgid,sender_id,sender_name,message_type,message_text\n",
			wantErr: []string{`columns "msgid" and "msgid" both give msgid`}},
		{name: "required columns missing", header: "conversation_id,sender_id,sender_name,message_type,message_text,x,y\n",
			spec: Spec{IgnoreColumns: []string{"x", "y"}}, wantErr: []string{"no column for msgid, timestamp or msec_timestamp"}},
		{name: "not a canonical name in --map", header: csvHead, spec: Spec{ColumnMap: map[string]string{"body": "x"}},
			wantErr: []string{`"body" is not a canonical column`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := tt.spec
			spec.Kind, spec.Path = KindCSV, writeFile(t, "h.csv", tt.header+row)
			res, err := tryReadAll(spec)
			if tt.wantErr != nil {
				require.Error(t, err)
				for _, s := range tt.wantErr {
					require.ErrorContains(t, err, s)
				}
				return
			}
			require.NoError(t, err)
			if tt.name == "ignored" {
				require.Equal(t, []errAt{{2, "message.text"}}, res.errAts(), "the ignored text column is not read")
				return
			}
			require.Empty(t, res.errs)
			require.Equal(t, []string{"a"}, res.msgids())
			require.Equal(t, "hi", res.records[0].Payload.Message.Text)
		})
	}
	_, err := tryReadAll(Spec{Kind: KindCSV, Path: writeFile(t, "empty.csv", "\n\n")})
	require.ErrorContains(t, err, "no header row")
}

// An over-long record (a huge quoted field spanning lines) is rejected with
// the line it starts on, and reading resumes at the next record.
func TestCSVRecordTooLarge(t *testing.T) {
	t.Parallel()
	huge := "c1,big,1709284502,u1,Anna,text,\"" + strings.Repeat("line, \"\"quoted\"\"\n", 20000) + "\"\n"
	in := csvHead + "c1,a,1709284502,u1,Anna,text,hi\n" + huge + "c1,b,1709284502,u1,Anna,text,ho\n"
	for _, max := range []int{100, 64 << 10} {
		res := readAll(t, Spec{Kind: KindCSV, MaxRecordBytes: max, Path: writeFile(t, "big.csv", in)})
		require.Equal(t, []errAt{{3, ""}}, res.errAts())
		require.ErrorIs(t, res.errs[0], ErrTooLarge)
		require.Equal(t, []string{"a", "b"}, res.msgids())
		require.Equal(t, int64(3+20001), res.records[1].Line)
	}
}
