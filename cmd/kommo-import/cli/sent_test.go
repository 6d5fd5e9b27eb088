package cli

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
)

// TestReportSent: report --sent lists every delivered message with Kommo's
// ids as the simulator gave them, its times, and the one loud message of
// each conversation, in CSV and in JSON lines.
func TestReportSent(t *testing.T) {
	c := newCLIEnv(t)
	_, errOut, code := c.run(t, "run", "--run", "r1", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
	ledger := map[string]string{} // msgid -> Kommo's message id
	for _, e := range c.sim.Ledger() {
		ledger[e.MsgID] = e.KommoMsgID
	}
	require.Len(t, ledger, 14)

	out := filepath.Join(t.TempDir(), "delivered.csv")
	_, errOut, code = c.run(t, "report", "--run", "r1", "--sent", "--output", out)
	require.Equal(t, ExitOK, code, errOut)
	f, err := os.Open(out)
	require.NoError(t, err)
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	require.Equal(t, sentColumns, rows[0])
	require.Len(t, rows, 15)
	loud := map[string]int{}
	for _, r := range rows[1:] {
		require.Equal(t, ledger[r[0]], r[2], "Kommo's message id of %s", r[0])
		require.NotEmpty(t, r[3], "chat id of %s", r[0])
		for _, ts := range r[4:6] {
			_, err := time.Parse(time.RFC3339Nano, ts)
			require.NoError(t, err)
		}
		if r[6] == "false" {
			loud[r[1]]++
		}
	}
	require.Equal(t, map[string]int{"conv-anna-001": 1, "conv-boris-002": 1, "conv-chen-003": 1}, loud)

	stdout, errOut, code := c.run(t, "report", "--run", "r1", "--sent", "--format", "jsonl")
	require.Equal(t, ExitOK, code, errOut)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	require.Len(t, lines, 14)
	var m importer.SentMessage
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &m))
	require.Equal(t, ledger[m.MsgID], m.KommoMsgID)
	require.False(t, m.SentAt.IsZero())
	require.Equal(t, rows[1][0], m.MsgID, "the same order in both formats")

	_, errOut, code = c.run(t, "report", "--run", "nope", "--sent")
	require.Equal(t, ExitUsage, code)
	require.Contains(t, errOut, `no such run "nope"`)
}
