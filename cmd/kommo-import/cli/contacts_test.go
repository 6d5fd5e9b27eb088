package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/sim"
)

// TestContactsFlagsAreChecked: the contact flags of run and contacts plan
// are refused with what to do before anything is read or sent.
func TestContactsFlagsAreChecked(t *testing.T) {
	t.Parallel()
	s, err := sim.New(sim.Options{ScopeID: cliScope, Secret: cliSecret, CRMToken: "tok"})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	badMap := filepath.Join(t.TempDir(), "map.csv")
	require.NoError(t, os.WriteFile(badMap, []byte("conversation_id,contact_id\nc1,abc\n"), 0o600))
	vars := map[string]string{envScopeID: cliScope, envAPIURL: srv.URL, envChannelSecret: cliSecret, envKommoToken: "tok",
		envDatabaseURL: "postgres://nobody@127.0.0.1:1/none"}
	run := []string{"run", "--source", sampleJSONL}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(run, "--create-contacts"), "--create-contacts works with --link-contacts"},
		{append(run, "--default-region", "RU"), "--default-region works with --link-contacts"},
		{append(run, "--link-contacts"), "matching contacts needs the account: give --kommo-domain"},
		{append(run, "--link-contacts", "--kommo-domain", srv.URL, "--default-region", "Narnia"), `--default-region: "NARNIA" is not a country code`},
		{append(run, "--link-contacts", "--kommo-domain", srv.URL, "--contacts-map", badMap), `map.csv:2: contact_id: "abc"`},
		{append(run, "--link-contacts", "--kommo-domain", srv.URL, "--crm-rate", "0"), "--crm-rate"},
		{append(run, "--link-contacts", "--kommo-domain", srv.URL), "does not link chats in the send path yet"},
		{[]string{"contacts"}, "want a subcommand: plan"},
		{[]string{"contacts", "plan", "--kommo-domain", srv.URL}, "--source is required"},
		{[]string{"contacts", "plan", "--source", sampleJSONL}, "give --kommo-domain"},
	} {
		_, stderr, code := runWith(t, vars, tc.args...)
		require.Equal(t, ExitUsage, code, "%v: %s", tc.args, stderr)
		require.Contains(t, stderr, tc.want, "%v", tc.args)
	}
	require.Zero(t, s.Stats().Accepted)

	// The help names every flag.
	out, _, code := runWith(t, vars, "run", "--help")
	require.Equal(t, ExitOK, code)
	for _, f := range []string{"-link-contacts", "-create-contacts", "-contacts-map", "-default-region", "-crm-rate"} {
		require.Contains(t, out, f)
	}
	out, _, code = runWith(t, vars, "contacts", "plan", "--help")
	require.Equal(t, ExitOK, code)
	require.True(t, strings.Contains(out, "ambiguous") && strings.Contains(out, "--contacts-map"))
}

// TestContactsPlanWritesTheCSV: the sample export against an account with
// one of its clients.
func TestContactsPlanWritesTheCSV(t *testing.T) {
	t.Parallel()
	cs, err := sim.LoadContacts(strings.NewReader(`{"id":77,"name":"Anna","custom_fields_values":[{"field_code":"EMAIL","values":[{"value":"ANNA@example.com"}]}]}`), "c")
	require.NoError(t, err)
	s, err := sim.New(sim.Options{ScopeID: cliScope, Secret: cliSecret, CRMToken: "tok", Contacts: cs})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	out := filepath.Join(t.TempDir(), "plan.csv")
	stdout, stderr, code := runWith(t, map[string]string{envKommoToken: "tok"}, "contacts", "plan", "--source", sampleJSONL, "--kommo-domain", srv.URL, "--out", out)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stdout, "wrote "+out)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Contains(t, string(b), "conversation_id,client_id,client_name,phone,email,outcome,method,contact_id,contact_name,candidates,messages,note\n")
	_, _, code = runWith(t, map[string]string{envKommoToken: "tok"}, "contacts", "plan", "--source", sampleJSONL, "--kommo-domain", srv.URL, "--out", out)
	require.Equal(t, ExitUsage, code, "an existing --out is not replaced without --force")
	require.Zero(t, s.Stats().ContactsCreated)
}
