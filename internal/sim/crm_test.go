package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/signer"
)

const testToken = signer.Secret("crm-admin-token-41f0")

// crm sends a main-API request with a bearer token and returns the status
// and body.
func (e *env) crm(method, path, token string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.ts.URL+path, rd)
	require.NoError(e.t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.ts.Client().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(e.t, err)
	return resp, b
}

func phoneField(values ...string) map[string]any {
	var vs []any
	for _, v := range values {
		vs = append(vs, map[string]any{"value": v, "enum_code": "WORK"})
	}
	return map[string]any{"field_id": 3, "field_code": "PHONE", "field_name": "Phone", "values": vs}
}

func emailField(values ...string) map[string]any {
	var vs []any
	for _, v := range values {
		vs = append(vs, map[string]any{"value": v, "enum_code": "WORK"})
	}
	return map[string]any{"field_id": 4, "field_code": "EMAIL", "field_name": "Email", "values": vs}
}

func seedContacts(t *testing.T, lines ...string) []map[string]any {
	t.Helper()
	cs, err := LoadContacts(strings.NewReader(strings.Join(lines, "\n")), "contacts.jsonl")
	require.NoError(t, err)
	return cs
}

type contactsPage struct {
	Page  int `json:"_page"`
	Links struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
	Embedded struct {
		Contacts []Contact `json:"contacts"`
	} `json:"_embedded"`
}

func searchIDs(t *testing.T, e *env, query string) []int64 {
	t.Helper()
	resp, b := e.crm(http.MethodGet, "/api/v4/contacts?limit=250&query="+url.QueryEscape(query), testToken.Reveal(), nil)
	if resp.StatusCode == http.StatusNoContent {
		require.Empty(t, b)
		return nil
	}
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	var ids []int64
	for _, c := range decode[contactsPage](t, b).Embedded.Contacts {
		ids = append(ids, c.ID)
	}
	return ids
}

func TestCRMSearchIsLoose(t *testing.T) {
	e := newEnv(t, Options{CRMToken: testToken, Contacts: seedContacts(t,
		`{"id":1,"name":"Ivan Petrov","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"+7 (916) 123-45-67","enum_code":"WORK"}]},{"field_code":"EMAIL","values":[{"value":"Ivan@Example.com"}]}]}`,
		`{"id":2,"name":"Order 9161234567 from a note","custom_fields_values":null}`,
		`{"id":3,"name":"Other Ivan","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"89161234567"}]},{"field_code":"EMAIL","values":[{"value":"xivan@example.com"}]}]}`,
		`{"id":4,"name":"Nobody","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"+1 555 0100"}]}]}`,
		`{"name":"No id given","custom_fields_values":[{"field_name":"Birthday","values":[{"value":19850402}]}]}`,
	)})
	require.Equal(t, []int64{1, 2, 3}, searchIDs(t, e, "9161234567"), "the national number's digits, wherever they are")
	require.Equal(t, []int64{1, 3}, searchIDs(t, e, "ivan@example.com"), "an e-mail finds another that contains it, case aside")
	require.Equal(t, []int64{3}, searchIDs(t, e, "89161234567"), "phones are not normalised: 8... is not +7...")
	require.Nil(t, searchIDs(t, e, "+79161234567"), "a + query is a substring like any other")
	require.Nil(t, searchIDs(t, e, "nobody@nowhere"), "204 with no body")
	require.Equal(t, []int64{5}, searchIDs(t, e, "19850402"), "a number field; the contact without an id got the next one")
}

func TestCRMSearchPages(t *testing.T) {
	var lines []string
	for i := 1; i <= 600; i++ {
		lines = append(lines, fmt.Sprintf(`{"name":"Client %d","custom_fields_values":[{"field_code":"EMAIL","values":[{"value":"c%d@shop.test"}]}]}`, i, i))
	}
	e := newEnv(t, Options{CRMToken: testToken, Contacts: seedContacts(t, lines...)})
	var got int
	for page := 1; ; page++ {
		resp, b := e.crm(http.MethodGet, fmt.Sprintf("/api/v4/contacts?query=shop.test&limit=250&page=%d", page), testToken.Reveal(), nil)
		if resp.StatusCode == http.StatusNoContent {
			require.Equal(t, 4, page, "three pages, then 204")
			break
		}
		p := decode[contactsPage](t, b)
		got += len(p.Embedded.Contacts)
		require.Equal(t, page < 3, p.Links.Next != nil, "page %d: next while more remain", page)
	}
	require.Equal(t, 600, got)
	resp, _ := e.crm(http.MethodGet, "/api/v4/contacts?limit=251", testToken.Reveal(), nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
}

func TestCRMTokens(t *testing.T) {
	e := newEnv(t, Options{CRMToken: testToken})
	for _, tok := range []string{"", "wrong", testToken.Reveal() + "x"} {
		resp, b := e.crm(http.MethodGet, "/api/v4/account?with=amojo_id", tok, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%q", tok)
		require.NotContains(t, string(b), testToken.Reveal())
	}
	resp, b := e.crm(http.MethodGet, "/api/v4/account?with=amojo_id", testToken.Reveal(), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "af9945ff-1490-4cad-807d-945c15d88bec", decode[map[string]any](t, b)["amojo_id"], "the scope id's account part")

	// No token configured: the main API refuses everyone.
	off := newEnv(t, Options{})
	resp, _ = off.crm(http.MethodGet, "/api/v4/account", testToken.Reveal(), nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	st := e.sim.Stats()
	require.Equal(t, int64(4), st.CRMRequests)
	require.Equal(t, int64(3), st.CRMByStatus["401"])
	require.Zero(t, st.Requests, "the Chats API's counters are apart")
}

type linkResp struct {
	Total    int `json:"_total_items"`
	Embedded struct {
		Chats []struct {
			ChatID    string `json:"chat_id"`
			ContactID int64  `json:"contact_id"`
			ID        int64  `json:"id"`
			RequestID string `json:"request_id"`
		} `json:"chats"`
	} `json:"_embedded"`
}

func TestCRMCreateLinkAndLeads(t *testing.T) {
	e := newEnv(t, Options{CRMToken: testToken, Contacts: seedContacts(t, `{"id":10,"name":"Seeded"}`)})
	tok := testToken.Reveal()

	// Create two contacts in one batch; request_id comes back.
	resp, b := e.crm(http.MethodPost, "/api/v4/contacts", tok, []any{
		map[string]any{"name": "Anna", "custom_fields_values": []any{phoneField("+79160000001"), emailField("anna@x.test")}, "request_id": "rq-a"},
		map[string]any{"first_name": "Boris", "last_name": "B"},
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	var created struct {
		Embedded struct {
			Contacts []struct {
				ID        int64  `json:"id"`
				RequestID string `json:"request_id"`
			} `json:"contacts"`
		} `json:"_embedded"`
	}
	require.NoError(t, json.Unmarshal(b, &created))
	require.Len(t, created.Embedded.Contacts, 2)
	require.Equal(t, "rq-a", created.Embedded.Contacts[0].RequestID)
	require.Equal(t, "1", created.Embedded.Contacts[1].RequestID, "no request_id: the index")
	anna := created.Embedded.Contacts[0].ID
	require.Equal(t, int64(11), anna, "after the seeded ids")
	require.Equal(t, []int64{anna}, searchIDs(t, e, "9160000001"), "a created contact is searchable at once")
	require.Equal(t, []int64{anna + 1}, searchIDs(t, e, "boris b"), "name from first and last name")

	// A bad batch creates nothing.
	resp, b = e.crm(http.MethodPost, "/api/v4/contacts", tok, []any{map[string]any{"name": "ok"}, map[string]any{"name": 5, "request_id": "bad"}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Contains(t, string(b), `"request_id":"bad"`)
	resp, _ = e.crm(http.MethodPost, "/api/v4/contacts", tok, []any{})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	require.Equal(t, int64(2), e.sim.Stats().ContactsCreated)

	// Two chats: conv-linked gets linked before its loud message, conv-loose not.
	for _, conv := range []string{"conv-linked", "conv-loose"} {
		resp, b = e.do(http.MethodPost, chatPath, fmt.Appendf(nil, `{"conversation_id":%q,"user":{"id":"u-%s","name":"U"}}`, conv, conv), nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	}
	linked, _ := e.sim.ChatID("conv-linked")
	loose, _ := e.sim.ChatID("conv-loose")

	resp, b = e.crm(http.MethodPost, "/api/v4/contacts/chats", tok, []any{map[string]any{"chat_id": "nope", "contact_id": anna}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "unknown chat")
	require.Contains(t, string(b), "no chat nope")
	resp, _ = e.crm(http.MethodPost, "/api/v4/contacts/chats", tok, []any{map[string]any{"chat_id": linked, "contact_id": 999}})
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "unknown contact")

	resp, _ = e.crm(http.MethodGet, "/api/v4/contacts/chats?chat_id="+linked, tok, nil)
	require.Equal(t, http.StatusNoContent, resp.StatusCode, "no link yet")
	resp, b = e.crm(http.MethodPost, "/api/v4/contacts/chats", tok, []any{map[string]any{"chat_id": linked, "contact_id": anna, "request_id": "l1"}})
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	first := decode[linkResp](t, b)
	require.Equal(t, 1, first.Total)
	require.Equal(t, "l1", first.Embedded.Chats[0].RequestID)
	// The same pair again: the same link.
	_, b = e.crm(http.MethodPost, "/api/v4/contacts/chats", tok, []any{map[string]any{"chat_id": linked, "contact_id": anna}})
	require.Equal(t, first.Embedded.Chats[0].ID, decode[linkResp](t, b).Embedded.Chats[0].ID)
	resp, b = e.crm(http.MethodGet, "/api/v4/contacts/chats?chat_id="+linked, tok, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, anna, decode[linkResp](t, b).Embedded.Chats[0].ContactID)
	resp, _ = e.crm(http.MethodGet, "/api/v4/contacts/chats?chat_id="+linked+"&contact_id=1", tok, nil)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "one of the two")

	// Loud messages into both: only the unlinked chat makes an incoming lead, once.
	for i, conv := range []string{"conv-linked", "conv-loose", "conv-loose"} {
		resp, b = e.send(event(payload(fmt.Sprintf("m-%d", i), conv, int64(1700000000000+i), false)))
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	}
	st := e.sim.Stats()
	require.Equal(t, int64(1), st.IncomingLeads)
	require.Equal(t, int64(1), st.LinksCreated)
	require.Equal(t, []Link{{ChatID: linked, ContactID: anna, ConversationID: "conv-linked"}}, e.sim.Links())
	require.NotEqual(t, linked, loose)

	require.Equal(t, [3]int64{1, 0, 0}, [3]int64{st.LinksRepeated, st.LinksChanged, st.LinksAfterMessages}, "the same pair again changed nothing")

	// Relinking to another contact replaces the link, with a new id.
	_, b = e.crm(http.MethodPost, "/api/v4/contacts/chats", tok, []any{map[string]any{"chat_id": linked, "contact_id": 10}})
	require.NotEqual(t, first.Embedded.Chats[0].ID, decode[linkResp](t, b).Embedded.Chats[0].ID)
	require.Equal(t, int64(10), e.sim.Links()[0].ContactID)
	st = e.sim.Stats()
	require.Equal(t, [3]int64{2, 1, 1}, [3]int64{st.LinksCreated, st.LinksChanged, st.LinksAfterMessages}, "a link changed after the chat had messages")

	// The control endpoint.
	r, err := http.Get(e.ts.URL + "/_sim/links")
	require.NoError(t, err)
	defer r.Body.Close()
	var links []Link
	require.NoError(t, json.NewDecoder(r.Body).Decode(&links))
	require.Equal(t, e.sim.Links(), links)
}

func TestCRMTokenWithoutLinkRights(t *testing.T) {
	e := newEnv(t, Options{CRMToken: testToken, CRMTokenNoLink: true, Contacts: seedContacts(t, `{"id":1,"name":"A"}`)})
	resp, b := e.crm(http.MethodGet, "/api/v4/contacts/chats?chat_id=x", testToken.Reveal(), nil)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Contains(t, string(b), "integration whose uuid is set in the chat channel's settings")
	resp, _ = e.crm(http.MethodPost, "/api/v4/contacts/chats", testToken.Reveal(), []any{map[string]any{"chat_id": "x", "contact_id": 1}})
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, []int64{1}, searchIDs(t, e, "a"), "searching is allowed")
}

func TestCRMRateLimitIsItsOwn(t *testing.T) {
	clock := newFakeClock()
	e := newEnv(t, Options{CRMToken: testToken, CRMRate: 2, CRMRetryAfter: 7 * time.Second, Rate: 100, Now: clock.Now})
	codes := func() []int {
		var out []int
		for range 3 {
			resp, _ := e.crm(http.MethodGet, "/api/v4/contacts?query=x", testToken.Reveal(), nil)
			out = append(out, resp.StatusCode)
		}
		return out
	}
	require.Equal(t, []int{204, 204, 429}, codes())
	resp, b := e.crm(http.MethodGet, "/api/v4/contacts?query=x", testToken.Reveal(), nil)
	require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	require.Equal(t, "7", resp.Header.Get("Retry-After"))
	require.Equal(t, float64(7), decode[map[string]any](t, b)["retry_after"])
	// The Chats API goes on meanwhile.
	resp, b = e.send(msgBody("m-1", "conv-1", 1700000000000))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	clock.Advance(time.Second)
	require.Equal(t, []int{204, 204, 429}, codes())
	st := e.sim.Stats()
	require.Equal(t, int64(3), st.CRMRateLimited)
	require.Zero(t, st.RateLimited)
	require.Equal(t, clock.Now().Add(-time.Second), st.CRMFirstRateLimited)
	require.Equal(t, clock.Now(), st.CRMLastRateLimited)
}

// TestCRMFaults: a main-API fault before the request is carried out makes
// nothing; an accept fault carries it out and loses the answer (a 500, or
// the connection dropped): the contact exists, the link is made.
func TestCRMFaults(t *testing.T) {
	tok := testToken.Reveal()
	e := newEnv(t, Options{CRMToken: testToken, CRMFaults: Faults{Fault500: 1}})
	resp, _ := e.crm(http.MethodPost, "/api/v4/contacts", tok, []any{map[string]any{"name": "A"}})
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.Zero(t, e.sim.Stats().ContactsCreated, "500: nothing made")

	e = newEnv(t, Options{CRMToken: testToken, CRMFaults: Faults{FaultAccept500: 1}})
	resp, _ = e.crm(http.MethodPost, "/api/v4/contacts", tok, []any{map[string]any{"name": "Anna", "request_id": "r1"}})
	require.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	require.EqualValues(t, 1, e.sim.Stats().ContactsCreated, "accept-500: made, the answer lost")
	require.Len(t, e.sim.Contacts(), 1)

	e = newEnv(t, Options{CRMToken: testToken, Contacts: seedContacts(t, `{"id":5,"name":"B"}`), CRMFaults: Faults{FaultAcceptDrop: 1}})
	resp, b := e.do(http.MethodPost, chatPath, []byte(`{"conversation_id":"c1","user":{"id":"u1","name":"U"}}`), nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	chat, _ := e.sim.ChatID("c1")
	req, err := http.NewRequest(http.MethodPost, e.ts.URL+"/api/v4/contacts/chats", strings.NewReader(`[{"chat_id":"`+chat+`","contact_id":5}]`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	_, err = e.ts.Client().Do(req)
	require.Error(t, err, "accept-drop: the connection is dropped")
	require.Equal(t, []Link{{ChatID: chat, ContactID: 5, ConversationID: "c1"}}, e.sim.Links(), "and the link made")
	require.EqualValues(t, 1, e.sim.Stats().CRMFaults[FaultAcceptDrop])
	// Counted once the handler has returned, which may be after the client saw the drop.
	require.Eventually(t, func() bool { return e.sim.Stats().CRMByStatus["dropped"] == 1 }, 5*time.Second, time.Millisecond)
}

func TestLoadContactsNamesTheLine(t *testing.T) {
	_, err := LoadContacts(strings.NewReader("{\"name\":\"ok\"}\n\n{\"name\":\"x\",\"custom_fields_values\":[{\"values\":[{\"value\":[1]}]}]}\n"), "c.jsonl")
	require.ErrorContains(t, err, "c.jsonl:3: custom_fields_values[0].values[0].value")
	_, err = LoadContacts(strings.NewReader("[1]\n"), "c.jsonl")
	require.ErrorContains(t, err, "c.jsonl:1: not a contact")
	_, err = New(Options{ScopeID: "s", Secret: "x", Contacts: seedContacts(t, `{"id":3,"name":"a"}`, `{"id":3,"name":"b"}`)})
	require.ErrorContains(t, err, "id 3 given twice")
}
