package sources

import (
	"bytes"
	"encoding/csv"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/kommo-import/kommo-import/wire"
	"github.com/stretchr/testify/require"
)

func TestCSVDialects(t *testing.T) {
	t.Parallel()
	semi := "conversation_id;msgid;timestamp;sender_id;sender_name;message_type;message_text;message_location_lat;message_location_lon\n"
	tests := []struct {
		name      string
		input     string
		spec      Spec
		wantIDs   []string
		wantLines []int64
		wantTexts []string
		wantErrs  []errAt
		check     func(t *testing.T, ps []wire.Payload)
	}{
		{name: "semicolons (Excel where the decimal mark is a comma)",
			input: semi + "c1;a;1709284502;u1;Anna;text;\"one; \"\"two\"\", three\nfour\";;\n" +
				"c1;b;1709284503;u1;Anna;location;;43,238949;76,889709\n",
			wantIDs: []string{"a", "b"}, wantLines: []int64{2, 4}, wantTexts: []string{"one; \"two\", three\nfour", ""},
			check: func(t *testing.T, ps []wire.Payload) {
				require.Equal(t, &wire.Location{Lat: 43.238949, Lon: 76.889709}, ps[1].Message.Location)
			}},
		{name: "tabs", input: strings.ReplaceAll(csvHead, ",", "\t") + "c1\ta\t1709284502\tu1\tAnna, K\ttext\thi, there\n",
			wantIDs: []string{"a"}, wantLines: []int64{2}, wantTexts: []string{"hi, there"}},
		{name: "commas stay commas when data holds semicolons", input: csvHead + "c1,a,1709284502,u1,Anna,text,a;b;c;d;e;f;g;h;i;j\n",
			wantIDs: []string{"a"}, wantLines: []int64{2}, wantTexts: []string{"a;b;c;d;e;f;g;h;i;j"}},
		{name: "sep= line, BOM and CRLF", input: "\ufeffsep=;\r\n" + strings.ReplaceAll(semi, "\n", "\r\n") + "c1;a;1709284502;u1;Anna;text;hi;;\r\n",
			wantIDs: []string{"a"}, wantLines: []int64{3}, wantTexts: []string{"hi"}},
		{name: "sep= wins over detection", input: "sep=|\n" + strings.ReplaceAll(csvHead, ",", "|") + "c1|a|1709284502|u1|Anna, K;x|text|hi\n",
			wantIDs: []string{"a"}, wantLines: []int64{3}, wantTexts: []string{"hi"}},
		{name: "mapped names count for detection", input: "chat;id;timestamp;sender_id;sender_name;message_type;body\nc1;a;1709284502;u1;Anna;text;hi\n",
			spec:    Spec{ColumnMap: map[string]string{"conversation_id": "chat", "msgid": "id", "message_text": "body"}},
			wantIDs: []string{"a"}, wantLines: []int64{2}, wantTexts: []string{"hi"}},
		{name: "semicolon rows with the wrong field count", input: semi + "c1;a;1709284502;u1;Anna;text;hi\nc1;b;1709284502;u1;Anna;text;hi;;\n",
			wantIDs: []string{"b"}, wantLines: []int64{3}, wantTexts: []string{"hi"}, wantErrs: []errAt{{2, ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := tt.spec
			spec.Kind, spec.Path = KindCSV, writeFile(t, "in.csv", tt.input)
			res := readAll(t, spec)
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
			if tt.check != nil {
				tt.check(t, res.payloads())
			}
		})
	}

	t.Run("10,000 records with semicolons", func(t *testing.T) {
		t.Parallel()
		var comma, semis bytes.Buffer
		require.NoError(t, writeBenchCSV(&comma, 10000))
		rows, err := csv.NewReader(bytes.NewReader(comma.Bytes())).ReadAll()
		require.NoError(t, err)
		cw := csv.NewWriter(&semis)
		cw.Comma = ';'
		cw.UseCRLF = true
		require.NoError(t, cw.WriteAll(rows))
		want := readAll(t, Spec{Kind: KindCSV, Path: writeFile(t, "comma.csv", comma.String())})
		got := readAll(t, Spec{Kind: KindCSV, Path: writeFile(t, "semi.csv", "\ufeffsep=;\r\n"+semis.String())})
		require.Empty(t, got.errs)
		require.Len(t, got.records, 10000)
		require.Equal(t, want.payloads(), got.payloads())
	})
}

func utf16LE(s string, bom bool) string {
	var b []byte
	if bom {
		b = append(b, 0xFF, 0xFE)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u), byte(u>>8))
	}
	return string(b)
}

func utf16BE(s string) string {
	b := []byte{0xFE, 0xFF}
	for _, u := range utf16.Encode([]rune(s)) {
		b = append(b, byte(u>>8), byte(u))
	}
	return string(b)
}

// TestUnreadableEncodings: files that cannot be read as they are fail at
// open, naming the file and saying what to do, instead of yielding one
// rejected record per line (or one huge line).
func TestUnreadableEncodings(t *testing.T) {
	t.Parallel()
	csvData := csvHead + "c1,a,1709284502,u1,Anna,text,hi\nc1,b,1709284502,u1,Anna,text,ho\n"
	jsonlData := jl("a") + "\n" + jl("b") + "\n"
	const utf16Msg = "UTF-16 encoded: save it as UTF-8 (Excel: CSV UTF-8)"
	const jsonlMsg = "JSONL needs one JSON object per line"
	pretty := "{\n  \"event_type\": \"new_message\",\n  \"payload\": {\n    \"msgid\": \"a\"\n  }\n}\n"
	tests := []struct {
		name, kind, input string
		want              []string
	}{
		{"csv UTF-16LE with BOM", KindCSV, utf16LE(csvData, true), []string{utf16Msg}},
		{"csv UTF-16BE with BOM", KindCSV, utf16BE(csvData), []string{utf16Msg}},
		{"csv UTF-16LE without BOM", KindCSV, utf16LE(csvData, false), []string{utf16Msg}},
		{"csv CR-only line ends", KindCSV, strings.ReplaceAll(csvData, "\n", "\r"), []string{"line ends are CR only"}},
		{"jsonl UTF-16LE with BOM", KindJSONL, utf16LE(jsonlData, true), []string{utf16Msg}},
		{"jsonl UTF-16LE without BOM", KindJSONL, utf16LE(jsonlData, false), []string{utf16Msg}},
		{"jsonl CR-only line ends", KindJSONL, strings.ReplaceAll(jsonlData, "\n", "\r"), []string{"line ends are CR only"}},
		{"jsonl pretty-printed", KindJSONL, pretty + pretty, []string{jsonlMsg, "jq -c . "}},
		{"jsonl pretty-printed after a BOM and blank lines", KindJSONL, "\ufeff\n\n" + pretty, []string{jsonlMsg, "jq -c . "}},
		{"jsonl array on one line", KindJSONL, "[" + jl("a") + "," + jl("b") + "]\n", []string{jsonlMsg, "a JSON array", "jq -c '.[]' "}},
		{"jsonl pretty-printed array", KindJSONL, "[\n  " + jl("a") + ",\n  " + jl("b") + "\n]\n", []string{jsonlMsg, "a JSON array", "jq -c '.[]' "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, "export."+tt.kind, tt.input)
			_, err := tryReadAll(Spec{Kind: tt.kind, Path: path})
			require.Error(t, err)
			require.Contains(t, err.Error(), path+": ")
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}

	t.Run("fine files still open", func(t *testing.T) {
		t.Parallel()
		for kind, in := range map[string]string{
			KindCSV:   strings.ReplaceAll(csvData, "\n", "\r\n"),
			KindJSONL: "\ufeff" + strings.ReplaceAll(jsonlData, "\n", "\r\n"),
		} {
			res := readAll(t, Spec{Kind: kind, Path: writeFile(t, "ok."+kind, in)})
			require.Empty(t, res.errs)
			require.Equal(t, []string{"a", "b"}, res.msgids())
		}
	})

	t.Run("jsonl: stray pretty-printed or array lines further down are rejected with the hint", func(t *testing.T) {
		t.Parallel()
		in := jl("a") + "\n{\n  \"msgid\": \"x\"\n}\n[1, 2]\n" + jl("b") + "\n"
		res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "in.jsonl", in)})
		require.Equal(t, []string{"a", "b"}, res.msgids())
		require.Equal(t, []errAt{{2, ""}, {3, ""}, {4, ""}, {5, ""}}, res.errAts())
		require.Contains(t, res.errs[0].Error(), jsonlMsg)
		require.Contains(t, res.errs[3].Error(), jsonlMsg)
	})
}
