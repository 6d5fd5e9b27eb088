package main_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	kimport "github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/contactgen"
	"github.com/kommo-import/kommo-import/internal/ledgertest"
	"github.com/kommo-import/kommo-import/internal/sim"
)

// The send path's contact linking with the real binaries: kommo-sim seeded
// with a generated account of look-alike contacts, kommo-import run
// --link-contacts against it, killed, rate limited and refused.

// linkCmd makes a kommo-import command of im with the account's token.
func (e *contactsEnv) linkCmd(t *testing.T, im *importer, args ...string) *exec.Cmd {
	t.Helper()
	return e.linkCmdToken(t, im, crmToken, args...)
}

func (e *contactsEnv) linkCmdToken(t *testing.T, im *importer, token string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := im.managed(t, args...)
	cmd.Env = append(cmd.Env, "KOMMO_TOKEN="+token)
	return cmd
}

// linkRun runs a kommo-import command of im with the account's token.
func (e *contactsEnv) linkRun(t *testing.T, im *importer, args ...string) result {
	t.Helper()
	return e.linkRunToken(t, im, crmToken, args...)
}

func (e *contactsEnv) linkRunToken(t *testing.T, im *importer, token string, args ...string) result {
	t.Helper()
	cmd := e.linkCmdToken(t, im, token, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, exit := err.(*exec.ExitError); exit {
		err = nil
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String(), err: err}
}

// linkArgs is a run of the env's export with linking against its simulator.
func (e *contactsEnv) linkArgs(extra ...string) []string {
	return append(runArgs("jsonl:"+e.export, "--link-contacts", "--kommo-domain", e.sim.url, "--default-region", "RU"), extra...)
}

// exportMsgs reads the messages of a JSONL export.
func exportMsgs(t *testing.T, path string) []ledgertest.Msg {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []ledgertest.Msg
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var p struct {
			MsgID string `json:"msgid"`
			Conv  string `json:"conversation_id"`
			Msec  int64  `json:"msec_timestamp"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &p))
		out = append(out, ledgertest.Msg{Conv: p.Conv, ID: p.MsgID, Msec: p.Msec})
	}
	require.NoError(t, sc.Err())
	return out
}

// simLinks reads GET /_sim/links: the contact of each linked chat, by
// conversation; a chat listed twice fails.
func (e *contactsEnv) simLinks(t *testing.T) map[string]int64 {
	t.Helper()
	resp, err := http.Get(e.sim.url + "/_sim/links")
	require.NoError(t, err)
	defer resp.Body.Close()
	var list []sim.Link
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	links := map[string]int64{}
	for _, l := range list {
		_, dup := links[l.ConversationID]
		require.False(t, dup, "%s linked twice", l.ConversationID)
		links[l.ConversationID] = l.ContactID
	}
	return links
}

// requireLinked checks the account and the ledger against what the
// generator meant: a chat whose client matches exactly one contact is
// linked to it (settled: the operator's choice for some ambiguous ones);
// with create, a client no contact matches gets one contact (its chats
// share it); the others stay unlinked. Exactly one link a linked chat, made
// before its first message; no contact made twice. Every message once, in
// order; a linked chat all silent (no incoming lead); an unlinked one's
// newest loud, one incoming lead each.
func (e *contactsEnv) requireLinked(t *testing.T, create bool, settled map[string]int64) {
	t.Helper()
	links := e.simLinks(t)
	createdFor := map[string]int64{}
	loud := map[string]string{}
	newest := ledgertest.Newest(exportMsgs(t, e.export))
	for _, c := range e.acc.Conversations {
		got, linked := links[c.ID]
		switch {
		case settled[c.ID] != 0:
			require.Equal(t, settled[c.ID], got, "%s: the operator's choice", c.ID)
		case c.Want == contactgen.Link:
			require.Equal(t, c.WantContact, got, c.ID)
		case c.Want == contactgen.Unlinked && create:
			require.True(t, linked, "%s: a contact was created and linked", c.ID)
			if prev, ok := createdFor[c.ClientID]; ok {
				require.Equal(t, prev, got, "%s: the client's chats share its contact", c.ID)
			}
			createdFor[c.ClientID] = got
		default:
			require.False(t, linked, "%s (%s) stays unlinked", c.ID, c.Want)
			loud[c.ID] = newest[c.ID]
		}
	}
	st := e.sim.stats(t)
	require.EqualValues(t, len(createdFor), st.ContactsCreated, "one contact a client no contact matched, none twice")
	require.EqualValues(t, len(links), st.LinksCreated, "one link a linked chat")
	require.Zero(t, st.LinksChanged+st.LinksRepeated, "no link posted over one that exists")
	require.Zero(t, st.LinksAfterMessages, "every chat linked before its first message")
	ledgertest.Check(t, ledgertest.ReadLedger(t, e.sim.ledger), exportMsgs(t, e.export), loud)
	require.Zero(t, st.Duplicates)
	require.EqualValues(t, len(loud), st.IncomingLeads, "incoming leads only for the unlinked chats")
}

// TestE2ELinkContacts: 500 conversations against 5,000 look-alike
// contacts, the walk-through of the README: plan, settle half the ambiguous
// in the plan CSV (the second candidate), run with it as --contacts-map and
// without --create-contacts. Each chat whose client matches exactly one
// contact is linked to it, each settled one to the chosen candidate, and
// sent all silent; no contact is created; the ambiguous left are listed by
// report --contacts with their candidates and sent unlinked under --notify.
// (--create-contacts: TestE2ELinkContactsCrashAndRestart.)
func TestE2ELinkContacts(t *testing.T) {
	t.Parallel()
	e := newContactsEnv(t, 5000, 500, "--rate", "0", "--crm-rate", "0")
	im := newImporter(t, e.sim)
	plan := filepath.Join(e.dir, "plan.csv")
	r := e.kommoImport(t, crmToken, "contacts", "plan", "--source", "jsonl:"+e.export, "--kommo-domain", e.sim.url,
		"--default-region", "RU", "--crm-rate", "60", "--out", plan)
	requireCode(t, exitDone, r)
	_, _, all := readPlan(t, plan)
	settled := map[string]int64{}
	left := map[string][]int64{} // the ambiguous not settled, with their candidates
	for _, c := range e.acc.Conversations {
		if c.Want == contactgen.Ambiguous {
			left[c.ID] = c.WantCands
		}
	}
	for i, rec := range all[1:] {
		if rec[5] == contactgen.Ambiguous && i%2 == 0 {
			rec[7] = strings.Fields(strings.Split(rec[9], "; ")[1])[0]
			id, err := strconv.ParseInt(rec[7], 10, 64)
			require.NoError(t, err)
			settled[rec[0]] = id
			delete(left, rec[0])
		}
	}
	require.NotEmpty(t, settled)
	require.NotEmpty(t, left)
	mf, err := os.Create(plan)
	require.NoError(t, err)
	require.NoError(t, csv.NewWriter(mf).WriteAll(all))
	require.NoError(t, mf.Close())

	r = e.linkRun(t, im, e.linkArgs("--rate", "unlimited", "--crm-rate", "60", "--contacts-map", plan)...)
	requireCode(t, exitDone, r)
	sum := summary(t, r)
	e.requireLinked(t, false, settled)

	want := kimport.ContactLinks{Mode: "link", ByMethod: sum.Contacts.ByMethod}
	for _, c := range e.acc.Conversations {
		switch {
		case c.Want == contactgen.Link || settled[c.ID] != 0:
			want.Linked++
		case c.Want == contactgen.Ambiguous:
			want.Ambiguous++
		default:
			want.Unlinked++
		}
	}
	require.Equal(t, want, *sum.Contacts)
	require.EqualValues(t, want.Linked, sum.Contacts.ByMethod["map"], "every row of the plan with a contact is a map entry")
	require.Positive(t, sum.CRMRequests)

	rep := im.run(t, "report", "--run", e2eRun, "--contacts", "--format", "jsonl")
	requireCode(t, exitDone, rep)
	listed := 0
	for _, line := range strings.Split(strings.TrimSpace(rep.stdout), "\n") {
		var l kimport.ContactLink
		require.NoError(t, json.Unmarshal([]byte(line), &l), line)
		listed++
		if l.Method != "ambiguous" {
			continue
		}
		var ids []int64
		for _, c := range l.Candidates {
			ids = append(ids, c.ID)
		}
		require.Equal(t, left[l.ConversationID], ids, l.ConversationID)
		delete(left, l.ConversationID)
	}
	require.Equal(t, 500, listed)
	require.Empty(t, left, "every ambiguous chat left listed with its candidates")
}

// linkIntents counts the run's intents in the database: links and contact
// creations whose request may be on its way.
func linkIntents(t *testing.T, dbURL string) (linking, creating int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM kommo_import_contact_links WHERE state = 'linking'),
		(SELECT count(*) FROM kommo_import_contact_matches WHERE state = 'creating')`).Scan(&linking, &creating)
	if err != nil {
		return 0, 0 // no schema yet
	}
	return linking, creating
}

// TestE2ELinkContactsCrashAndRestart kills kommo-import with SIGKILL at
// random moments while it links 500 conversations (creating contacts for
// the clients none matches) and restarts it with the same command until it
// finishes: no contact is created twice, no chat linked twice or left
// unlinked, every message arrives once, in order, linked chats all silent.
func TestE2ELinkContactsCrashAndRestart(t *testing.T) {
	t.Parallel()
	e := newContactsEnv(t, 5000, 500, "--rate", "0", "--crm-rate", "0", "--latency", "3ms",
		"--crm-faults", "500=0.03,accept-500=0.03,accept-drop=0.03", "--seed", "29")
	im := newImporter(t, e.sim)
	args := e.linkArgs("--rate", "unlimited", "--crm-rate", "40", "--create-contacts", "--workers", "6", "--request-timeout", "2s")

	r := rand.New(rand.NewPCG(29, 1))
	kills, linkingKills, creatingKills := 0, 0, 0
	for kills < 25 && (kills < 10 || e.sim.stats(t).ContactsCreated < 10) {
		cmd := e.linkCmd(t, im, args...)
		var errOut syncBuffer
		cmd.Stderr = &errOut
		require.NoError(t, cmd.Start())
		var waitErr error
		exited := make(chan struct{})
		go func() { waitErr = cmd.Wait(); close(exited) }()
		// Once this process has made a few links or contacts, a moment later.
		before := e.sim.stats(t)
		progress := int64(2 + r.IntN(30))
		require.Eventually(t, func() bool {
			select {
			case <-exited:
				return true
			default:
			}
			st, err := e.sim.statsErr()
			return err == nil && st.LinksCreated+st.ContactsCreated >= before.LinksCreated+before.ContactsCreated+progress
		}, time.Minute, 2*time.Millisecond, "the restarted importer linked nothing: %s", errOut.String())
		sleepUnless(exited, time.Duration(r.IntN(300))*time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if cmd.ProcessState.Exited() {
			require.NoError(t, waitErr, "exit %d before the kill: %s", cmd.ProcessState.ExitCode(), errOut.String())
			break
		}
		kills++
		linking, creating := linkIntents(t, im.dbURL)
		if linking > 0 {
			linkingKills++
		}
		if creating > 0 {
			creatingKills++
		}
	}
	st := e.sim.stats(t)
	t.Logf("%d kills, %d of them with a link in doubt, %d with a contact's creation in doubt; by then %d links, %d contacts created, %d messages",
		kills, linkingKills, creatingKills, st.LinksCreated, st.ContactsCreated, st.Accepted)
	require.GreaterOrEqual(t, kills, 10, "killed often enough to mean something")
	require.GreaterOrEqual(t, linkingKills, 2, "some kills left a link in doubt")
	require.GreaterOrEqual(t, creatingKills, 1, "some kills left a contact's creation in doubt")

	final := e.linkRun(t, im, args...)
	requireCode(t, exitDone, final)
	e.requireLinked(t, true, nil)
	require.Zero(t, summary(t, final).Contacts.InDoubt)
}

// TestE2ELinkContactsRateLimited: the main API allows 4 requests a second
// and the importer asks for 10: its 429 pauses the main API's requests, of
// every worker, for its retry_after, and not the Chats API's: the chats
// linked already keep sending during the pause (the ledger's times), while
// the conversations that need a main-API request wait; the importer meets
// the limit a few times, not once per request.
func TestE2ELinkContactsRateLimited(t *testing.T) {
	t.Parallel()
	acc := contactgen.Generate(31, 400, 40)
	for i := range acc.Conversations {
		acc.Conversations[i].Messages = 30
	}
	e := newContactsEnvWith(t, acc, "--rate", "40", "--crm-rate", "4", "--crm-retry-after", "5s")
	im := newImporter(t, e.sim)
	r := e.linkRun(t, im, e.linkArgs("--rate", "30", "--crm-rate", "10", "--workers", "8")...)
	requireCode(t, exitDone, r)
	sum := summary(t, r)
	e.requireLinked(t, false, nil)

	st := e.sim.stats(t)
	require.Positive(t, st.CRMRateLimited)
	require.LessOrEqual(t, st.CRMRateLimited, int64(6), "the pause held every worker's main-API requests")
	require.Equal(t, st.CRMRateLimited, sum.CRMRateLimited)
	require.Zero(t, st.RateLimited, "the Chats API's rate is another")
	pause := st.CRMFirstRateLimited
	sentDuring := 0
	for _, le := range ledgertest.ReadLedger(t, e.sim.ledger) {
		if le.ReceivedAt.After(pause.Add(500*time.Millisecond)) && le.ReceivedAt.Before(pause.Add(4500*time.Millisecond)) {
			sentDuring++
		}
	}
	t.Logf("main API: %d requests, %d answered 429 (first at %s); %d messages sent in the 4 s inside its first 5 s pause",
		st.CRMRequests, st.CRMRateLimited, pause.Format(time.StampMilli), sentDuring)
	// Were the Chats API paused too, none would be; 120 at most. Under make
	// test-under-load (a load of 7) 25 were, against the 40 this asked.
	require.GreaterOrEqual(t, sentDuring, 10, "the linked chats kept sending during the main API's pause")
}
