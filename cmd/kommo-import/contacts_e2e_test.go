package main_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/contactgen"
)

const crmToken = "e2e-crm-admin-token-3b9d"

// contactsEnv is a generated account served by kommo-sim and its export.
type contactsEnv struct {
	dir, export string
	acc         *contactgen.Account
	sim         *simProc
}

// newContactsEnv writes a generated account and export, and starts a
// simulator seeded with the account, its token from --token-file.
func newContactsEnv(t *testing.T, contacts, conversations int, simArgs ...string) *contactsEnv {
	t.Helper()
	return newContactsEnvWith(t, contactgen.Generate(19, contacts, conversations), simArgs...)
}

// newContactsEnvWith is newContactsEnv for a generated account.
func newContactsEnvWith(t *testing.T, acc *contactgen.Account, simArgs ...string) *contactsEnv {
	t.Helper()
	e := &contactsEnv{dir: t.TempDir(), acc: acc}
	e.export = filepath.Join(e.dir, "export.jsonl")
	cf, err := os.Create(filepath.Join(e.dir, "contacts.jsonl"))
	require.NoError(t, err)
	require.NoError(t, e.acc.WriteContacts(cf))
	require.NoError(t, cf.Close())
	xf, err := os.Create(e.export)
	require.NoError(t, err)
	require.NoError(t, e.acc.WriteMessages(xf, "7e1b5c2a-0000-4000-8000-00000000b0b0"))
	require.NoError(t, xf.Close())
	tokenFile := filepath.Join(e.dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(crmToken+"\n"), 0o600))
	e.sim = startSim(t, append([]string{"--contacts", filepath.Join(e.dir, "contacts.jsonl"), "--token-file", tokenFile}, simArgs...)...)
	return e
}

// kommoImport runs kommo-import with KOMMO_TOKEN set to token.
func (e *contactsEnv) kommoImport(t *testing.T, token string, args ...string) result {
	im := &importer{dbURL: "postgres://nobody@127.0.0.1:1/none", apiURL: e.sim.url}
	cmd := im.managed(t, args...)
	cmd.Env = append(im.cmd().Env, "KOMMO_TOKEN="+token)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, exit := err.(*exec.ExitError); exit {
		err = nil
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String(), err: err}
}

func readPlan(t *testing.T, path string) (header []string, rows map[string][]string, all [][]string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	rows = map[string][]string{}
	for _, r := range recs[1:] {
		rows[r[0]] = r
	}
	return recs[0], rows, recs
}

type planJSON struct {
	Conversations int   `json:"conversations"`
	Link          int   `json:"link"`
	Mapped        int   `json:"mapped"`
	Unlinked      int   `json:"unlinked"`
	Ambiguous     int   `json:"ambiguous"`
	NoContactInfo int   `json:"no_contact_info"`
	Requests      int64 `json:"requests"`
}

// TestE2EContactsPlan: the real binaries, 500 conversations against an
// account of 5,000 look-alike contacts: the plan's CSV says for each
// conversation exactly what the generator meant; nothing is written to the
// account; settling the ambiguous rows in the CSV and giving it back as
// --contacts-map links them.
func TestE2EContactsPlan(t *testing.T) {
	e := newContactsEnv(t, 5000, 500, "--crm-rate", "0")
	plan := filepath.Join(e.dir, "plan.csv")
	r := e.kommoImport(t, crmToken, "contacts", "plan", "--source", "jsonl:"+e.export, "--kommo-domain", e.sim.url,
		"--default-region", "ru", "--crm-rate", "200", "--out", plan, "--json")
	requireCode(t, exitDone, r)
	var sum planJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &sum), r.stdout)

	header, rows, all := readPlan(t, plan)
	require.Equal(t, []string{"conversation_id", "client_id", "client_name", "phone", "email", "outcome", "method",
		"contact_id", "contact_name", "candidates", "messages", "note"}, header)
	require.Len(t, rows, 500)
	count := map[string]int{}
	for _, c := range e.acc.Conversations {
		row := rows[c.ID]
		require.NotNil(t, row, c.ID)
		require.Equal(t, c.Want, row[5], "%s: %v", c.ID, row)
		count[c.Want]++
		switch c.Want {
		case contactgen.Link:
			require.Equal(t, strconv.FormatInt(c.WantContact, 10), row[7], c.ID)
			require.Equal(t, c.WantMethod, row[6], c.ID)
			require.Equal(t, c.ClientName, row[8], c.ID)
		case contactgen.Ambiguous:
			var ids []string
			for _, id := range c.WantCands {
				ids = append(ids, strconv.FormatInt(id, 10))
			}
			var got []string
			for _, cand := range strings.Split(row[9], "; ") {
				got = append(got, strings.Fields(cand)[0])
			}
			require.Equal(t, ids, got, c.ID)
			require.Empty(t, row[7])
		default:
			require.Empty(t, row[7], c.ID)
		}
	}
	require.Equal(t, planJSON{Conversations: 500, Link: count[contactgen.Link], Unlinked: count[contactgen.Unlinked],
		Ambiguous: count[contactgen.Ambiguous], NoContactInfo: count[contactgen.NoContactInfo], Requests: sum.Requests}, sum)

	st := e.sim.stats(t)
	require.Zero(t, st.ContactsCreated, "the plan created nothing")
	require.Zero(t, st.LinksCreated)
	require.Zero(t, st.Accepted, "and sent nothing")
	require.Equal(t, sum.Requests, st.CRMRequests, "every request is counted in the summary")
	require.Less(t, st.CRMByEndpoint["contacts_search"], int64(2*500), "one search per phone and per e-mail, not per conversation")

	// Settle the ambiguous rows by hand: the second candidate of each.
	settled := map[string]string{}
	for _, rec := range all[1:] {
		if rec[5] == contactgen.Ambiguous {
			rec[7] = strings.Fields(strings.Split(rec[9], "; ")[1])[0]
			settled[rec[0]] = rec[7]
		}
	}
	mapFile := filepath.Join(e.dir, "map.csv")
	mf, err := os.Create(mapFile)
	require.NoError(t, err)
	require.NoError(t, csv.NewWriter(mf).WriteAll(all))
	require.NoError(t, mf.Close())
	plan2 := filepath.Join(e.dir, "plan2.csv")
	r = e.kommoImport(t, crmToken, "contacts", "plan", "--source", e.export, "--kommo-domain", e.sim.url,
		"--default-region", "RU", "--crm-rate", "200", "--contacts-map", mapFile, "--out", plan2)
	requireCode(t, exitDone, r)
	// Every row with a contact_id is a map entry: the linked ones and the settled.
	require.Contains(t, r.stdout, fmt.Sprintf("(%d of them by --contacts-map)", count[contactgen.Link]+count[contactgen.Ambiguous]), r.stdout)
	_, rows2, _ := readPlan(t, plan2)
	for conv, id := range settled {
		require.Equal(t, []string{"link", "map", id}, rows2[conv][5:8], conv)
	}
	require.Regexp(t, `ambiguous +0 `, r.stdout)
}

// TestE2EContactsRateLimitedAndRefused: a 429 of the main API is waited out;
// a refused token, and a token that may not link, stop with the reason and
// what to do, before anything is sent.
func TestE2EContactsRateLimitedAndRefused(t *testing.T) {
	e := newContactsEnv(t, 200, 12, "--crm-rate", "4", "--crm-retry-after", "1s", "--crm-token-no-link")
	plan := filepath.Join(e.dir, "plan.csv")
	r := e.kommoImport(t, crmToken, "contacts", "plan", "--source", e.export, "--kommo-domain", e.sim.url,
		"--default-region", "RU", "--crm-rate", "50", "--out", plan)
	requireCode(t, exitDone, r)
	require.Contains(t, r.stderr, "rate limited by Kommo's main API: pausing its requests")
	require.Contains(t, r.stderr, "run --link-contacts would be refused with this token")
	require.Contains(t, r.stdout, "warning: this token may not link chats")
	st := e.sim.stats(t)
	require.NotZero(t, st.CRMRateLimited)
	require.Zero(t, st.RateLimited, "the Chats API's limit is another")
	_, rows, _ := readPlan(t, plan)
	require.Len(t, rows, 12)

	// run --link-contacts with that token: refused at the preflight, naming
	// the cause, before the run is written or a message sent.
	im := newImporter(t, e.sim)
	r = e.linkRunToken(t, im, crmToken, "run", "--source", e.export, "--run", "refused", "--link-contacts", "--kommo-domain", e.sim.url, "--default-region", "RU")
	requireCode(t, 2, r)
	require.Contains(t, r.stderr, "403")
	require.Contains(t, r.stderr, "refused the token at the preflight, before anything was sent")
	require.Contains(t, r.stderr, "the integration whose uuid is set in the chat channel's settings")
	require.Contains(t, r.stderr, "Generate the token in that integration, as an admin")
	require.Zero(t, e.sim.stats(t).Accepted, "nothing sent")
	requireCode(t, 2, im.run(t, "status", "--run", "refused"))

	// A token the account does not know: 401, for plan and run alike.
	r = e.kommoImport(t, "not-"+crmToken, "contacts", "plan", "--source", e.export, "--kommo-domain", e.sim.url, "--out", filepath.Join(e.dir, "p.csv"))
	requireCode(t, 2, r)
	require.Contains(t, r.stderr, "401")
	require.Contains(t, r.stderr, "wrong, expired or revoked")
	require.NotContains(t, r.stderr+r.stdout, crmToken, "the token is never printed")
	r = e.linkRunToken(t, im, "not-"+crmToken, "run", "--source", e.export, "--run", "refused", "--link-contacts", "--kommo-domain", e.sim.url)
	requireCode(t, 2, r)
	require.Contains(t, r.stderr, "401")
	require.Contains(t, r.stderr, "wrong, expired or revoked")
	require.NotContains(t, r.stderr+r.stdout, crmToken, "the token is never printed")
	require.NotContains(t, dumpDatabase(t, im.dbURL), crmToken, "nor stored")
	requireCode(t, 2, im.run(t, "status", "--run", "refused"))
	require.NoFileExists(t, filepath.Join(e.dir, "p.csv"), "no plan written on a refusal")
	require.Zero(t, e.sim.stats(t).Accepted)
}
