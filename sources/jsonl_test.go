package sources

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// jl is a valid bare payload line for msgid id.
func jl(id string) string {
	return fmt.Sprintf(`{"timestamp":1709284502,"msgid":%q,"conversation_id":"c1","sender":{"id":"u1","name":"Anna"},"message":{"type":"text","text":"hi"}}`, id)
}

func TestJSONL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		input      string
		wantIDs    []string
		wantLines  []int64
		wantErrs   []errAt
		wantDups   int64
		wantOffset []int64
	}{
		{name: "bare payloads", input: jl("a") + "\n" + jl("b") + "\n", wantIDs: []string{"a", "b"}, wantLines: []int64{1, 2},
			wantOffset: []int64{0, int64(len(jl("a")) + 1)}},
		{name: "whole event", input: `{"event_type":"new_message","payload":` + jl("a") + "}\n", wantIDs: []string{"a"}, wantLines: []int64{1}},
		{name: "no final newline", input: jl("a") + "\n" + jl("b"), wantIDs: []string{"a", "b"}, wantLines: []int64{1, 2}},
		{name: "CRLF", input: jl("a") + "\r\n" + jl("b") + "\r\n", wantIDs: []string{"a", "b"}, wantLines: []int64{1, 2}},
		{name: "blank lines skipped, lines still counted", input: "\n  \n" + jl("a") + "\n\r\n\n" + jl("b") + "\n\n", wantIDs: []string{"a", "b"}, wantLines: []int64{3, 6}},
		{name: "empty input", input: "", wantIDs: []string{}},
		{name: "silent ignored", input: strings.Replace(jl("a"), `{`, `{"silent":true,`, 1) + "\n", wantIDs: []string{"a"}, wantLines: []int64{1}},
		{name: "unknown fields not sent, the record still valid", input: strings.Replace(jl("a"), `{`, `{"mood":{"x":1},`, 1) + "\n", wantIDs: []string{"a"}, wantLines: []int64{1}},
		{name: "not JSON", input: "{oops\n" + jl("a") + "\n", wantIDs: []string{"a"}, wantLines: []int64{2}, wantErrs: []errAt{{1, ""}}},
		{name: "trailing garbage", input: jl("a") + " x\n", wantIDs: []string{}, wantErrs: []errAt{{1, ""}}},
		{name: "not an object", input: "42\n\"s\"\nnull\n", wantIDs: []string{}, wantErrs: []errAt{{1, ""}, {2, ""}, {3, "conversation_id"}}},
		{name: "wrong type names the field", input: `{"msgid":5}` + "\n", wantIDs: []string{}, wantErrs: []errAt{{1, "msgid"}}},
		{name: "wrong type inside payload", input: `{"event_type":"new_message","payload":{"sender":{"id":1}}}` + "\n", wantIDs: []string{}, wantErrs: []errAt{{1, "sender.id"}}},
		{name: "other event", input: `{"event_type":"edit_message","payload":` + jl("a") + "}\n", wantIDs: []string{}, wantErrs: []errAt{{1, "event_type"}}},
		{name: "event without payload", input: `{"event_type":"new_message"}` + "\n", wantIDs: []string{}, wantErrs: []errAt{{1, "payload"}}},
		{name: "invalid UTF-8 rejected", input: strings.Replace(jl("a"), "hi", "h\xffi", 1) + "\n" + jl("b") + "\n", wantIDs: []string{"b"}, wantLines: []int64{2}, wantErrs: []errAt{{1, ""}}},
		{name: "lone surrogate rejected", input: strings.Replace(jl("a"), "hi", `h\udc00i`, 1) + "\n", wantIDs: []string{}, wantErrs: []errAt{{1, ""}}},
		{name: "high surrogate at the end rejected", input: strings.Replace(jl("a"), "hi", `hi\ud83d`, 1) + "\n", wantIDs: []string{}, wantErrs: []errAt{{1, ""}}},
		{name: "surrogate pair fine", input: strings.Replace(jl("a"), "hi", `\ud83d\ude00`, 1) + "\n", wantIDs: []string{"a"}, wantLines: []int64{1}},
		{name: "escaped backslash before u is text", input: strings.Replace(jl("a"), "hi", `\\ud800`, 1) + "\n", wantIDs: []string{"a"}, wantLines: []int64{1}},
		{name: "identical duplicate skipped", input: jl("a") + "\n" + jl("a") + "\n", wantIDs: []string{"a"}, wantLines: []int64{1}, wantDups: 1},
		{name: "same content other format is a duplicate",
			input:   jl("a") + "\n" + `{"event_type":"new_message","payload":` + strings.Replace(jl("a"), `"timestamp":1709284502`, `"msec_timestamp":1709284502000`, 1) + "}\n",
			wantIDs: []string{"a"}, wantLines: []int64{1}, wantDups: 1},
		{name: "conflicting duplicate", input: jl("a") + "\n" + strings.Replace(jl("a"), "hi", "ho", 1) + "\n", wantIDs: []string{"a"}, wantLines: []int64{1}, wantErrs: []errAt{{2, "msgid"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "in.jsonl", tt.input)})
			require.Equal(t, tt.wantIDs, res.msgids())
			if tt.wantErrs == nil {
				tt.wantErrs = []errAt{}
			}
			require.Equal(t, tt.wantErrs, res.errAts(), "errors: %v", res.errs)
			var lines, offsets []int64
			for _, r := range res.records {
				lines = append(lines, r.Line)
				offsets = append(offsets, r.Offset)
				require.False(t, r.Payload.Silent)
			}
			require.Equal(t, tt.wantLines, lines)
			if tt.wantOffset != nil {
				require.Equal(t, tt.wantOffset, offsets)
			}
			require.Equal(t, tt.wantDups, res.stats.Duplicates)
			require.Equal(t, int64(len(tt.input)), res.stats.BytesRead)
		})
	}
}

func TestJSONLConflictNamesFirstLine(t *testing.T) {
	t.Parallel()
	in := "\n" + jl("a") + "\n" + jl("b") + "\n" + strings.Replace(jl("a"), "hi", "ho", 1) + "\n"
	res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "in.jsonl", in)})
	require.Len(t, res.errs, 1)
	require.ErrorIs(t, res.errs[0], ErrConflictingDuplicate)
	require.Contains(t, res.errs[0].Error(), "in.jsonl:4: msgid: conflicting duplicate of line 2")
}

// A line of more than 16 MiB reads; one over the cap is rejected with its
// line number, not held whole, and the lines after it still read.
func TestJSONLLongLines(t *testing.T) {
	t.Parallel()
	big := strings.Replace(jl("big"), "hi", strings.Repeat("x", 17<<20), 1)
	t.Run("17 MiB line with the default cap", func(t *testing.T) {
		t.Parallel()
		res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "in.jsonl", jl("a")+"\n"+big+"\n"+jl("b")+"\n")})
		require.Empty(t, res.errs)
		require.Equal(t, []string{"a", "big", "b"}, res.msgids())
		require.Len(t, res.records[1].Payload.Message.Text, 17<<20)
		require.Equal(t, int64(3), res.records[2].Line)
	})
	for _, max := range []int{1 << 20, 1000} { // longer than the read buffer, and shorter
		t.Run(fmt.Sprintf("over a cap of %d", max), func(t *testing.T) {
			t.Parallel()
			res := readAll(t, Spec{Kind: KindJSONL, MaxRecordBytes: max, Path: writeFile(t, "in.jsonl", jl("a")+"\n"+big+"\n"+jl("b")+"\n"+big)})
			require.Equal(t, []errAt{{2, ""}, {4, ""}}, res.errAts())
			require.ErrorIs(t, res.errs[0], ErrTooLarge)
			require.LessOrEqual(t, len(res.errs[0].Raw), MaxRawBytes)
			require.Equal(t, []string{"a", "b"}, res.msgids())
			require.Equal(t, int64(3), res.records[1].Line)
			require.Equal(t, int64(len(jl("a"))+1+len(big)+1), res.records[1].Offset)
		})
	}
}

func TestJSONLGzipAndStdin(t *testing.T) {
	t.Parallel()
	plain := jl("a") + "\n\n" + jl("b") + "\n"
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, err := zw.Write([]byte(plain))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	dir := t.TempDir()
	gzPath := filepath.Join(dir, "export.jsonl.gz")
	require.NoError(t, os.WriteFile(gzPath, gz.Bytes(), 0o644))

	tests := []struct {
		name          string
		spec          func() Spec
		wantName      string
		wantResumable bool
	}{
		{"gz file", func() Spec { return Spec{Kind: KindJSONL, Path: gzPath} }, gzPath, true},
		{"stdin", func() Spec { return Spec{Kind: KindJSONL, Path: "-", Stdin: strings.NewReader(plain)} }, "stdin", false},
		{"gzipped stdin", func() Spec { return Spec{Kind: KindJSONL, Path: "-", Stdin: bytes.NewReader(gz.Bytes())} }, "stdin", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := tt.spec()
			spec.Now = nowFunc
			r, err := Open(t.Context(), spec)
			require.NoError(t, err)
			defer r.Close()
			require.Equal(t, tt.wantName, r.Name())
			require.Equal(t, tt.wantResumable, r.Resumable())
			res := readAll(t, tt.spec())
			require.Equal(t, []string{"a", "b"}, res.msgids())
			require.Equal(t, []int64{1, 3}, []int64{res.records[0].Line, res.records[1].Line})
			require.Equal(t, int64(len(jl("a"))+2), res.records[1].Offset, "offset in the decompressed stream")
		})
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	_, err := Open(t.Context(), Spec{Kind: KindJSONL, Path: filepath.Join(t.TempDir(), "missing.jsonl")})
	require.True(t, errors.Is(err, os.ErrNotExist), "got %v", err)
	_, err = Open(t.Context(), Spec{Kind: KindJSONL, Path: writeFile(t, "x.jsonl.gz", "\x1f\x8bnot gzip")})
	require.ErrorContains(t, err, "gzip")
}
