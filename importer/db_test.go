package importer

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// secretFragments are the pieces of a password a careless redaction leaks:
// the whole and every run of 3 or more characters between the characters
// that break URLs and DSNs.
func secretFragments(pw string) []string {
	out := []string{pw}
	for _, f := range regexp.MustCompile(`[@:/?#'"\\ =%]+`).Split(pw, -1) {
		if len(f) >= 3 {
			out = append(out, f)
		}
	}
	return out
}

func requireNoSecret(t *testing.T, text, pw string) {
	t.Helper()
	for _, f := range secretFragments(pw) {
		require.NotContains(t, text, f, "the password (or a piece of it) shows")
	}
}

func TestConnectNamesTheServerWithoutThePassword(t *testing.T) {
	// Nothing listens on port 1: every one of these fails to connect, and
	// the error names the server from the parsed parts alone.
	tests := []struct {
		name, url, pw, target string
	}{
		{"password is the user's name", "postgres://kommo:kommo@127.0.0.1:1/kommo_import?connect_timeout=2", "kommo",
			"postgres://kommo@127.0.0.1:1/kommo_import"},
		{"password inside the host and database names", "postgres://app:local@localhost:1/localdb?connect_timeout=2", "local",
			"postgres://app@localhost:1/localdb"},
		{"escaped @ : / and space", "postgres://u:Pw%40Sec%3Aret%2Fxyz%20end@127.0.0.1:1/db?connect_timeout=2", "Pw@Sec:ret/xyz end",
			"postgres://u@127.0.0.1:1/db"},
		{"password in the query", "postgres://u@127.0.0.1:1/db?password=QueryPw99&connect_timeout=2", "QueryPw99",
			"postgres://u@127.0.0.1:1/db"},
		{"keyword=value", "host=127.0.0.1 port=1 user=kommo password=kommo dbname=kommo_import connect_timeout=2", "kommo",
			"postgres://kommo@127.0.0.1:1/kommo_import"},
		{"keyword=value, quoted with spaces and quotes", `host=127.0.0.1 port=1 user=u password='Sp ace\'Quo"te' dbname=d connect_timeout=2`, `Sp ace'Quo"te`,
			"postgres://u@127.0.0.1:1/d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Connect(context.Background(), tt.url, 1)
			require.Error(t, err)
			var ce *ConnectError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tt.target, ce.Target)
			msg := err.Error()
			require.True(t, strings.HasPrefix(msg, "connect to "+tt.target+": "), msg)
			require.NotContains(t, msg, "xxxxx", "nothing is substring-replaced")
			if !strings.Contains(tt.target, tt.pw) {
				requireNoSecret(t, msg, tt.pw)
			}
		})
	}
}

func TestUnparseableURLsAreNeverQuoted(t *testing.T) {
	tests := []struct {
		name, url, pw string
		isURL         bool
	}{
		{"unescaped @ then a bad port", "postgres://kommo:Sec@ret:Tail@db:port/kommo", "Sec@ret:Tail", true},
		{"unescaped @ and # (pgx would read a piece as the host)", "postgres://kommo:Pw@At#Hash@127.0.0.1:1/db", "Pw@At#Hash", true},
		{"unescaped / after digits (pgx would read a port and a database)", "postgres://kommo:12/SlashTail@127.0.0.1:1/db", "12/SlashTail", true},
		{"unescaped ? in the password", "postgres://kommo:Quest?ionMark@127.0.0.1:1/db", "Quest?ionMark", true},
		{"unescaped / in the password", "postgres://kommo:Slash/InPassword@db:5432/kommo", "Slash/InPassword", true},
		{"bad percent escape", "postgres://kommo:Pct%zzPassword@db:5432/kommo", "Pct%zzPassword", true},
		{"a bad setting", "postgres://kommo:GoodSecret@db:5432/kommo?sslmode=sometimes", "GoodSecret", true},
		{"keyword=value, broken quote", "host=db user=kommo password='Broken Quote dbname=kommo", "Broken Quote", false},
		{"keyword=value, no =", "host=db user=kommo password LooseSecret", "LooseSecret", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Connect(context.Background(), tt.url, 1)
			var ue *DatabaseURLError
			require.True(t, errors.As(err, &ue), "%T %v", err, err)
			require.Equal(t, tt.isURL, ue.URL)
			requireNoSecret(t, err.Error(), tt.pw)
			require.NotContains(t, err.Error(), "kommo", "not even the user name is quoted from a string that does not parse")
		})
	}
}
