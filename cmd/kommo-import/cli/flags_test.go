package cli

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMistakesGetOneLineAndAPointerToHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"misspelt flag", []string{"run", "--sorce", "x.csv"},
			"kommo-import: unknown flag --sorce: did you mean --source?\nTry: kommo-import run --help lists its flags\n"},
		{"one dash", []string{"status", "-jsn"},
			"kommo-import: unknown flag --jsn: did you mean --json?\nTry: kommo-import status --help lists its flags\n"},
		{"nothing near", []string{"report", "--frobnicate"},
			"kommo-import: unknown flag --frobnicate\nTry: kommo-import report --help lists its flags\n"},
		{"flag without its value", []string{"run", "--source"},
			"kommo-import: --source needs a value\nTry: kommo-import run --help lists its flags\n"},
		{"bad value", []string{"run", "--workers", "many"},
			"kommo-import: --workers many: not a whole number\nTry: kommo-import run --help lists its flags\n"},
		{"misspelt command", []string{"rn", "--source", "x.csv"},
			"kommo-import: unknown command \"rn\": did you mean run?\nTry: kommo-import --help lists the commands\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runWith(t, nil, tt.args...)
			require.Equal(t, ExitUsage, code)
			require.Empty(t, out)
			require.Equal(t, tt.want, errOut)
		})
	}
}

func TestVersionComesFromTheBuild(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		out, _, code := runWith(t, nil, arg)
		require.Equal(t, ExitOK, code)
		require.True(t, strings.HasPrefix(out, "kommo-import "), out)
		require.NotContains(t, out, " dev")
		require.Contains(t, out, runtime.Version())
	}
	old := Version
	Version = "v1.2.3"
	t.Cleanup(func() { Version = old })
	out, _, _ := runWith(t, nil, "--version")
	require.True(t, strings.HasPrefix(out, "kommo-import v1.2.3"), "the -ldflags override wins: %s", out)

	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}, {Key: "vcs.time", Value: "2025-03-01T12:00:00Z"}, {Key: "vcs.modified", Value: "true"}}
	for _, tt := range []struct {
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "kommo-import v1.4.0, "},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20250301120000-0123abc+dirty"}, Settings: vcs},
			"kommo-import v0.0.0-20250301120000-0123abc+dirty, revision 0123abc of 2025-03-01T12:00:00Z with local changes, "},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs[:2]}, "kommo-import revision 0123abc of 2025-03-01T12:00:00Z, "},
		{"v2.0.0", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs[:1]}, "kommo-import v2.0.0, revision 0123abc, "},
		{"", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "kommo-import (unknown version: built without version control information), "},
		{"", nil, "kommo-import (unknown version: built without version control information), "},
	} {
		require.Equal(t, tt.want+runtime.Version(), formatVersion(tt.ldflags, tt.bi))
	}
}

func TestFlagValuesOutOfRangeAreRefused(t *testing.T) {
	c := newCLIEnv(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--rate", "NaN"}, "--rate NaN: must be a finite number"},
		{[]string{"--rate", "Inf"}, "--rate Inf: must be a finite number"},
		{[]string{"--rate", "0"}, "--rate 0: must be above 0"},
		{[]string{"--rate", "-1"}, "--rate -1: must be above 0"},
		{[]string{"--rate", "-5"}, "--rate -5: must be above 0"},
		{[]string{"--rate", "1e400"}, "--rate 1e400: must be a finite number"},
		{[]string{"--rate", "unlimited", "--api-url", "https://amojo.kommo.com"}, "--rate unlimited is only for a Chats API on this machine"},
		{[]string{"--max-attempts", "0"}, "--max-attempts 0: must be 1 to 100"},
		{[]string{"--max-attempts", "-3"}, "--max-attempts -3: must be 1 to 100"},
		{[]string{"--request-timeout", "0"}, "--request-timeout 0: must be 100ms to 10m"},
		{[]string{"--request-timeout", "-1s"}, "--request-timeout -1s: must be 100ms to 10m"},
		{[]string{"--workers", "0"}, "--workers 0: must be 1 to 256"},
		{[]string{"--stage-batch", "0"}, "--stage-batch 0: must be 1 to 1000000"},
		{[]string{"--reconcile-wait", "-1s"}, "--reconcile-wait -1s: must be 100ms to 1h"},
		// Accepted by the flag and silently turned into 10s by the importer, once.
		{[]string{"--reconcile-wait", "0"}, "--reconcile-wait 0: must be 100ms to 1h"},
		{[]string{"--progress-interval", "0s"}, "--progress-interval 0s: must be 100ms to 1h"},
		{[]string{"--db-outage-limit", "0"}, "--db-outage-limit 0: must be 1s to 24h"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, errOut, code := c.run(t, append([]string{"run", "--source", sampleJSONL, "--progress", "none"}, tt.args...)...)
			require.Equal(t, ExitUsage, code, errOut)
			require.Contains(t, errOut, tt.want)
		})
	}
	require.Empty(t, c.sim.Ledger(), "nothing was sent")

	// The ranges are in --help.
	out, _, code := c.run(t, "run", "--help")
	require.Equal(t, ExitOK, code)
	for _, s := range []string{"(1 to 100)", "(1 to 256)", "(100ms to 10m)", "(100ms to 1h)", "(1s to 24h)", "unlimited: no limit, only with an --api-url on this machine"} {
		require.Contains(t, out, s)
	}
	// unlimited is for kommo-sim on this machine, which the test's simulator is.
	_, errOut, code := c.run(t, "run", "--source", sampleJSONL, "--progress", "none", "--rate", "unlimited")
	require.Equal(t, ExitOK, code, errOut)
}

func TestNotifyIsExplainedInHelp(t *testing.T) {
	out, _, code := runWith(t, nil, "run", "--help")
	require.Equal(t, ExitOK, code)
	for _, s := range []string{
		"newest: the newest message, as Kommo advises, even when it is a manager's reply",
		"newest-incoming: the newest message from the client",
		"none: every message silent",
	} {
		require.Contains(t, out, s)
	}
}
