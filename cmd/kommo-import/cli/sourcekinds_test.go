package cli

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
)

// TestExportKindNotBuiltYet: an export kind --source parses but this build
// has no reader for is refused at once, as a usage error that says so and
// lists what this build reads, before any database is touched.
func TestExportKindNotBuiltYet(t *testing.T) {
	t.Parallel()
	var missing string
	for _, k := range sources.ExportKinds {
		if _, ok := sourceKinds[k]; !ok {
			missing = k
			break
		}
	}
	if missing == "" {
		require.NoError(t, checkKind(sources.Spec{Kind: sources.KindTelegram, Path: "x"}), "every export kind is built")
		return
	}
	_, stderr, code := runValidateCmd(t, "", "--source", missing+":"+t.TempDir())
	require.Equal(t, ExitUsage, code, stderr)
	require.Contains(t, stderr, "reading "+missing+" exports is not built yet")
	require.Contains(t, stderr, "this build reads: csv, jsonl, postgres")

	_, stderr, code = runWith(t, map[string]string{envChannelSecret: "s"},
		"run", "--source", missing+":x", "--scope-id", "s", "--database-url", "postgres://127.0.0.1:1/none")
	require.Equal(t, ExitUsage, code, stderr)
	require.Contains(t, stderr, "not built yet")
}
