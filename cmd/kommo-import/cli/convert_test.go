package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

const (
	telegramChat    = "../../../testdata/telegram/ChatExport_2024-03-14"
	telegramAccount = "../../../testdata/telegram/DataExport_2024-04-01"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runWith(t, nil, args...)
}

func readJSONL(t *testing.T, b []byte) []wire.Payload {
	t.Helper()
	var out []wire.Payload
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var p wire.Payload
		require.NoError(t, json.Unmarshal(sc.Bytes(), &p), sc.Text())
		out = append(out, p)
	}
	return out
}

// TestConvertTelegramRoundTrip: convert writes the payloads of a Telegram
// export as JSONL, reports like validate, and the file reads back as JSONL
// into the very same records.
func TestConvertTelegramRoundTrip(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "chat.jsonl")
	stdout, stderr, code := runCLI(t, "convert", "--source", "telegram:"+telegramAccount, "--bot-id", "BOT-1", "--media-missing", "text", "--out", out)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stdout, "valid          29")
	require.Contains(t, stdout, "conversations  3")
	require.Contains(t, stdout, "group chat ")
	require.Regexp(t, `message in a skipped chat +9\n`, stdout)
	require.Contains(t, stdout, "media without a file                 4 (sent as text: --media-missing text)")
	fi, err := os.Stat(out)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "chat history is personal data")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	converted := readJSONL(t, b)
	require.Len(t, converted, 29)

	// Read back as JSONL: the same payloads, all valid.
	r, err := sources.Open(context.Background(), sources.Spec{Kind: sources.KindJSONL, Path: out})
	require.NoError(t, err)
	defer r.Close()
	for i := range converted {
		rec, err := r.Next(context.Background())
		require.NoError(t, err)
		require.Equal(t, converted[i], rec.Payload)
	}

	// Refused without --force, before reading anything; replaced with it.
	_, stderr, code = runCLI(t, "convert", "--source", "telegram:"+telegramAccount, "--out", out)
	require.Equal(t, ExitUsage, code)
	require.Contains(t, stderr, "give --force to replace it")
	_, stderr, code = runCLI(t, "convert", "--source", "telegram:"+telegramChat, "--bot-id", "BOT-1", "--out", out, "--force")
	require.Equal(t, ExitIncomplete, code, "without --media-missing text, media without a file is rejected: %s", stderr)
	b, err = os.ReadFile(out)
	require.NoError(t, err)
	require.Len(t, readJSONL(t, b), 15, "the valid records are written all the same")
}

// TestConvertToStdout: without --out the JSONL is stdout and the report
// stderr; a fatal error writes no file.
func TestConvertToStdout(t *testing.T) {
	t.Parallel()
	stdout, stderr, code := runCLI(t, "convert", "--source", telegramChat+"/result.json", "--bot-id", "B", "--media-missing", "text", "--json")
	require.Equal(t, ExitOK, code, stderr)
	require.Len(t, readJSONL(t, []byte(stdout)), 19)
	var counts validateCounts
	require.NoError(t, json.Unmarshal([]byte(stderr), &counts), stderr)
	require.EqualValues(t, 2, counts.Skipped[sources.SkipServiceMessage])

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "result.json"), []byte(`{"about": "x"}`), 0o644))
	out := filepath.Join(t.TempDir(), "x.jsonl")
	_, stderr, code = runCLI(t, "convert", "--source", "telegram:"+dir, "--out", out)
	require.Equal(t, ExitFatal, code)
	require.Contains(t, stderr, "no chats in this export")
	_, err := os.Stat(out)
	require.True(t, os.IsNotExist(err), "no file for a failed read")
	entries, _ := os.ReadDir(filepath.Dir(out))
	require.Empty(t, entries, "no temporary file left")
	require.False(t, strings.Contains(stderr, "panic"))
}
