package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/pgtest"
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

// TestRunLinksContacts: run --link-contacts over the sample export against
// an account with Anna's contact (her phone written another way) and two
// contacts with Chen's e-mail: Anna's chat is linked and sent all silent,
// Chen's is ambiguous and keeps the notify rule, Boris has nothing to match
// by; the summary, status and report --contacts say so, and the same
// command again does nothing.
func TestRunLinksContacts(t *testing.T) {
	cs, err := sim.LoadContacts(strings.NewReader(`{"id":11,"name":"Anna P.","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"8 (701) 123-45-67"}]}]}
{"id":12,"name":"Chen","custom_fields_values":[{"field_code":"EMAIL","values":[{"value":"CHEN.WEI@example.com"}]}]}
{"id":13,"name":"Chen Wei","custom_fields_values":[{"field_code":"EMAIL","values":[{"value":"chen.wei@example.com"}]}]}
{"id":14,"name":"Not Anna","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"+7 701 123 45 678"}]}]}`), "c")
	require.NoError(t, err)
	s, err := sim.New(sim.Options{ScopeID: cliScope, Secret: cliSecret, CRMToken: "tok", Contacts: cs})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := &cliEnv{sim: s, vars: map[string]string{envDatabaseURL: pgtest.URL(t), envScopeID: cliScope, envAPIURL: srv.URL,
		envChannelSecret: cliSecret, envKommoToken: "tok"}}
	args := []string{"run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--run", "linked",
		"--link-contacts", "--kommo-domain", srv.URL, "--default-region", "KZ", "--crm-rate", "50"}
	out, errOut, code := c.run(t, args...)
	require.Equal(t, ExitOK, code, "stderr: %s", errOut)
	require.Contains(t, out, "contacts:            1 chat linked to existing contacts, 0 linked to contacts created for them, 1 ambiguous, 1 unlinked")
	require.Contains(t, out, "report --run linked --contacts lists the ambiguous")
	require.Contains(t, out, "main API:            ")

	require.Equal(t, []sim.Link{{ChatID: s.Links()[0].ChatID, ContactID: 11, ConversationID: "conv-anna-001"}}, s.Links())
	loud := map[string]int{}
	for _, e := range s.Ledger() {
		if !e.Silent {
			loud[e.ConversationID]++
		}
	}
	require.Equal(t, map[string]int{"conv-boris-002": 1, "conv-chen-003": 1}, loud, "the linked chat is all silent")
	st := s.Stats()
	require.EqualValues(t, 2, st.IncomingLeads, "the unlinked chats make their incoming leads, the linked one none")
	require.Zero(t, st.LinksAfterMessages, "linked before its first message")
	require.Zero(t, st.ContactsCreated)

	out, _, code = c.run(t, "status", "--run", "linked")
	require.Equal(t, ExitOK, code)
	require.Contains(t, out, "contacts        1 chat linked to existing contacts")
	out, _, code = c.run(t, "report", "--run", "linked", "--contacts", "--format", "csv")
	require.Equal(t, ExitOK, code)
	require.Equal(t, strings.Join(contactLinkColumns, ",")+"\n"+
		"conv-anna-001,tg-100245,+77011234567,,linked,phone,11,Anna P.,,"+s.Links()[0].ChatID+",1,\n"+
		"conv-boris-002,tg-100377,,,unlinked,no_contact_info,,,,"+chatOf(s, "conv-boris-002")+",,the client has no phone or e-mail\n"+
		"conv-chen-003,tg-100512,+8613800138000,chen.wei@example.com,unlinked,ambiguous,,,12 Chen (email); 13 Chen Wei (email),"+
		chatOf(s, "conv-chen-003")+",,2 contacts have this phone or e-mail: settle it in --contacts-map (kommo-import report --contacts lists them)\n", out)

	contactCalls := func() int64 {
		by := s.Stats().CRMByEndpoint
		return by[sim.CRMContactsSearch] + by[sim.CRMContactsCreate] + by[sim.CRMLink] + by[sim.CRMLinks]
	}
	requests := contactCalls()
	_, errOut, code = c.run(t, args...)
	require.Equal(t, ExitOK, code, errOut)
	require.Equal(t, requests, contactCalls(), "a finished run makes no contact request (--kommo-domain reads the users, as without linking)")
	require.Len(t, s.Ledger(), 14)

	// Without --link-contacts, a run that links is not resumed unlinked.
	_, errOut, code = c.run(t, args[:9]...)
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, `run "linked" was started with --link-contacts, and cannot go on without --link-contacts`)
}

// chatOf is the simulator's chat id of a conversation.
func chatOf(s *sim.Server, conv string) string {
	for _, e := range s.Ledger() {
		if e.ConversationID == conv {
			return e.ChatID
		}
	}
	return ""
}

// TestRunLinkRefusedAtPreflight: a token that may not link stops the run
// before anything is written or sent, with the reason and what to do.
func TestRunLinkRefusedAtPreflight(t *testing.T) {
	s, err := sim.New(sim.Options{ScopeID: cliScope, Secret: cliSecret, CRMToken: "tok", CRMTokenNoLink: true})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := &cliEnv{sim: s, vars: map[string]string{envDatabaseURL: pgtest.URL(t), envScopeID: cliScope, envAPIURL: srv.URL,
		envChannelSecret: cliSecret, envKommoToken: "tok"}}
	_, errOut, code := c.run(t, "run", "--source", sampleJSONL, "--rate", "unlimited", "--progress", "none", "--run", "refused",
		"--link-contacts", "--kommo-domain", srv.URL)
	require.Equal(t, ExitUsage, code, errOut)
	require.Contains(t, errOut, "refused the token at the preflight, before anything was sent")
	require.Contains(t, errOut, "Try: linking chats to contacts needs a long-lived token of an admin")
	require.Zero(t, s.Stats().Accepted)
	_, errOut, code = c.run(t, "status", "--run", "refused")
	require.Equal(t, ExitUsage, code, "no run was written: %s", errOut)
}

// TestContactsPlanReadsAgentsAsRunDoes: an export whose agents' messages
// carry no ref_id reads as run reads it with --bot-id (or --users), not as
// a pile of invalid records ("skipped: 818 invalid records" in a rehearsal
// whose run used --bot-id, which contacts plan did not take).
func TestContactsPlanReadsAgentsAsRunDoes(t *testing.T) {
	t.Parallel()
	s, err := sim.New(sim.Options{ScopeID: cliScope, Secret: cliSecret, CRMToken: "tok"})
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	src := agentsFile(t)
	vars := map[string]string{envKommoToken: "tok"}
	plan := func(extra ...string) (string, int) {
		out := filepath.Join(t.TempDir(), "plan.csv")
		_, stderr, code := runWith(t, vars, append([]string{"contacts", "plan", "--source", src, "--kommo-domain", srv.URL, "--out", out}, extra...)...)
		return stderr, code
	}
	stderr, code := plan()
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stderr, "skipped: 5 invalid records in all")
	require.Contains(t, stderr, "--users and --bot-id read agents as run does")

	stderr, code = plan("--bot-id", "bot-1")
	require.Equal(t, ExitOK, code, stderr)
	require.NotContains(t, stderr, "skipped")

	users := filepath.Join(filepath.Dir(src), "users.csv")
	stderr, code = plan("--users", users)
	require.Equal(t, ExitOK, code, stderr)
	require.Contains(t, stderr, "skipped:", "agents --users does not map stay invalid")
}
