package sources

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const bomStr = "\ufeff"

// TestJoinedFiles: two exports joined with cat (each with its BOM, the CSV
// ones each with its header) read as one.
func TestJoinedFiles(t *testing.T) {
	t.Parallel()
	const half = 5000
	var a, b bytes.Buffer
	require.NoError(t, writeBenchJSONLRange(&a, 0, half))
	require.NoError(t, writeBenchJSONLRange(&b, half, 2*half))
	second := b.String()
	t.Run("jsonl", func(t *testing.T) {
		t.Parallel()
		in := bomStr + a.String() + bomStr + second
		res := readAll(t, Spec{Kind: KindJSONL, Path: writeFile(t, "joined.jsonl", in)})
		require.Empty(t, res.errs)
		require.Len(t, res.records, 2*half)
		require.Equal(t, "msg-000000005000", res.records[half].Payload.MsgID)
		require.Equal(t, int64(half+1), res.records[half].Line)
		require.Equal(t, int64(len(bomStr)+a.Len()), res.records[half].Offset, "the offset is the line's, BOM included")
		for _, r := range res.records {
			require.False(t, strings.HasPrefix(r.Payload.ConversationID, bomStr))
		}
	})

	var ca, cb bytes.Buffer
	require.NoError(t, writeBenchCSVRange(&ca, 0, half))
	require.NoError(t, writeBenchCSVRange(&cb, half, 2*half))
	csvSecond := cb.String()
	t.Run("csv: a second header row", func(t *testing.T) {
		t.Parallel()
		in := bomStr + ca.String() + bomStr + csvSecond
		res := readAll(t, Spec{Kind: KindCSV, Path: writeFile(t, "joined.csv", in)})
		require.Len(t, res.errs, 1, "errors: %v", firstErrs(res.errs))
		e := res.errs[0]
		require.Equal(t, int64(half+2), e.Line)
		require.Equal(t, "", e.Field)
		require.ErrorIs(t, e, ErrSecondHeader)
		require.Contains(t, e.Error(), "a second header row (two files joined?)")
		require.Len(t, res.records, 2*half)
		require.Equal(t, "msg-000000005000", res.records[half].Payload.MsgID)
		for _, r := range res.records {
			require.True(t, strings.HasPrefix(r.Payload.ConversationID, "conv-"), r.Payload.ConversationID)
		}
	})

	row := "c1,a,1709284502,u1,Anna,text,hi\n"
	tests := []struct {
		name     string
		input    string
		wantIDs  []string
		wantErrs []errAt
		wantConv string
		fatal    string
	}{
		{name: "BOM before a data row", input: csvHead + row + bomStr + strings.Replace(row, ",a,", ",b,", 1),
			wantIDs: []string{"a", "b"}, wantErrs: []errAt{}, wantConv: "c1"},
		{name: "repeated header without a BOM", input: csvHead + row + csvHead + strings.Replace(row, ",a,", ",b,", 1),
			wantIDs: []string{"a", "b"}, wantErrs: []errAt{{3, ""}}, wantConv: "c1"},
		{name: "repeated header in other case and spacing", input: csvHead + row + strings.ToUpper(strings.ReplaceAll(csvHead, ",", ", ")) + strings.Replace(row, ",a,", ",b,", 1),
			wantIDs: []string{"a", "b"}, wantErrs: []errAt{{3, ""}}, wantConv: "c1"},
		{name: "a second header with other columns stops the read",
			input: csvHead + row + bomStr + "msgid,conversation_id,timestamp,sender_id,sender_name,message_type,message_text\n" + "b,c1,1709284502,u1,Anna,text,hi\n",
			fatal: "in.csv: a second header row (two files joined?) with other columns than the header on line 1: import the files one at a time, or give them the same columns in the same order (reading line 3)"},
	}
	for _, tt := range tests {
		t.Run("csv: "+tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := tryReadAll(Spec{Kind: KindCSV, Path: writeFile(t, "in.csv", tt.input)})
			if tt.fatal != "" {
				require.ErrorContains(t, err, tt.fatal)
				require.ErrorIs(t, err, ErrSecondHeader)
				var le *LineError
				require.False(t, errors.As(err, &le), "fatal, not a bad record")
				require.Equal(t, []string{"a"}, res.msgids(), "the rows before it came through")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantErrs, res.errAts())
			require.Equal(t, tt.wantIDs, res.msgids())
			for _, r := range res.records {
				require.Equal(t, tt.wantConv, r.Payload.ConversationID)
			}
		})
	}
}
