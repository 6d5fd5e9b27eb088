package importer_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/contacts"
	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/internal/contactgen"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/kommoapi"
	"github.com/kommo-import/kommo-import/signer"
)

const crmToken = signer.Secret("importer-test-crm-token-5c1d")

// linkEnv is a generated account served by the simulator, and its export.
type linkEnv struct {
	*harness
	acc    *contactgen.Account
	export string
}

func newLinkEnv(t *testing.T, seed uint64, nContacts, nConvs int, opts sim.Options) *linkEnv {
	t.Helper()
	acc := contactgen.Generate(seed, nContacts, nConvs)
	var cb bytes.Buffer
	require.NoError(t, acc.WriteContacts(&cb))
	cs, err := sim.LoadContacts(&cb, "contacts.jsonl")
	require.NoError(t, err)
	opts.CRMToken, opts.Contacts = crmToken, cs
	e := &linkEnv{harness: newHarness(t, opts), acc: acc, export: filepath.Join(t.TempDir(), "export.jsonl")}
	f, err := os.Create(e.export)
	require.NoError(t, err)
	require.NoError(t, acc.WriteMessages(f, "7e1b5c2a-0000-4000-8000-00000000b0b0"))
	require.NoError(t, f.Close())
	return e
}

// linking returns the run configuration of --link-contacts against the simulator.
func (e *linkEnv) linking(create bool) *contacts.RunConfig {
	e.t.Helper()
	api, err := kommoapi.New(kommoapi.Config{BaseURL: e.url, Token: crmToken, Timeout: 2 * time.Second})
	require.NoError(e.t, err)
	return &contacts.RunConfig{API: api, Create: create, Region: contactgen.Region, CRMRate: -1}
}

// requireLinked checks the account against what the generator meant: each
// conversation whose client matches one contact is linked to it, exactly
// once; with create, each client no contact matches got one contact of its
// own (shared by its conversations) and its chats are linked to it; the
// others are not linked. A linked chat's messages are all silent and make
// no incoming lead; an unlinked one's newest is loud and makes one.
func (e *linkEnv) requireLinked(create bool) {
	t := e.t
	t.Helper()
	links := map[string]int64{}
	for _, l := range e.sim.Links() {
		_, dup := links[l.ConversationID]
		require.False(t, dup, "%s linked twice", l.ConversationID)
		links[l.ConversationID] = l.ContactID
	}
	createdFor := map[string]int64{} // client -> the contact made for it
	unlinked := 0
	for _, c := range e.acc.Conversations {
		got, linked := links[c.ID]
		switch {
		case c.Want == contactgen.Link:
			require.Equal(t, c.WantContact, got, c.ID)
		case c.Want == contactgen.Unlinked && create:
			require.True(t, linked, "%s: a contact was created and the chat linked to it", c.ID)
			if prev, ok := createdFor[c.ClientID]; ok {
				require.Equal(t, prev, got, "%s: the client's chats share its created contact", c.ID)
			}
			createdFor[c.ClientID] = got
		default:
			require.False(t, linked, "%s (%s) must stay unlinked", c.ID, c.Want)
			unlinked++
		}
	}
	st := e.sim.Stats()
	require.EqualValues(t, len(createdFor), st.ContactsCreated, "one contact per client no contact matched, none twice")
	require.EqualValues(t, len(links), st.LinksCreated, "no chat linked twice")
	require.Zero(t, st.LinksChanged+st.LinksRepeated, "no link posted again over an existing one")
	require.Zero(t, st.LinksAfterMessages, "every chat linked before its first message")
	require.Zero(t, st.Duplicates)
	loud := map[string]int{}
	for _, le := range e.sim.Ledger() {
		if !le.Silent {
			loud[le.ConversationID]++
		}
	}
	for _, c := range e.acc.Conversations {
		_, linked := links[c.ID]
		if linked {
			require.Zero(t, loud[c.ID], "%s is linked: all silent", c.ID)
		} else {
			require.Equal(t, 1, loud[c.ID], "%s is unlinked: its newest is loud", c.ID)
		}
	}
	require.EqualValues(t, unlinked, st.IncomingLeads, "only the unlinked chats make incoming leads")
}

// TestLinkContacts: every conversation of a generated export lands on the
// contact its client matches exactly; clients no contact matches get one
// created with --create-contacts (one per client, its chats sharing it),
// and none without; ambiguous and contactless chats stay unlinked. The
// status counts them, report lists them, and the run checks its mode.
func TestLinkContacts(t *testing.T) {
	for _, create := range []bool{false, true} {
		t.Run(map[bool]string{false: "link", true: "create"}[create], func(t *testing.T) {
			e := newLinkEnv(t, 7, 600, 120, sim.Options{})
			linking := e.linking(create)
			sum := e.run("link", e.export, func(c *importer.Config) { c.Contacts = linking })
			require.Equal(t, importer.OutcomeDone, sum.Outcome)
			e.requireLinked(create)

			want := map[string]int64{}
			for _, c := range e.acc.Conversations {
				switch {
				case c.Want == contactgen.Link:
					want["linked"]++
				case c.Want == contactgen.Unlinked && create:
					want["created"]++
				case c.Want == contactgen.Ambiguous:
					want["ambiguous"]++
				default:
					want["unlinked"]++
				}
			}
			mode := map[bool]string{false: "link", true: "link+create"}[create]
			require.Equal(t, importer.ContactLinks{Mode: mode, Linked: want["linked"], Created: want["created"], Ambiguous: want["ambiguous"],
				Unlinked: want["unlinked"], ByMethod: sum.Contacts.ByMethod}, *sum.Contacts)
			require.Positive(t, sum.CRMRequests)

			var ambiguous int
			require.NoError(t, importer.EachContactLink(context.Background(), e.pool, "link", func(c *importer.ContactLink) error {
				if c.Method == "ambiguous" {
					ambiguous++
					require.Len(t, c.Candidates, 2, c.ConversationID)
				}
				return nil
			}))
			require.EqualValues(t, want["ambiguous"], ambiguous)

			// The same run without linking is refused, not sent unlinked.
			_, err := e.importer("link", e.export, nil).Run(context.Background(), nil)
			var mismatch *importer.MismatchError
			require.ErrorAs(t, err, &mismatch)
			require.Equal(t, "contacts", mismatch.Field)
		})
	}
}

// TestLinkContactsInDoubt: the main API loses answers after carrying out
// creations and links (accept faults), or fails before (500, in doubt to a
// POST): every creation in doubt is searched for before it is made again,
// every link in doubt read back before it is posted again, so no contact is
// made twice and no link posted twice, and every chat is linked once.
func TestLinkContactsInDoubt(t *testing.T) {
	e := newLinkEnv(t, 8, 600, 120, sim.Options{Seed: 3,
		CRMFaults: sim.Faults{sim.Fault500: 0.08, sim.FaultAccept500: 0.08, sim.FaultAcceptDrop: 0.08}})
	linking := e.linking(true)
	sum := e.run("doubt", e.export, func(c *importer.Config) {
		c.Contacts = linking
		c.RequestTimeout = time.Second
	})
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	st := e.sim.Stats()
	for _, kind := range []string{sim.Fault500, sim.FaultAccept500, sim.FaultAcceptDrop} {
		require.Positive(t, st.CRMFaults[kind], kind)
	}
	require.Positive(t, st.CRMByEndpoint[sim.CRMLinks], "links in doubt were read back")
	t.Logf("main API: %d requests by endpoint %v, faults %v; %d contacts created, %d links; %d retries",
		st.CRMRequests, st.CRMByEndpoint, st.CRMFaults, st.ContactsCreated, st.LinksCreated, sum.Retries)
	e.requireLinked(true)
}

// TestRetryKeepsLinkedChatsSilent: a run that links, some of whose messages
// the API refused, is retried by a process that does not link (retry has
// no token): the linked chats' messages still go out silent, the newest
// included.
func TestRetryKeepsLinkedChatsSilent(t *testing.T) {
	e := newLinkEnv(t, 9, 300, 60, sim.Options{Seed: 5, Faults: sim.Faults{sim.Fault400: 0.15}})
	linking := e.linking(false)
	sum := e.run("retried", e.export, func(c *importer.Config) { c.Contacts = linking })
	require.Equal(t, importer.OutcomeIncomplete, sum.Outcome)
	require.Positive(t, sum.Failed)
	require.NoError(t, e.sim.SetFaults(sim.Faults{}, nil))
	_, err := importer.ResetFailed(context.Background(), e.pool, "retried", importer.Selection{})
	require.NoError(t, err)
	// As retry does: the run's source named, not opened; no linking.
	sum = e.run("retried", "", func(c *importer.Config) { c.Source = fileIdentity(t, e.export) })
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.Zero(t, sum.CRMRequests)
	e.requireLinked(false)
}

// TestContactCreationInDoubt: the first creation request is lost before it
// reaches the account (a 500 from a proxy), the second is carried out and
// its answer lost: the first batch's contacts are searched for, not found,
// and created again once their window has passed (with the same
// request_id); the second's are found by their phone and e-mail and
// recorded, never made again. Nothing is made twice.
func TestContactCreationInDoubt(t *testing.T) {
	var log syncWriter
	e := newLinkEnv(t, 10, 300, 60, sim.Options{})
	target, err := url.Parse(e.url)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var creates atomic.Int64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v4/contacts" {
			switch creates.Add(1) {
			case 1: // lost on the way: nothing made
				http.Error(w, `{"title":"Bad Gateway","status":502}`, http.StatusBadGateway)
				return
			case 2: // made, and the answer lost
				proxy.ServeHTTP(discard{h: http.Header{}}, r)
				http.Error(w, `{"title":"Bad Gateway","status":502}`, http.StatusBadGateway)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	linking := e.linking(true)
	linking.API, err = kommoapi.New(kommoapi.Config{BaseURL: front.URL, Token: crmToken, Timeout: 2 * time.Second})
	require.NoError(t, err)
	sum := e.run("created", e.export, func(c *importer.Config) {
		c.Contacts = linking
		c.Logger = slog.New(slog.NewTextHandler(&log, nil))
	})
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	require.GreaterOrEqual(t, creates.Load(), int64(3))
	e.requireLinked(true)
	out := log.String()
	for _, want := range []string{"contact creation in doubt: searching for it", "contact whose creation was in doubt is not in the account: creating it again",
		"contact whose creation was in doubt found: not creating it again"} {
		require.True(t, strings.Contains(out, want), "the log says %q", want)
	}
}

// discard is a response nobody reads.
type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

// syncWriter is a buffer the importer's workers log to.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestLinkContactsTwoProcesses: two importers work one run that creates
// contacts: of the workers of both that reach a client's creation, one
// creates it, the others wait for it; no contact is made twice.
func TestLinkContactsTwoProcesses(t *testing.T) {
	e := newLinkEnv(t, 12, 1200, 240, sim.Options{Latency: 2 * time.Millisecond})
	ims := make([]*importer.Importer, 2)
	for i := range ims {
		linking := e.linking(true)
		ims[i] = e.importer("two", e.export, func(c *importer.Config) { c.Contacts = linking })
	}
	sums, errs := runTogether(ims...)
	for i := range sums {
		require.NoError(t, errs[i])
		require.Positive(t, sums[i].SentNow, "both processes sent")
		require.Positive(t, sums[i].CRMRequests, "both processes linked")
	}
	e.requireLinked(true)
}

// TestLinkTokenRevokedMidRun: the token is refused (401) after some links:
// the run stops for the operator, with the refusal, leaving no link in
// doubt; with the token right again, the same run resumes and links the
// rest, nothing twice.
func TestLinkTokenRevokedMidRun(t *testing.T) {
	e := newLinkEnv(t, 13, 300, 60, sim.Options{})
	target, err := url.Parse(e.url)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var links atomic.Int64
	var revoked atomic.Bool
	revoked.Store(true)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/api/v4/contacts/chats" && links.Add(1) > 10 && revoked.Load() {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"title":"Unauthorized","status":401,"detail":"Invalid or expired token"}`))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	linking := e.linking(false)
	linking.API, err = kommoapi.New(kommoapi.Config{BaseURL: front.URL, Token: crmToken, Timeout: 2 * time.Second})
	require.NoError(t, err)
	mod := func(c *importer.Config) { c.Contacts = linking }
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := e.importer("revoked", e.export, mod).Run(ctx, nil)
	var refused *importer.ContactsError
	require.ErrorAs(t, err, &refused)
	require.False(t, refused.Preflight)
	require.True(t, refused.Err.Unauthorized())
	require.Equal(t, importer.OutcomeStopped, sum.Outcome)
	require.Zero(t, sum.Contacts.InDoubt, "a refused link is not in doubt")
	require.Contains(t, sum.StopReason, "refused the token while linking chats to contacts")

	revoked.Store(false)
	sum = e.run("revoked", e.export, mod)
	require.Equal(t, importer.OutcomeDone, sum.Outcome)
	e.requireLinked(false)
}
