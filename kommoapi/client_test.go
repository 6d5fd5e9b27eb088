package kommoapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/kommoapi"
	"github.com/kommo-import/kommo-import/signer"
)

const testToken = "long-lived-token-5f3a9c"

// fakeV4 is a strict stand-in for the main API: it refuses a wrong token
// with the documented 401 problem+json, serves the account, and pages users.
type fakeV4 struct {
	users    []map[string]any
	pageSize int  // users per page the fake serves (<= the limit asked)
	end204   bool // past the last page: 204 instead of an empty page
	status   int  // if set, every request gets this status

	mu    sync.Mutex
	pages []int // pages asked for, in order
}

func (f *fakeV4) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+testToken {
		problem(w, http.StatusUnauthorized, "Unauthorized", "Invalid token")
		return
	}
	if f.status != 0 {
		problem(w, f.status, http.StatusText(f.status), "you shall not pass")
		return
	}
	switch r.URL.Path {
	case "/api/v4/account":
		if r.URL.Query().Get("with") != "amojo_id" {
			writeJSON(w, map[string]any{"id": 31337, "name": "Acme", "subdomain": "acme"})
			return
		}
		writeJSON(w, map[string]any{"id": 31337, "name": "Acme", "subdomain": "acme", "amojo_id": "af9945ff-1490-4cad-807d-945c15d88bec"})
	case "/api/v4/users":
		q := r.URL.Query()
		page, _ := strconv.Atoi(q.Get("page"))
		limit, _ := strconv.Atoi(q.Get("limit"))
		if page < 1 || limit < 1 || limit > 250 || q.Get("with") != "amojo_id" {
			problem(w, http.StatusBadRequest, "Bad Request", "bad page, limit or with")
			return
		}
		f.mu.Lock()
		f.pages = append(f.pages, page)
		f.mu.Unlock()
		size := min(f.pageSize, limit)
		from := (page - 1) * size
		if from >= len(f.users) && f.end204 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		to := min(from+size, len(f.users))
		chunk := []map[string]any{}
		if from < len(f.users) {
			chunk = f.users[from:to]
		}
		links := map[string]any{"self": map[string]string{"href": fmt.Sprintf("https://acme.kommo.com/api/v4/users?page=%d", page)}}
		if to < len(f.users) {
			// An href on another host: the client must not follow it there.
			links["next"] = map[string]string{"href": fmt.Sprintf("https://evil.example.com/api/v4/users?page=%d", page+1)}
		}
		writeJSON(w, map[string]any{"_page": page, "_links": links, "_embedded": map[string]any{"users": chunk}})
	default:
		http.NotFound(w, r)
	}
}

func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"title": title, "type": "https://httpstatus.es/" + strconv.Itoa(status), "status": status, "detail": detail})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/hal+json")
	_ = json.NewEncoder(w).Encode(v)
}

func newClient(t *testing.T, h http.Handler, token string) *kommoapi.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := kommoapi.New(kommoapi.Config{BaseURL: srv.URL, Token: signer.Secret(token)})
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func sevenUsers() []map[string]any {
	var us []map[string]any
	for i := 1; i <= 7; i++ {
		u := map[string]any{"id": 1000 + i, "name": "User " + strconv.Itoa(i), "email": fmt.Sprintf("user%d@acme.test", i), "amojo_id": fmt.Sprintf("amojo-%d", i)}
		if i == 5 {
			u["amojo_id"] = nil // a user without a chat identity
		}
		us = append(us, u)
	}
	return us
}

func TestAccount(t *testing.T) {
	t.Parallel()
	c := newClient(t, &fakeV4{}, testToken)
	a, err := c.Account(context.Background())
	require.NoError(t, err)
	require.Equal(t, &kommoapi.Account{ID: 31337, Name: "Acme", Subdomain: "acme", AmojoID: "af9945ff-1490-4cad-807d-945c15d88bec"}, a)
}

func TestUsersPages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		fake      *fakeV4
		wantPages []int
	}{
		{name: "three pages, the last short without next", fake: &fakeV4{users: sevenUsers(), pageSize: 3}, wantPages: []int{1, 2, 3}},
		{name: "full last page without next", fake: &fakeV4{users: sevenUsers()[:6], pageSize: 3}, wantPages: []int{1, 2}},
		{name: "stop on 204", fake: &fakeV4{users: sevenUsers()[:6], pageSize: 2, end204: true}, wantPages: []int{1, 2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, tt.fake, testToken)
			users, err := c.Users(context.Background())
			require.NoError(t, err)
			want := len(tt.fake.users)
			require.Len(t, users, want)
			require.Equal(t, kommoapi.User{ID: 1001, Name: "User 1", Email: "user1@acme.test", AmojoID: "amojo-1"}, users[0])
			require.Equal(t, "", users[4].AmojoID, "null amojo_id is empty")
			require.Equal(t, tt.wantPages, tt.fake.pages)
		})
	}
}

func TestUsersPageAfterLastIsEmpty(t *testing.T) {
	t.Parallel()
	// A server announcing a next page that turns out empty: stop there.
	f := &fakeV4{users: sevenUsers()[:4], pageSize: 2}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("page") == "3" {
			writeJSON(w, map[string]any{"_links": map[string]any{"next": map[string]string{"href": "x"}}, "_embedded": map[string]any{"users": []any{}}})
			return
		}
		f.ServeHTTP(w, r)
	})
	c := newClient(t, h, testToken)
	users, err := c.Users(context.Background())
	require.NoError(t, err)
	require.Len(t, users, 4)
}

func TestErrorsAreTypedAndHoldNoToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	bad := newClient(t, &fakeV4{users: sevenUsers(), pageSize: 3}, "wrong-"+testToken)
	_, err := bad.Users(ctx)
	e, ok := kommoapi.AsError(err)
	require.True(t, ok, "%T", err)
	require.True(t, e.Unauthorized())
	require.Equal(t, "kommo api: users page 1: 401 Unauthorized: Invalid token", err.Error())
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", err, e, e), testToken)

	notAdmin := newClient(t, &fakeV4{status: http.StatusForbidden}, testToken)
	_, err = notAdmin.Users(ctx)
	e, ok = kommoapi.AsError(err)
	require.True(t, ok)
	require.True(t, e.Forbidden())
	require.NotContains(t, err.Error(), testToken)

	redirect := newClient(t, http.RedirectHandler("http://elsewhere.example.com/", http.StatusFound), testToken)
	_, err = redirect.Account(ctx)
	e, ok = kommoapi.AsError(err)
	require.True(t, ok)
	require.Equal(t, http.StatusFound, e.Status)
	require.Contains(t, err.Error(), "not followed")

	garbage := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("<html>")) }), testToken)
	_, err = garbage.Account(ctx)
	require.ErrorContains(t, err, "decode response")

	noAmojo := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, map[string]any{"id": 1}) }), testToken)
	_, err = noAmojo.Account(ctx)
	require.ErrorContains(t, err, "without amojo_id")

	// Nothing listens here: a transport error, still without the token.
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := kommoapi.New(kommoapi.Config{BaseURL: url, Token: testToken})
	require.NoError(t, err)
	_, err = c.Account(ctx)
	e, ok = kommoapi.AsError(err)
	require.True(t, ok)
	require.Zero(t, e.Status)
	require.NotContains(t, err.Error(), testToken)
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, token, want string }{
		{"http://acme.kommo.com", testToken, "plain http"},
		{"ftp://acme.kommo.com", testToken, "scheme must be https"},
		{"https://acme.kommo.com/api/v4", testToken, "scheme://host[:port] only"},
		{"https://u:p@acme.kommo.com", testToken, "scheme://host[:port] only"},
		{"", testToken, "no host"},
		{"https://acme.kommo.com", " ", "empty token"},
	} {
		_, err := kommoapi.New(kommoapi.Config{BaseURL: tc.url, Token: signer.Secret(tc.token)})
		require.ErrorContains(t, err, tc.want, tc.url)
		require.NotContains(t, err.Error(), testToken)
	}
	for _, ok := range []string{"https://acme.kommo.com", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:2"} {
		_, err := kommoapi.New(kommoapi.Config{BaseURL: ok, Token: testToken})
		require.NoError(t, err, ok)
	}
}

func TestBaseURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"acme":                    "https://acme.kommo.com",
		"acme.kommo.com":          "https://acme.kommo.com",
		" acme.kommo.com/ ":       "https://acme.kommo.com",
		"acme.amocrm.ru":          "https://acme.amocrm.ru",
		"https://acme.kommo.com/": "https://acme.kommo.com",
		"http://127.0.0.1:9999":   "http://127.0.0.1:9999",
	} {
		got, err := kommoapi.BaseURL(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "acme.kommo.com/api", "http://acme.kommo.com", "user@acme.kommo.com"} {
		_, err := kommoapi.BaseURL(bad)
		require.Error(t, err, bad)
	}
}
