package cli

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// requireNoSecret fails if pw, or any run of 3 or more of its characters
// between the characters that break URLs and DSNs, shows in text.
func requireNoSecret(t *testing.T, text, pw string) {
	t.Helper()
	require.NotContains(t, text, pw)
	for _, f := range regexp.MustCompile(`[@:/?#'"\\ =%]+`).Split(pw, -1) {
		if len(f) >= 3 {
			require.NotContains(t, text, f, "a piece of the password shows")
		}
	}
}

// withPassword is the test database's URL with a password (the test
// server trusts local connections, so any password connects).
func withPassword(t *testing.T, dbURL, pw string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), pw)
	return u.String()
}

// badHeader is a CSV export whose header names no canonical column: the
// run fails on it after the database is open, and says how to resume.
func badHeader(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.csv")
	require.NoError(t, os.WriteFile(path, []byte("foo,bar\n1,2\n"), 0o600))
	return path
}

func TestResumeHintNamesTheVariablesNotThePasswords(t *testing.T) {
	c := newCLIEnv(t)
	const pw = "Hint-Pw-7c1e"
	dbURL := withPassword(t, c.vars[envDatabaseURL], pw)

	t.Run("--database-url given on the command line", func(t *testing.T) {
		out, errOut, code := c.run(t, "run", "--source", "csv:"+badHeader(t), "--database-url", dbURL, "--progress", "none", "--rate", "unlimited")
		require.Equal(t, ExitFatal, code, errOut)
		require.Regexp(t, `resume with: kommo-import run --source csv:\S+ --database-url "\$DATABASE_URL" --progress none --rate unlimited --run export.csv-\w+\n`, errOut)
		require.Contains(t, errOut, "first set DATABASE_URL to the value you gave --database-url (not shown here: it may hold a password)")
		requireNoSecret(t, out+errOut, pw)
	})
	t.Run("--database-url=... given as the environment holds it", func(t *testing.T) {
		cc := &cliEnv{sim: c.sim, vars: map[string]string{}}
		for k, v := range c.vars {
			cc.vars[k] = v
		}
		cc.vars[envDatabaseURL] = dbURL
		_, errOut, code := cc.run(t, "run", "--source", "csv:"+badHeader(t), "--database-url="+dbURL, "--progress", "none", "--rate", "unlimited")
		require.Equal(t, ExitFatal, code, errOut)
		require.Contains(t, errOut, `--database-url "$DATABASE_URL"`)
		require.NotContains(t, errOut, "first set", "the environment holds the value already")
		requireNoSecret(t, errOut, pw)
	})
	t.Run("--source-dsn", func(t *testing.T) {
		const dsnPw = "Dsn-Pw-41aa"
		dsn := withPassword(t, c.vars[envDatabaseURL], dsnPw)
		out, errOut, code := c.run(t, "run", "--source", "postgres", "--source-dsn", dsn, "--source-table", "no_such_table", "--progress", "none", "--rate", "unlimited")
		require.Equal(t, ExitFatal, code, errOut)
		require.Contains(t, errOut, `--source-dsn "$KOMMO_SOURCE_DSN"`)
		require.Contains(t, errOut, "first set KOMMO_SOURCE_DSN to the value you gave --source-dsn")
		requireNoSecret(t, out+errOut, dsnPw)

		// The DSN may come from the environment alone.
		cc := &cliEnv{sim: c.sim, vars: map[string]string{envSourceDSN: dsn}}
		for k, v := range c.vars {
			cc.vars[k] = v
		}
		_, errOut, code = cc.run(t, "run", "--source", "postgres", "--source-table", "no_such_table", "--progress", "none", "--rate", "unlimited")
		require.Equal(t, ExitFatal, code, errOut)
		require.Contains(t, errOut, "no_such_table")
		requireNoSecret(t, errOut, dsnPw)
	})
}

func TestHelpNeverShowsTheDatabaseURL(t *testing.T) {
	const pw = "Help-Pw-93d0"
	vars := map[string]string{envDatabaseURL: "postgres://kommo:" + pw + "@db:5432/kommo_import"}
	for _, cmd := range []string{"run", "retry", "verify", "status", "runs", "report"} {
		out, errOut, code := runWith(t, vars, cmd, "--help")
		require.Equal(t, ExitOK, code)
		require.Contains(t, out, "-database-url")
		requireNoSecret(t, out+errOut, pw)
	}
}

func TestDatabaseURLsInMessages(t *testing.T) {
	tests := []struct {
		name, url, pw string
		code          int
		want          []string
	}{
		{"password equal to the user name", "postgres://kommo:kommo@127.0.0.1:1/kommo_import?connect_timeout=2", "", ExitFatal,
			[]string{"connect to postgres://kommo@127.0.0.1:1/kommo_import: failed to connect to `user=kommo database=kommo_import`"}},
		{"password inside the host name", "postgres://app:local@localhost:1/localdb?connect_timeout=2", "", ExitFatal,
			[]string{"connect to postgres://app@localhost:1/localdb: "}},
		{"unescaped @ and :", "postgres://kommo:Sec@ret:TailPw@127.0.0.1:1/kommo_import", "Sec@ret:TailPw", ExitUsage,
			[]string{"DATABASE_URL: cannot parse the PostgreSQL URL (its text is not shown: it may hold a password): it is not a valid URL", "percent-encode"}},
		{"unescaped / and ?", "postgres://kommo:12/Sl?ashPw@127.0.0.1:1/kommo_import", "12/Sl?ashPw", ExitUsage,
			[]string{"it is not a valid URL"}},
		{"quotes and spaces, escaped", "postgres://kommo:Quo%27te%22%20Sp%20ace@127.0.0.1:1/kommo_import?connect_timeout=2", `Quo'te" Sp ace`, ExitFatal,
			[]string{"connect to postgres://kommo@127.0.0.1:1/kommo_import: "}},
		{"keyword=value with a broken quote", "host=127.0.0.1 port=1 user=kommo password='Broken QuotePw dbname=kommo", "Broken QuotePw", ExitUsage,
			[]string{"neither a postgres:// URL nor valid keyword=value settings", "single quotes"}},
		{"keyword=value, quoted", `host=127.0.0.1 port=1 user=kommo password='Spa ce\'Pw' dbname=kommo connect_timeout=2`, `Spa ce'Pw`, ExitFatal,
			[]string{"connect to postgres://kommo@127.0.0.1:1/kommo: "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runWith(t, map[string]string{envDatabaseURL: tt.url}, "status")
			require.Equal(t, tt.code, code, errOut)
			for _, s := range tt.want {
				require.Contains(t, errOut, s)
			}
			require.NotContains(t, errOut, "xxxxx", "nothing is substring-replaced")
			if tt.pw != "" {
				requireNoSecret(t, out+errOut, tt.pw)
			}
		})
	}
	t.Run("--source-dsn that does not parse", func(t *testing.T) {
		c := newCLIEnv(t)
		const pw = "Src@Pw:Tail99"
		_, errOut, code := c.run(t, "run", "--source", "postgres", "--source-dsn", "postgres://u:"+pw+"@db/x", "--source-table", "t")
		require.Equal(t, ExitUsage, code, errOut)
		require.Contains(t, errOut, "--source-dsn: cannot parse the PostgreSQL URL")
		requireNoSecret(t, errOut, pw)
		require.False(t, strings.Contains(errOut, "--source-dsn postgres"), errOut)
	})
}

// TestValidateRedactsASourceDSNThatDoesNotParse: pgx's own parse error
// quotes what follows a password with a space in it; validate printed
// "password=xxxxx cret x" where run redacted.
func TestValidateRedactsASourceDSNThatDoesNotParse(t *testing.T) {
	c := newCLIEnv(t)
	for _, dsn := range []string{
		"host=h password=se cret-Pw-9f1 x",
		"postgres://u:p@ss@h:5432/db?x=Sec-Pw-77b",
		"postgres://u:Sec-Pw-77b@h:notaport/db",
	} {
		for _, cmd := range []string{"validate", "run"} {
			args := []string{cmd, "--source", "postgres", "--source-dsn", dsn, "--source-table", "t"}
			if cmd == "run" {
				args = append(args, "--progress", "none", "--rate", "unlimited")
			}
			out, errOut, code := c.run(t, args...)
			require.NotEqual(t, ExitOK, code, errOut)
			require.Contains(t, out+errOut, "its text is not shown", "%s names what is wrong without quoting", cmd)
			requireNoSecret(t, out+errOut, "cret-Pw-9f1")
			requireNoSecret(t, out+errOut, "Sec-Pw-77b")
		}
	}
}
