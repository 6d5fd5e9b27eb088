package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestConnectEnvFileThroughLinksAndReadOnlyFiles(t *testing.T) {
	t.Parallel()
	vars := connectEnv(t)
	connect := func(envFile string) (string, int) {
		_, errOut, code := runWith(t, vars, "connect", "--channel-id", "chan", "--account-id", accountAmojo, "--env-file", envFile)
		return errOut, code
	}
	dir := t.TempDir()

	t.Run("a symbolic link: its target is written, the link stays", func(t *testing.T) {
		target := filepath.Join(dir, "real.env")
		require.NoError(t, os.WriteFile(target, []byte("DATABASE_URL=x\n"), 0o640))
		link := filepath.Join(dir, "link.env")
		require.NoError(t, os.Symlink("real.env", link))
		errOut, code := connect(link)
		require.Equal(t, ExitOK, code, errOut)
		st, err := os.Lstat(link)
		require.NoError(t, err)
		require.NotZero(t, st.Mode()&os.ModeSymlink, "the link is still a link")
		b, err := os.ReadFile(target)
		require.NoError(t, err)
		require.Equal(t, "DATABASE_URL=x\nKOMMO_SCOPE_ID=chan_acct\n", string(b))
		st, err = os.Stat(target)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o640), st.Mode().Perm(), "the target keeps its mode")
		leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp"))
		require.Empty(t, leftovers)
	})
	t.Run("a read-only file is refused", func(t *testing.T) {
		ro := filepath.Join(dir, "ro.env")
		require.NoError(t, os.WriteFile(ro, []byte("KOMMO_SCOPE_ID=old\n"), 0o444))
		errOut, code := connect(ro)
		require.Equal(t, ExitFatal, code, errOut)
		require.Contains(t, errOut, "ro.env is read-only (mode 0444): it is not replaced")
		b, _ := os.ReadFile(ro)
		require.Equal(t, "KOMMO_SCOPE_ID=old\n", string(b))
	})
	t.Run("a dangling symbolic link is refused", func(t *testing.T) {
		link := filepath.Join(dir, "dangling.env")
		require.NoError(t, os.Symlink("nowhere/missing.env", link))
		errOut, code := connect(link)
		require.Equal(t, ExitFatal, code, errOut)
		require.Contains(t, errOut, "dangling.env is a symbolic link to nowhere/missing.env, which does not exist")
		_, err := os.Stat(filepath.Join(dir, "nowhere"))
		require.True(t, os.IsNotExist(err))
	})
}

func TestReportOutputNeverOverwritesUnasked(t *testing.T) {
	c := newCLIEnv(t)
	_, errOut, code := c.run(t, "run", "--run", "r1", "--source", messyJSONL, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitIncomplete, code, errOut)
	dir := t.TempDir()
	existing := filepath.Join(dir, "report.jsonl")
	require.NoError(t, os.WriteFile(existing, []byte("keep me\n"), 0o640))

	_, errOut, code = c.run(t, "report", "--run", "r1", "--output", existing)
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "--output: "+existing+" exists")
	require.Contains(t, errOut, "Try: give --force to replace it")
	b, _ := os.ReadFile(existing)
	require.Equal(t, "keep me\n", string(b))

	link := filepath.Join(dir, "link.jsonl")
	require.NoError(t, os.Symlink("report.jsonl", link))
	_, errOut, code = c.run(t, "report", "--run", "r1", "--output", link)
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "(a symbolic link to "+existing+") exists")

	_, errOut, code = c.run(t, "report", "--run", "r1", "--output", link, "--force")
	require.Equal(t, ExitIncomplete, code, errOut)
	b, _ = os.ReadFile(existing)
	require.Equal(t, 12, strings.Count(string(b), "\n"), "the target now holds the report")
	st, _ := os.Lstat(link)
	require.NotZero(t, st.Mode()&os.ModeSymlink)
	st, _ = os.Stat(existing)
	require.Equal(t, os.FileMode(0o640), st.Mode().Perm())

	dangling := filepath.Join(dir, "dangling.jsonl")
	require.NoError(t, os.Symlink("gone/report.jsonl", dangling))
	_, errOut, code = c.run(t, "report", "--run", "r1", "--output", dangling, "--force")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "which does not exist")

	ro := filepath.Join(dir, "ro.jsonl")
	require.NoError(t, os.WriteFile(ro, nil, 0o444))
	_, errOut, code = c.run(t, "report", "--run", "r1", "--output", ro, "--force")
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "is read-only")

	fresh := filepath.Join(dir, "new.jsonl")
	_, errOut, code = c.run(t, "report", "--run", "r1", "--output", fresh)
	require.Equal(t, ExitIncomplete, code, errOut)
	st, err := os.Stat(fresh)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
}

func TestSecretFileReadableByOthersIsWarnedAbout(t *testing.T) {
	c := newCLIEnv(t)
	delete(c.vars, envChannelSecret)
	dir := t.TempDir()
	loose := filepath.Join(dir, "secret")
	require.NoError(t, os.WriteFile(loose, []byte(cliSecret+"\n"), 0o644))
	require.NoError(t, os.Chmod(loose, 0o644))
	_, errOut, code := c.run(t, "run", "--source", sampleJSONL, "--channel-secret-file", loose, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, 1, strings.Count(errOut, "chmod 600 "+loose), errOut)
	require.NotContains(t, errOut, cliSecret)

	require.NoError(t, os.Chmod(loose, 0o600))
	_, errOut, code = c.run(t, "run", "--source", sampleJSONL, "--channel-secret-file", loose, "--rate", "unlimited", "--progress", "none")
	require.Equal(t, ExitOK, code, errOut)
	require.NotContains(t, errOut, "chmod")
}
