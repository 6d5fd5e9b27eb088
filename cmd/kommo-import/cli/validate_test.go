package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
)

// runValidateCmd runs "kommo-import validate args..." with buffers and returns
// stdout, stderr and the exit code main would use.
func runValidateCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut}
	err := Run(context.Background(), append([]string{"validate"}, args...), env, nil)
	code = ExitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

const (
	sampleCSV   = "../../../testdata/messages.csv"
	messyCSV    = "../../../testdata/messages-messy.csv"
	messyJSONL  = "../../../testdata/messages-messy.jsonl"
	sampleJSONL = "../../../testdata/messages.jsonl"
)

func TestValidateCommand(t *testing.T) {
	t.Parallel()
	stdinJSONL, err := os.ReadFile(sampleJSONL)
	require.NoError(t, err)
	tests := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantOut    []string // substrings of stdout
		wantNotOut []string
		wantErr    []string // substrings of stderr
	}{
		{name: "clean CSV", args: []string{"--source", sampleCSV}, wantCode: ExitOK,
			wantOut: []string{"records        14", "valid          14", "rejected       0", "duplicates     0", "conversations  3"}},
		{name: "clean JSONL from stdin", stdin: string(stdinJSONL), args: []string{"--source", "jsonl:-"}, wantCode: ExitOK,
			wantOut: []string{"stdin\n", "valid          14"}},
		{name: "messy CSV lists every bad record then counts", args: []string{"--source", messyCSV}, wantCode: ExitIncomplete,
			wantOut: []string{
				messyCSV + ":4: message.file_name: required for type picture\n",
				messyCSV + ":12: msgid: conflicting duplicate of line 8",
				messyCSV + ":31: message.location.lon: required",
				"records        26", "valid          6", "rejected       19", "duplicates     1", "conversations  3",
			},
			wantErr: []string{"19 of 26 records are invalid", "Try: "}},
		{name: "json counts", args: []string{"--source", messyJSONL, "--json"}, wantCode: ExitIncomplete,
			wantOut:    []string{`{"source":"` + messyJSONL + `","records":18,"valid":5,"rejected":12,"duplicates":1,"conversations":3,"bytes_read":`},
			wantNotOut: []string{":4: "},
			wantErr:    []string{messyJSONL + ":4: invalid JSON"}},
		{name: "map and ignore", args: []string{"--source", "csv:" + sampleCSV, "--ignore-columns", "sender_avatar,sender_profile_link"},
			wantCode: ExitOK, wantOut: []string{"valid          14"}},
		{name: "no source", args: nil, wantCode: ExitUsage, wantErr: []string{"--source is required"}},
		{name: "bad source", args: []string{"--source", "x.xlsx"}, wantCode: ExitUsage, wantErr: []string{"cannot tell the format"}},
		{name: "postgres without dsn", args: []string{"--source", "postgres", "--source-table", "t"}, wantCode: ExitUsage, wantErr: []string{"--source-dsn is required"}},
		{name: "missing file", args: []string{"--source", "nope.csv"}, wantCode: ExitFatal, wantErr: []string{"nope.csv"}},
		{name: "help", args: []string{"--help"}, wantCode: ExitOK, wantOut: []string{"-source SOURCE", "-rejects FILE", "-map canonical=theirs", "-source-query SQL", "-ignore-columns",
			"-strict", "-media-missing", "CSV columns", "conversation_id, msgid, timestamp, msec_timestamp, sender_id, sender_name", "reply_to_msgid, forward_msgid, forward_conversation_id",
			"delivery_status_code"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runValidateCmd(t, tt.stdin, tt.args...)
			require.Equal(t, tt.wantCode, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
			for _, s := range tt.wantOut {
				require.Contains(t, out, s)
			}
			for _, s := range tt.wantNotOut {
				require.NotContains(t, out, s)
			}
			for _, s := range tt.wantErr {
				require.Contains(t, errOut, s)
			}
		})
	}
}

func TestValidateJSONOutputIsOneObject(t *testing.T) {
	t.Parallel()
	out, _, code := runValidateCmd(t, "", "--source", messyCSV, "--json")
	require.Equal(t, ExitIncomplete, code)
	var counts map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &counts))
	require.Equal(t, map[string]any{"source": messyCSV, "records": 26.0, "valid": 6.0, "rejected": 19.0, "duplicates": 1.0,
		"conversations": 3.0, "bytes_read": counts["bytes_read"]}, counts)
}

func TestValidateRejectsFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()

	t.Run("jsonl", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "rejects.jsonl")
		_, _, code := runValidateCmd(t, "", "--source", messyCSV, "--rejects", path)
		require.Equal(t, ExitIncomplete, code)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		require.Len(t, lines, 19)
		var first struct {
			File   string `json:"file"`
			Line   int64  `json:"line"`
			Field  string `json:"field"`
			Reason string `json:"reason"`
			Raw    string `json:"raw"`
		}
		require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
		require.Equal(t, messyCSV, first.File)
		require.Equal(t, int64(4), first.Line)
		require.Equal(t, "message.file_name", first.Field)
		require.Equal(t, "required for type picture", first.Reason)
		require.True(t, strings.HasPrefix(first.Raw, "conv-anna-001,m-0003,"), first.Raw)
	})

	t.Run("csv", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "rejects.csv")
		_, _, code := runValidateCmd(t, "", "--source", messyJSONL, "--rejects", path)
		require.Equal(t, ExitIncomplete, code)
		f, err := os.Open(path)
		require.NoError(t, err)
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 13)
		require.Equal(t, []string{"file", "line", "field", "reason", "raw"}, rows[0])
		require.Equal(t, []string{messyJSONL, "5", "timestamp", "got JSON string, want a whole number"}, rows[2][:4])
		require.Contains(t, rows[2][4], `"msgid": "j-05"`)
	})

	// Excel's ';' CSV with CRLF line ends: rejects.csv takes the source's
	// separator (it opens in the same Excel), and raw is the record without
	// its line break.
	t.Run("csv of a ; CRLF source", func(t *testing.T) {
		t.Parallel()
		src := filepath.Join(dir, "excel.csv")
		require.NoError(t, os.WriteFile(src, []byte("conversation_id;msgid;timestamp;sender_id;sender_name;message_type;message_text\r\n"+
			"c1;m1;1709284502;u1;Anna;text;hi\r\n"+
			"c1;m2;1709284503;u1;Anna;text;\r\n"+
			"c1;m3;1709284504;u1;Anna;text;\"two\r\nlines\"\r\n"), 0o600))
		path := filepath.Join(dir, "excel-rejects.csv")
		_, errOut, code := runValidateCmd(t, "", "--source", src, "--rejects", path)
		require.Equal(t, ExitIncomplete, code, errOut)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		r := csv.NewReader(bytes.NewReader(b))
		r.Comma = ';'
		rows, err := r.ReadAll()
		require.NoError(t, err, "%s", b)
		require.Len(t, rows, 2, "%s", b)
		require.Equal(t, []string{"file", "line", "field", "reason", "raw"}, rows[0])
		require.Equal(t, "3", rows[1][1])
		require.Equal(t, "c1;m2;1709284503;u1;Anna;text;", rows[1][4], "raw without its line break")
	})

	t.Run("clean input leaves an empty rejects file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "none.jsonl")
		require.NoError(t, os.WriteFile(path, []byte("stale\n"), 0o644))
		_, _, code := runValidateCmd(t, "", "--source", sampleCSV, "--rejects", path)
		require.Equal(t, ExitOK, code)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Empty(t, b)
	})
}

// TestValidateSourceQueryIsReadOnly: validate runs the user's query; one
// that writes (DELETE ... RETURNING) is refused and deletes nothing.
func TestValidateSourceQueryIsReadOnly(t *testing.T) {
	t.Parallel()
	dsn := pgtest.URL(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE t (msgid text, conversation_id text, timestamp bigint, sender_id text, sender_name text, message_type text, message_text text);
		INSERT INTO t SELECT 'm' || i, 'c1', 1709284502 + i, 'u1', 'Anna', 'text', 'hi' FROM generate_series(1, 50) i`)
	require.NoError(t, err)

	out, errOut, code := runValidateCmd(t, "", "--source", "postgres", "--source-dsn", dsn,
		"--source-query", "DELETE FROM t RETURNING msgid, conversation_id, timestamp, sender_id, sender_name, message_type, message_text")
	require.Equal(t, ExitFatal, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, errOut, "the query writes, and source queries run read-only: give a SELECT")
	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n))
	require.Equal(t, 50, n, "nothing deleted")

	out, errOut, code = runValidateCmd(t, "", "--source", "postgres", "--source-dsn", dsn, "--source-query", "SELECT * FROM t")
	require.Equal(t, ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "valid          50")
}

// TestValidateUnknownFields: validate lists the keys it will not send, with
// the number of records carrying each; --strict rejects those records.
func TestValidateUnknownFields(t *testing.T) {
	t.Parallel()
	var in strings.Builder
	line := `{"timestamp":1709284502,"msgid":"m%d","conversation_id":"c1","sender":{"id":"u1","name":"Anna"},"message":{"type":"text","text":"hi"%s}%s}` + "\n"
	for i := 0; i < 3000; i++ {
		msgExtra, extra := "", ""
		if i%2 == 0 {
			extra = `,"mood":"calm"`
		}
		if i == 7 {
			msgExtra = `,"mesage":"x"`
		}
		fmt.Fprintf(&in, line, i, msgExtra, extra)
	}
	path := filepath.Join(t.TempDir(), "unknown.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(in.String()), 0o644))

	out, errOut, code := runValidateCmd(t, "", "--source", path)
	require.Equal(t, ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "valid          3,000")
	require.Contains(t, out, "field `payload.mood` on 1,500 records is not part of the Chats API payload and is not sent\n")
	require.Contains(t, out, "field `payload.message.mesage` on 1 record is not part of the Chats API payload and is not sent\n")
	require.Less(t, strings.Index(out, "payload.mood"), strings.Index(out, "payload.message.mesage"), "most records first")

	out, errOut, code = runValidateCmd(t, "", "--source", path, "--json")
	require.Equal(t, ExitOK, code, "stderr:\n%s", errOut)
	var counts struct {
		Valid         int64            `json:"valid"`
		UnknownFields map[string]int64 `json:"unknown_fields"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &counts), out)
	require.Equal(t, map[string]int64{"payload.mood": 1500, "payload.message.mesage": 1}, counts.UnknownFields)
	require.Contains(t, errOut, "field `payload.mood` on 1,500 records")

	out, errOut, code = runValidateCmd(t, "", "--source", path, "--strict")
	require.Equal(t, ExitIncomplete, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, path+":1: mood: not part of the Chats API payload (a typo?); --strict refuses it\n")
	require.Contains(t, out, path+":8: message.mesage: not part of the Chats API payload (a typo?); --strict refuses it\n")
	require.Contains(t, out, "rejected       1,501")
}

// TestValidateMediaMissing: a media message without media is rejected, or
// counted valid with --media-missing text.
func TestValidateMediaMissing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "media.csv")
	require.NoError(t, os.WriteFile(path, []byte("conversation_id;msgid;timestamp;sender_id;sender_name;message_type;message_file_name\n"+
		"c1;a;1709284502;u1;Anna;picture;IMG_1.jpg\nc1;b;1709284503;u1;Anna;voice;\n"), 0o644))
	out, errOut, code := runValidateCmd(t, "", "--source", path)
	require.Equal(t, ExitIncomplete, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, path+":2: message.media: required for type picture: ")
	require.Contains(t, out, "--media-missing text to send its name as a text message")
	out, errOut, code = runValidateCmd(t, "", "--source", path, "--media-missing", "text")
	require.Equal(t, ExitOK, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "valid          2")
}
