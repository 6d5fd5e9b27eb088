package cli

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryFlagHasAConfigKey: the config keys are the flags of every
// command, derived from their flag sets; each must be classified (a path
// resolves against the file's folder, a connection string may hold no
// password), so a new flag fails here until someone decides.
func TestEveryFlagHasAConfigKey(t *testing.T) {
	sets := commandFlagSets()
	var names []string
	for _, fs := range sets {
		names = append(names, fs.Name())
		fs.VisitAll(func(f *flag.Flag) {
			_, ok := configKeys[f.Name]
			require.True(t, ok, "kommo-import %s --%s has no config key: add it to configKeys (a path? a connection string?)", fs.Name(), f.Name)
		})
		require.NotNil(t, fs.Lookup(configFlag), "kommo-import %s has no --config", fs.Name())
	}
	for _, c := range []string{"run", "validate", "status", "runs", "runs abandon", "runs delete", "report", "retry", "verify", "connect", "migrate"} {
		require.Contains(t, names, c)
	}
	// Every key names a flag some command has: no stale key.
	known := allConfigKeys()
	for k := range configKeys {
		require.True(t, known.flags[k], "configKeys has %q, which no command has", k)
	}
}

func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	p := filepath.Join(dir, "kommo-import.toml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

// TestConfigFile: a config file gives the flags, relative paths from its
// folder; the command line overrides it; a key of another command is left
// to it; unknown keys, secrets and passwords are refused naming the file and
// the key.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	csv, err := os.ReadFile(sampleCSV)
	require.NoError(t, err)
	// Their column names, mapped back by the file's map table.
	csv = []byte(strings.Replace(string(csv), "msgid", "message_id", 1))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "export.csv"), csv, 0o600))
	cfg := writeConfig(t, dir, `
source = "csv:export.csv"        # next to this file, not the working directory
map = { msgid = "message_id" }
notify = "none"                   # run's: validate leaves it
limit-conversations = 2

[validate]
limit-conversations = 1
`)
	out, errOut, code := runValidateCmd(t, "", "--config", cfg)
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, filepath.Join(dir, "export.csv")+" [only the first 1 conversations]")
	require.Contains(t, out, "conversations  1\n", "the [validate] table overrides the top level")

	out, errOut, code = runValidateCmd(t, "", "--config", cfg, "--limit-conversations", "3")
	require.Equal(t, ExitOK, code, errOut)
	require.Contains(t, out, "[only the first 3 conversations]", "the command line overrides the file")

	for _, tt := range []struct{ name, text, want string }{
		{"unknown key", `sorce = "x.csv"`, `--config ` + dir + `/kommo-import.toml: sorce: unknown key: did you mean source?`},
		{"unknown in a table", "[run]\nworkrs = 3", "run.workrs: kommo-import run has no such flag: did you mean workers?"},
		{"the channel secret", `channel-secret = "s3cr3t-value"`, "channel-secret: secrets stay out of files: give the channel secret in env KOMMO_CHANNEL_SECRET"},
		{"a token", "[run]\nkommo-token = \"abc\"", "run.kommo-token: secrets stay out of files"},
		{"a password in the database URL", `database-url = "postgres://u:s3cr3t-value@db/k"`, "database-url: holds a password, which stays out of files"},
		{"a password keyword", `source-dsn = "host=db password=s3cr3t-value"`, "source-dsn: holds a password"},
		{"a config in a config", `config = "other.toml"`, "config: a config file cannot name another"},
		{"a bad value", `limit-conversations = 0`, "limit-conversations: 0: want a whole number above 0"},
		{"not TOML", `source = csv:x`, "kommo-import.toml: line 1:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			p := writeConfig(t, d, tt.text)
			_, errOut, code := runValidateCmd(t, "", "--config", p, "--source", sampleCSV)
			require.Equal(t, ExitUsage, code, errOut)
			require.Contains(t, errOut, strings.ReplaceAll(tt.want, dir, d))
			require.NotContains(t, errOut, "s3cr3t-value")
		})
	}
}
