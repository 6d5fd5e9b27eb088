package contacts_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/contacts"
	"github.com/kommo-import/kommo-import/internal/contactgen"
	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/kommoapi"
	"github.com/kommo-import/kommo-import/signer"
	"github.com/kommo-import/kommo-import/wire"
)

const (
	token = signer.Secret("crm-admin-token-c0ffee")
	scope = "chan-7_acct-7"
)

// account runs kommo-sim in-process, seeded with the generated account.
func account(t *testing.T, opts sim.Options, acc *contactgen.Account) (*sim.Server, *httptest.Server, *kommoapi.Client) {
	t.Helper()
	opts.ScopeID, opts.Secret, opts.CRMToken = scope, "chan-secret", token
	if acc != nil {
		var buf bytes.Buffer
		require.NoError(t, acc.WriteContacts(&buf))
		cs, err := sim.LoadContacts(&buf, "contacts.jsonl")
		require.NoError(t, err)
		opts.Contacts = cs
	}
	s, err := sim.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := kommoapi.New(kommoapi.Config{BaseURL: srv.URL, Token: token})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return s, srv, c
}

func convs(acc *contactgen.Account) []contacts.Conversation {
	var out []contacts.Conversation
	for _, c := range acc.Conversations {
		out = append(out, contacts.Conversation{ID: c.ID, Messages: c.Messages,
			Client: contacts.Client{ID: c.ClientID, Name: c.ClientName, Phone: c.Phone, Email: c.Email}})
	}
	return out
}

// TestPlanFindsExactlyTheRightContacts matches 500 conversations against an
// account of 5,000 contacts full of look-alikes, and checks every outcome
// against what the generator made.
func TestPlanFindsExactlyTheRightContacts(t *testing.T) {
	acc := contactgen.Generate(7, 5000, 500)
	require.Len(t, acc.Contacts, 5000)
	require.Len(t, acc.Conversations, 500)
	s, _, api := account(t, sim.Options{}, acc)
	m, err := contacts.New(contacts.Config{API: api, Region: contactgen.Region})
	require.NoError(t, err)

	rows, sum, err := m.Plan(context.Background(), convs(acc), nil)
	require.NoError(t, err)
	require.Len(t, rows, 500)
	want := map[string]int{}
	for i, r := range rows {
		g := acc.Conversations[i]
		require.Equal(t, g.ID, r.Conversation.ID)
		require.NoError(t, r.Err, g.ID)
		require.Equal(t, g.Want, string(r.Match.Outcome), "%s: client phone %q email %q: %+v", g.ID, g.Phone, g.Email, r.Match)
		want[g.Want]++
		switch g.Want {
		case contactgen.Link:
			require.Equal(t, g.WantContact, r.Match.Contact.ID, g.ID)
			require.Equal(t, g.WantMethod, string(r.Match.Method), g.ID)
			require.NotEmpty(t, r.Match.Contact.Name)
		case contactgen.Ambiguous:
			var ids []int64
			for _, c := range r.Match.Candidates {
				ids = append(ids, c.ID)
			}
			require.Equal(t, g.WantCands, ids, g.ID)
		}
	}
	require.Equal(t, contacts.Summary{
		Conversations: 500, Link: want[contactgen.Link], Unlinked: want[contactgen.Unlinked], Ambiguous: want[contactgen.Ambiguous],
		NoContactInfo: want[contactgen.NoContactInfo], Clients: sum.Clients, Searches: sum.Searches,
	}, sum)
	require.Greater(t, want[contactgen.Link], 200)
	require.Greater(t, want[contactgen.Ambiguous], 50)

	// One search per distinct query, however many chats a client has.
	queries := map[string]bool{}
	for _, r := range rows {
		if p := r.Match.Key.Phone.National; p != "" {
			queries[p] = true
		}
		if e := r.Match.Key.Email; e != "" {
			queries[e] = true
		}
	}
	st := s.Stats()
	require.Equal(t, int64(len(queries)), st.CRMByEndpoint[sim.CRMContactsSearch])
	require.Equal(t, int64(len(queries)), sum.Searches)
	require.Less(t, sum.Clients, 500, "some clients have several chats")
	require.Zero(t, st.ContactsCreated, "a plan writes nothing")
	require.Zero(t, st.LinksCreated)

	var out bytes.Buffer
	require.NoError(t, contacts.WritePlanCSV(&out, rows))
	recs, err := csv.NewReader(&out).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 501)
	require.Equal(t, contacts.PlanColumns, recs[0])
}

func TestWithoutCreateNothingIsCreated(t *testing.T) {
	acc := contactgen.Generate(11, 400, 60)
	s, _, api := account(t, sim.Options{}, acc)
	m, err := contacts.New(contacts.Config{API: api, Region: contactgen.Region})
	require.NoError(t, err)
	rows, sum, err := m.Plan(context.Background(), convs(acc), nil)
	require.NoError(t, err)
	require.Zero(t, sum.Create)
	require.NotZero(t, sum.Unlinked)
	for _, r := range rows {
		require.NotEqual(t, contacts.OutcomeCreate, r.Match.Outcome)
	}
	require.Zero(t, s.Stats().ContactsCreated)

	withCreate, err := contacts.New(contacts.Config{API: api, Region: contactgen.Region, Create: true})
	require.NoError(t, err)
	_, sum2, err := withCreate.Plan(context.Background(), convs(acc), nil)
	require.NoError(t, err)
	require.Equal(t, sum.Unlinked, sum2.Create, "the same conversations, now to be created")
	require.Zero(t, s.Stats().ContactsCreated, "a plan creates nothing, --create-contacts or not")
}

// TestCreatorBatchesAndRecheckFindsTheCreated creates the contacts of 120
// new clients from 240 concurrent conversations (two per client): three
// requests, one contact per client; a Recheck then finds each strictly, as
// a resumed run would after a crash between the create and its checkpoint.
func TestCreatorBatchesAndRecheckFindsTheCreated(t *testing.T) {
	s, _, api := account(t, sim.Options{}, nil)
	m, err := contacts.New(contacts.Config{API: api, Region: "RU", Create: true})
	require.NoError(t, err)
	ctx := context.Background()
	// A linger far longer than it takes to start 240 goroutines: the batches
	// are full ones and the rest, whatever the machine's load.
	cr := m.NewCreator(ctx, 5*time.Second)
	clients := make([]contacts.Client, 120)
	matches := make([]contacts.Match, 120)
	for i := range clients {
		clients[i] = contacts.Client{ID: fmt.Sprint("c", i), Name: fmt.Sprint("New ", i), Phone: fmt.Sprintf("8 (917) 000-%02d-%02d", i/100, i%100), Email: fmt.Sprintf("New%d@X.test", i)}
		matches[i], err = m.Match(ctx, fmt.Sprint("conv-", i), clients[i])
		require.NoError(t, err)
		require.Equal(t, contacts.OutcomeCreate, matches[i].Outcome)
	}
	var wg sync.WaitGroup
	ids := make([]int64, 240)
	for k := range 240 {
		wg.Go(func() {
			c, match := clients[k/2], matches[k/2]
			id, err := cr.Create(ctx, contacts.NewContact(contacts.RequestID("run-1", match.Key), c, match.Key))
			require.NoError(t, err)
			ids[k] = id
		})
	}
	wg.Wait()
	st := s.Stats()
	require.Equal(t, int64(120), st.ContactsCreated, "one contact per client")
	require.Equal(t, int64(3), st.CRMByEndpoint[sim.CRMContactsCreate], "50 + 50 + 20")
	for k := 0; k < 240; k += 2 {
		require.Equal(t, ids[k], ids[k+1], "the client's two chats share the contact")
	}

	// Cached: the same client matches its created contact without a request.
	before := m.Searches()
	match, err := m.Match(ctx, "conv-x", clients[7])
	require.NoError(t, err)
	require.Equal(t, contacts.Match{Outcome: contacts.OutcomeLink, Method: contacts.MethodCreated, Key: match.Key,
		Contact: contacts.Contact{ID: ids[14], Name: "New 7", By: contacts.MethodPhoneEmail}}, match)
	require.Equal(t, before, m.Searches())

	// A fresh Matcher (a resumed process) rechecks: the contact is found strictly.
	m2, err := contacts.New(contacts.Config{API: api, Region: "RU", Create: true})
	require.NoError(t, err)
	match, err = m2.Recheck(ctx, clients[7])
	require.NoError(t, err)
	require.Equal(t, contacts.OutcomeLink, match.Outcome)
	require.Equal(t, ids[14], match.Contact.ID)
	require.Equal(t, contacts.MethodPhoneEmail, match.Method)
}

func TestMapWinsOverTheSearch(t *testing.T) {
	acc := contactgen.Generate(3, 300, 40)
	s, _, api := account(t, sim.Options{}, acc)
	var amb, linked contactgen.Conversation
	for _, c := range acc.Conversations {
		if c.Want == contactgen.Ambiguous && amb.ID == "" {
			amb = c
		}
		if c.Want == contactgen.Link && linked.ID == "" {
			linked = c
		}
	}
	mp, err := contacts.ReadMap(strings.NewReader(fmt.Sprintf("conversation_id,client_id,contact_id,note\n%s,,%d,picked by hand\n,%s,none,\nother,,,\n",
		amb.ID, amb.WantCands[1], linked.ClientID)), "map.csv")
	require.NoError(t, err)
	require.Equal(t, 2, mp.Len())
	m, err := contacts.New(contacts.Config{API: api, Region: contactgen.Region, Map: mp})
	require.NoError(t, err)
	ctx := context.Background()
	got, err := m.Match(ctx, amb.ID, contacts.Client{ID: amb.ClientID, Phone: amb.Phone, Email: amb.Email})
	require.NoError(t, err)
	require.Equal(t, contacts.OutcomeLink, got.Outcome)
	require.Equal(t, contacts.MethodMap, got.Method)
	require.Equal(t, amb.WantCands[1], got.Contact.ID)
	got, err = m.Match(ctx, linked.ID, contacts.Client{ID: linked.ClientID, Phone: linked.Phone, Email: linked.Email})
	require.NoError(t, err)
	require.Equal(t, contacts.OutcomeUnlinked, got.Outcome, "the client's entry says none")
	require.Zero(t, s.Stats().CRMRequests, "the map answered without a search")
}

func TestReadMapNamesEveryBadLine(t *testing.T) {
	_, err := contacts.ReadMap(strings.NewReader("conversation_id,contact_id\na,1\nb,x\nc,-4\n,7\na,2\n\"bad,3\n"), "m.csv")
	require.Error(t, err)
	for _, want := range []string{
		`m.csv:3: contact_id: "x": want a contact id`,
		`m.csv:4: contact_id: "-4"`,
		`m.csv:5: neither conversation_id nor client_id`,
		`m.csv:6: conversation_id: "a" is mapped twice, to 1 and to 2`,
		`m.csv:7:`,
	} {
		require.ErrorContains(t, err, want)
	}
	_, err = contacts.ReadMap(strings.NewReader("id,contact\n1,2\n"), "m.csv")
	require.ErrorContains(t, err, "m.csv:1: the header")
	_, err = contacts.ReadMap(strings.NewReader(""), "m.csv")
	require.ErrorContains(t, err, "empty file")
}

// TestPlanCSVIsAMap: the plan's CSV, with the ambiguous rows settled by
// hand, reads back as a --contacts-map.
func TestPlanCSVIsAMap(t *testing.T) {
	acc := contactgen.Generate(5, 300, 30)
	_, _, api := account(t, sim.Options{}, acc)
	m, err := contacts.New(contacts.Config{API: api, Region: contactgen.Region})
	require.NoError(t, err)
	rows, _, err := m.Plan(context.Background(), convs(acc), nil)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, contacts.WritePlanCSV(&buf, rows))
	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	settled := map[string]string{}
	for _, r := range recs[1:] {
		if r[5] == string(contacts.OutcomeAmbiguous) {
			r[7] = strings.Fields(r[9])[0] // the first candidate's id
			settled[r[0]] = r[7]
		}
	}
	require.NotEmpty(t, settled)
	buf.Reset()
	w := csv.NewWriter(&buf)
	require.NoError(t, w.WriteAll(recs))
	mp, err := contacts.ReadMap(&buf, "plan.csv")
	require.NoError(t, err)
	for conv, id := range settled {
		got, ok := mp.Lookup(conv, "")
		require.True(t, ok)
		require.Equal(t, id, fmt.Sprint(got))
	}
}

func TestPacerWaitsOutA429(t *testing.T) {
	acc := contactgen.Generate(2, 50, 6)
	s, _, api := account(t, sim.Options{CRMRate: 1, CRMBurst: 1, CRMRetryAfter: time.Second}, acc)
	var logs bytes.Buffer
	// A pacer faster than the account allows: the 429s are waited out.
	p := contacts.NewPacer(50, 5, slog.New(slog.NewTextHandler(&logs, nil)))
	m, err := contacts.New(contacts.Config{API: api, Region: contactgen.Region, Attempt: p.Attempt})
	require.NoError(t, err)
	rows, _, err := m.Plan(context.Background(), convs(acc)[:3], nil)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	st := s.Stats()
	require.NotZero(t, st.CRMRateLimited)
	require.Contains(t, logs.String(), "rate limited by Kommo's main API")
	require.Equal(t, p.Requests(), st.CRMRequests)

	// Out of tries: the 429 is the error, and it ends the plan.
	p1 := contacts.NewPacer(50, 1, nil)
	m1, err := contacts.New(contacts.Config{API: api, Region: contactgen.Region, Attempt: p1.Attempt})
	require.NoError(t, err)
	_, _, err = m1.Plan(context.Background(), convs(acc), nil)
	e, ok := kommoapi.AsError(err)
	require.True(t, ok, "%v", err)
	require.True(t, e.RateLimited())
	require.True(t, contacts.Fatal(err))
}

func TestPreflightAndLinking(t *testing.T) {
	ctx := context.Background()
	acc := contactgen.Generate(4, 50, 5)
	s, srv, api := account(t, sim.Options{}, acc)
	m, err := contacts.New(contacts.Config{API: api, Region: contactgen.Region})
	require.NoError(t, err)
	require.NoError(t, m.Preflight(ctx))

	// Link a chat the Chats API made, then read the link back.
	chatID := createChat(t, srv.URL, "conv-p")
	l, err := m.ChatLink(ctx, chatID)
	require.NoError(t, err)
	require.Nil(t, l)
	made, err := m.Link(ctx, chatID, 3)
	require.NoError(t, err)
	l, err = m.ChatLink(ctx, chatID)
	require.NoError(t, err)
	require.Equal(t, made.ID, l.ID)
	require.Equal(t, []sim.Link{{ChatID: chatID, ContactID: 3, ConversationID: "conv-p"}}, s.Links())

	// A token of another integration: 403 at preflight, with the reason.
	_, _, noLink := account(t, sim.Options{CRMTokenNoLink: true}, acc)
	m2, err := contacts.New(contacts.Config{API: noLink})
	require.NoError(t, err)
	err = m2.Preflight(ctx)
	e, ok := kommoapi.AsError(err)
	require.True(t, ok)
	require.True(t, e.Forbidden() && e.Linking())
	require.Contains(t, e.Reason(), "chat channel's settings")

	// A refused token: 401.
	bad, err := kommoapi.New(kommoapi.Config{BaseURL: srv.URL, Token: "nope"})
	require.NoError(t, err)
	m3, err := contacts.New(contacts.Config{API: bad})
	require.NoError(t, err)
	e, _ = kommoapi.AsError(m3.Preflight(ctx))
	require.True(t, e.Unauthorized())
}

func TestParsePhone(t *testing.T) {
	for _, tc := range []struct {
		raw, region, e164, national, err string
	}{
		{"+7 (916) 123-45-67", "", "+79161234567", "9161234567", ""},
		{"8 916 123 45 67", "RU", "+79161234567", "9161234567", ""},
		{"79161234567", "RU", "+79161234567", "9161234567", ""},
		{"9161234567", "RU", "+79161234567", "9161234567", ""},
		{"+1 (916) 123-4567", "RU", "+19161234567", "9161234567", ""},
		{"0161 496 0000", "GB", "+441614960000", "1614960000", ""},
		{"89161234567", "", "", "", "no country code: give --default-region"},
		{"12", "RU", "", "", "not a possible phone number"},
		{"call me", "RU", "", "", "not a phone number"},
	} {
		p, err := contacts.ParsePhone(tc.raw, contacts.Region(tc.region))
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.raw)
			continue
		}
		require.NoError(t, err, tc.raw)
		require.Equal(t, contacts.Phone{E164: tc.e164, National: tc.national}, p, tc.raw)
	}
	r, err := contacts.ParseRegion(" ru ")
	require.NoError(t, err)
	require.Equal(t, contacts.Region("RU"), r)
	_, err = contacts.ParseRegion("XX")
	require.ErrorContains(t, err, "not a country code")
	require.Equal(t, "ivan@example.com", contacts.NormEmail(" Ivan@Example.COM "))
	for _, bad := range []string{"ivan", "@x", "a@", "a@b@c", "a b@c"} {
		require.Empty(t, contacts.NormEmail(bad), bad)
	}
}

func TestCollectorTakesTheClientOfEachConversation(t *testing.T) {
	c := contacts.NewCollector()
	in := func(conv, id, phone, email string) *wire.Payload {
		p := &wire.Payload{ConversationID: conv, Sender: &wire.Participant{ID: id, Name: "N " + id}}
		if phone != "" || email != "" {
			p.Sender.Profile = &wire.Profile{Phone: phone, Email: email}
		}
		return p
	}
	c.Add(in("a", "cl-1", "", ""))
	c.Add(&wire.Payload{ConversationID: "a", Sender: &wire.Participant{ID: "agent", RefID: "x"}, Receiver: &wire.Participant{ID: "cl-1", Profile: &wire.Profile{Phone: "+7 916 000 00 01"}}})
	c.Add(in("a", "cl-1", "+7 000", "a@x.test"))
	c.Add(in("b", "cl-2", "", "b@x.test"))
	require.Equal(t, []contacts.Conversation{
		{ID: "a", Messages: 3, Client: contacts.Client{ID: "cl-1", Name: "N cl-1", Phone: "+7 916 000 00 01", Email: "a@x.test"}},
		{ID: "b", Messages: 1, Client: contacts.Client{ID: "cl-2", Name: "N cl-2", Email: "b@x.test"}},
	}, c.Conversations())
}

// TestCheckpoints: a Creator's batch runs its checkpoint, with the batch's
// request_ids, just before the request, through the Attempt; a failing
// checkpoint fails the batch unsent. Link's checkpoint travels in its
// context the same way.
func TestCheckpoints(t *testing.T) {
	s, srv, api := account(t, sim.Options{}, nil)
	p := contacts.NewPacer(100, 1, nil)
	m, err := contacts.New(contacts.Config{API: api, Attempt: p.Attempt, Create: true})
	require.NoError(t, err)
	ctx := context.Background()
	cr := m.NewCreator(ctx, 10*time.Millisecond)
	var seen [][]string
	refuse := errors.New("claim lost")
	cr.BeforeRequest(func(_ context.Context, rids []string) error {
		seen = append(seen, rids)
		if len(seen) == 1 {
			return refuse
		}
		return nil
	})
	nc := contacts.NewContact("rq-1", contacts.Client{Name: "A", Email: "a@x.test"}, contacts.Key{Email: "a@x.test"})
	_, err = cr.Create(ctx, nc)
	require.ErrorIs(t, err, refuse)
	require.Zero(t, s.Stats().CRMByEndpoint[sim.CRMContactsCreate], "not sent")
	id, err := cr.Create(ctx, nc)
	require.NoError(t, err, "a failed item is tried again")
	require.Positive(t, id)
	require.Equal(t, [][]string{{"rq-1"}, {"rq-1"}}, seen)

	chat := createChat(t, srv.URL, "conv-1")
	var did, undid int
	lctx := contacts.WithCheckpoint(ctx, contacts.Checkpoint{
		Do:   func(context.Context) error { did++; return nil },
		Undo: func(context.Context) error { undid++; return nil },
	})
	_, err = m.Link(lctx, chat, id)
	require.NoError(t, err)
	require.Equal(t, [2]int{1, 0}, [2]int{did, undid})
	_, ok := contacts.CheckpointOf(ctx)
	require.False(t, ok)
}

// TestCreatorForgetsAFailureBeforeItsWaitersWake: a Create that failed is
// tried again by the next Create of its request_id, even one made the
// instant the failure is returned (the Creator used to wake the waiters
// before it forgot the failed items, and a quick retry got the old error).
func TestCreatorForgetsAFailureBeforeItsWaitersWake(t *testing.T) {
	_, _, api := account(t, sim.Options{}, nil)
	p := contacts.NewPacer(1000, 1, nil)
	m, err := contacts.New(contacts.Config{API: api, Attempt: p.Attempt, Create: true})
	require.NoError(t, err)
	ctx := context.Background()
	cr := m.NewCreator(ctx, 0)
	refuse := errors.New("claim lost")
	var mu sync.Mutex
	tries := map[string]int{}
	cr.BeforeRequest(func(_ context.Context, rids []string) error {
		mu.Lock()
		defer mu.Unlock()
		tries[rids[0]]++
		if tries[rids[0]] == 1 {
			return refuse
		}
		return nil
	})
	for i := range 300 {
		rid := fmt.Sprintf("rq-%d", i)
		email := fmt.Sprintf("c%d@x.test", i)
		nc := contacts.NewContact(rid, contacts.Client{Name: "C", Email: email}, contacts.Key{Email: email})
		_, err := cr.Create(ctx, nc)
		require.ErrorIs(t, err, refuse)
		id, err := cr.Create(ctx, nc)
		require.NoError(t, err, "try %d: the failed item is tried again", i)
		require.Positive(t, id)
	}
}
