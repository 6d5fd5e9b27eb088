package kommoapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/sim"
	"github.com/kommo-import/kommo-import/kommoapi"
	"github.com/kommo-import/kommo-import/signer"
)

const simScope = "chan-1_acct-1"

// newSim runs kommo-sim in-process with contacts seeded from JSONL lines;
// it returns the simulator and a client with the account's token.
func newSim(t *testing.T, opts sim.Options, lines ...string) (*sim.Server, *httptest.Server, *kommoapi.Client) {
	t.Helper()
	cs, err := sim.LoadContacts(strings.NewReader(strings.Join(lines, "\n")), "seed")
	require.NoError(t, err)
	opts.ScopeID, opts.Secret, opts.CRMToken, opts.Contacts = simScope, "chan-secret", testToken, cs
	s, err := sim.New(opts)
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := kommoapi.New(kommoapi.Config{BaseURL: srv.URL, Token: testToken})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return s, srv, c
}

func TestSearchContactsAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := 1; i <= 260; i++ {
		lines = append(lines, fmt.Sprintf(`{"id":%d,"first_name":"Anna","last_name":"N%d","custom_fields_values":[{"field_code":"PHONE","values":[{"value":"+7 916 000-%04d"}]},{"field_code":"EMAIL","values":[{"value":"anna%d@shop.test"},{"value":"A%d@Home.test"}]},{"field_name":"Number","values":[{"value":42}]}]}`, i, i, i, i, i))
	}
	_, _, c := newSim(t, sim.Options{}, lines...)
	ctx := context.Background()

	p, err := c.SearchContacts(ctx, "shop.test", 1)
	require.NoError(t, err)
	require.Len(t, p.Contacts, kommoapi.ContactsPageLimit)
	require.True(t, p.More)
	require.Equal(t, kommoapi.Contact{ID: 1, Name: "Anna N1", Phones: []string{"+7 916 000-0001"}, Emails: []string{"anna1@shop.test", "A1@Home.test"}}, p.Contacts[0],
		"name from first and last name; phones and e-mails as written; other fields left out")
	p, err = c.SearchContacts(ctx, "shop.test", 2)
	require.NoError(t, err)
	require.Len(t, p.Contacts, 10)
	require.False(t, p.More)

	p, err = c.SearchContacts(ctx, "nobody@nowhere.test", 1)
	require.NoError(t, err, "204 is no match, not an error")
	require.Empty(t, p.Contacts)
	require.False(t, p.More)

	_, err = c.SearchContacts(ctx, " ", 1)
	require.ErrorContains(t, err, "empty query")
}

func TestCreateAndLinkAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	s, srv, c := newSim(t, sim.Options{}, `{"id":7,"name":"Seeded"}`)
	ctx := context.Background()

	ids, err := c.CreateContacts(ctx, []kommoapi.NewContact{
		{RequestID: "k-1", Name: "Anna", Phones: []string{"+79160000001"}, Emails: []string{"anna@x.test"}},
		{RequestID: "k-2", Name: "Boris"},
	})
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"k-1": 8, "k-2": 9}, ids)
	p, err := c.SearchContacts(ctx, "9160000001", 1)
	require.NoError(t, err)
	require.Equal(t, []kommoapi.Contact{{ID: 8, Name: "Anna", Phones: []string{"+79160000001"}, Emails: []string{"anna@x.test"}}}, p.Contacts)

	_, err = c.CreateContacts(ctx, []kommoapi.NewContact{{RequestID: "a"}, {RequestID: "a"}})
	require.ErrorContains(t, err, "repeated")
	_, err = c.CreateContacts(ctx, make([]kommoapi.NewContact, kommoapi.MaxBatch+1))
	require.ErrorContains(t, err, "1 to 50")
	require.Equal(t, int64(2), s.Stats().ContactsCreated, "refused batches sent nothing")

	// A chat exists once the Chats API created it.
	chatID := createChat(t, srv.URL, "conv-9")
	links, err := c.ChatLinks(ctx, chatID)
	require.NoError(t, err)
	require.Empty(t, links)
	made, err := c.LinkChats(ctx, []kommoapi.ChatLink{{ChatID: chatID, ContactID: 8, RequestID: "conv-9"}})
	require.NoError(t, err)
	require.Len(t, made, 1)
	require.Equal(t, kommoapi.ChatLink{ID: made[0].ID, ChatID: chatID, ContactID: 8, RequestID: "conv-9"}, made[0])
	require.NotZero(t, made[0].ID)
	links, err = c.ChatLinks(ctx, chatID)
	require.NoError(t, err)
	require.Equal(t, []kommoapi.ChatLink{{ID: made[0].ID, ChatID: chatID, ContactID: 8}}, links)

	_, err = c.LinkChats(ctx, []kommoapi.ChatLink{{ChatID: "no-such-chat", ContactID: 8, RequestID: "x"}})
	e, ok := kommoapi.AsError(err)
	require.True(t, ok)
	require.Equal(t, http.StatusBadRequest, e.Status)
	require.False(t, e.InDoubt, "a 400 changed nothing")
	require.Equal(t, []kommoapi.FieldError{{RequestID: "x", Path: "chat_id", Detail: "no chat no-such-chat in this account"}}, e.Invalid)
	require.Contains(t, err.Error(), "item x chat_id: no chat no-such-chat")
}

// createChat creates a chat through the simulator's Chats API.
func createChat(t *testing.T, base, conv string) string {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"conversation_id":%q,"user":{"id":"u-%s","name":"U"}}`, conv, conv))
	path := "/v2/origin/custom/" + simScope + "/chats"
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(string(body)))
	require.NoError(t, err)
	signer.Sign(http.MethodPost, path, body, "chan-secret", time.Now()).Apply(req.Header)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	var r struct {
		ID string `json:"id"`
	}
	require.NoError(t, jsonUnmarshal(b, &r))
	return r.ID
}

func TestTypedErrorsOfTheContactCalls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// 401: a token the account does not know.
	_, srv, _ := newSim(t, sim.Options{})
	bad, err := kommoapi.New(kommoapi.Config{BaseURL: srv.URL, Token: "not-the-token"})
	require.NoError(t, err)
	_, err = bad.SearchContacts(ctx, "x", 1)
	e, ok := kommoapi.AsError(err)
	require.True(t, ok)
	require.True(t, e.Unauthorized())
	require.Contains(t, e.Reason(), "wrong, expired or revoked")
	require.False(t, e.Retryable())

	// 403 on linking: a token of another integration.
	_, srv, c := newSim(t, sim.Options{CRMTokenNoLink: true})
	_, err = c.ChatLinks(ctx, "00000000-0000-4000-8000-000000000000")
	e, ok = kommoapi.AsError(err)
	require.True(t, ok)
	require.True(t, e.Forbidden())
	require.True(t, e.Linking())
	require.Contains(t, e.Reason(), "the integration whose uuid is set in the chat channel's settings")
	_, err = c.LinkChats(ctx, []kommoapi.ChatLink{{ChatID: createChat(t, srv.URL, "c"), ContactID: 1}})
	e, _ = kommoapi.AsError(err)
	require.True(t, e.Forbidden() && e.Linking())

	// 429 from the simulator's own main-API limit: retry_after comes through.
	_, _, c = newSim(t, sim.Options{CRMRate: 1, CRMRetryAfter: 90 * time.Second})
	_, err = c.SearchContacts(ctx, "x", 1)
	require.NoError(t, err)
	_, err = c.SearchContacts(ctx, "x", 1)
	e, ok = kommoapi.AsError(err)
	require.True(t, ok)
	require.True(t, e.RateLimited())
	require.True(t, e.Retryable())
	require.Equal(t, 90*time.Second, e.RetryAfter)

	// What the simulator does not play: 402, 5xx on a POST, a body-only retry_after.
	var calls atomic.Int64
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		switch r.URL.Query().Get("query") {
		case "unpaid":
			problem(w, http.StatusPaymentRequired, "Payment Required", "account is not paid")
		case "slow":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"title":"Too Many Requests","status":429,"retry_after":300}`))
		case "huge":
			w.Header().Set("Retry-After", "999999999")
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			problem(w, http.StatusBadGateway, "Bad Gateway", "upstream")
		}
	}))
	t.Cleanup(fake.Close)
	fc, err := kommoapi.New(kommoapi.Config{BaseURL: fake.URL, Token: testToken})
	require.NoError(t, err)
	_, err = fc.SearchContacts(ctx, "unpaid", 1)
	e, _ = kommoapi.AsError(err)
	require.True(t, e.PaymentRequired())
	require.Contains(t, e.Reason(), "not paid")
	_, err = fc.SearchContacts(ctx, "slow", 1)
	e, _ = kommoapi.AsError(err)
	require.Equal(t, 300*time.Second, e.RetryAfter, "retry_after from the body")
	_, err = fc.SearchContacts(ctx, "huge", 1)
	e, _ = kommoapi.AsError(err)
	require.Equal(t, kommoapi.MaxRetryAfter, e.RetryAfter)
	_, err = fc.SearchContacts(ctx, "x", 1)
	e, _ = kommoapi.AsError(err)
	require.True(t, e.Retryable())
	require.False(t, e.InDoubt, "a GET is never in doubt")
	_, err = fc.CreateContacts(ctx, []kommoapi.NewContact{{RequestID: "r", Name: "n"}})
	e, _ = kommoapi.AsError(err)
	require.True(t, e.Retryable())
	require.True(t, e.InDoubt, "a 5xx to a POST may have created it")
	require.Contains(t, err.Error(), "in doubt")
	require.Equal(t, int64(5), calls.Load(), "one request per call, never a retry")
	for _, err := range []error{err} {
		require.NotContains(t, fmt.Sprintf("%v %+v", err, err), testToken)
	}

	// A POST whose answer never comes is in doubt.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a gone client only once the body is read
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	hc, err := kommoapi.New(kommoapi.Config{BaseURL: hang.URL, Token: testToken, Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	_, err = hc.LinkChats(ctx, []kommoapi.ChatLink{{ChatID: "c", ContactID: 1}})
	e, _ = kommoapi.AsError(err)
	require.Zero(t, e.Status)
	require.True(t, e.InDoubt)
	require.True(t, e.Retryable())
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
