package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
)

// TestRehearseOnASubset: a run on --conversation sends only those chats,
// under a run of its own (its derived name says subset, its source says
// which), counts what it skipped, and the whole import after it is another
// run that sends the rest and nothing twice.
func TestRehearseOnASubset(t *testing.T) {
	c := newCLIEnv(t)
	out, errOut, code := c.run(t, "run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--json",
		"--conversation", "conv-boris-002")
	require.Equal(t, ExitOK, code, errOut)
	var sum struct {
		importer.Summary
		Subset   string `json:"subset"`
		Filtered *int64 `json:"filtered"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	require.True(t, strings.HasPrefix(sum.Name, "messages.jsonl-subset-"), sum.Name)
	require.Contains(t, sum.Source, "[only conversations conv-boris-002]")
	require.Equal(t, "conversations conv-boris-002", sum.Subset)
	require.NotNil(t, sum.Filtered)
	require.EqualValues(t, 10, *sum.Filtered)
	require.EqualValues(t, 4, sum.Sent)
	for _, e := range c.sim.Ledger() {
		require.Equal(t, "conv-boris-002", e.ConversationID)
	}
	require.Len(t, c.sim.Ledger(), 4)

	// The same rehearsal again resumes its run (done: the source is not
	// read again, so the skipped records are not counted again).
	out, errOut, code = c.run(t, "run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--conversation", "conv-boris-002")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "run "+sum.Name+" ")
	require.Contains(t, out, "messages.jsonl [only conversations conv-boris-002]\n")
	require.NotContains(t, out, "outside the subset")

	// The whole import is a run of its own: the rest goes, the subset's are known.
	out, errOut, code = c.run(t, "run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--json")
	require.Equal(t, ExitOK, code, errOut)
	var whole importer.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &whole))
	require.NotEqual(t, sum.Name, whole.Name)
	require.EqualValues(t, 4, whole.KnownSent)
	require.EqualValues(t, 10, whole.SentNow)
	checkOnceAndLoud(t, c.sim.Ledger(), 14)

	// --since after every message: nothing in the subset, said as such.
	_, errOut, code = c.run(t, "run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--since", "2030-01-01")
	require.Equal(t, ExitIncomplete, code)
	require.Contains(t, errOut, "no record of the source is in the subset (since 2030-01-01 UTC)")
}

// TestValidateASubset: validate counts what a subset keeps, from a file of
// ids or the first conversations met, and skips the others unchecked.
func TestValidateASubset(t *testing.T) {
	t.Parallel()
	ids := filepath.Join(t.TempDir(), "ids.txt")
	require.NoError(t, os.WriteFile(ids, []byte("# the rehearsal\nconv-anna-001\n\nconv-zed\n"), 0o600))
	out, errOut, code := runValidateCmd(t, "", "--source", messyJSONL, "--conversations", ids, "--json")
	var counts validateCounts
	require.NoError(t, json.Unmarshal([]byte(out), &counts), errOut)
	require.Equal(t, "2 conversations from "+ids+" (ids sha256 ", counts.Subset[:len("2 conversations from "+ids+" (ids sha256 ")])
	require.EqualValues(t, 2, counts.Conversations)
	require.Positive(t, counts.Filtered)
	_ = code

	out, errOut, code = runValidateCmd(t, "", "--source", sampleCSV, "--limit-conversations", "1")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "[only the first 1 conversations]")
	require.Contains(t, out, "conversations  1\n")
	require.Contains(t, out, "  outside        ")

	_, errOut, code = runValidateCmd(t, "", "--source", sampleCSV, "--since", "March")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, "--since March: want a date (2024-03-01) or an RFC 3339 time")
}
