package kommoapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/internal/baseurl"
	"github.com/kommo-import/kommo-import/signer"
)

// Defaults for Config fields left zero.
const (
	DefaultTimeout          = 30 * time.Second
	DefaultMaxResponseBytes = 8 << 20
)

// UsersPageLimit is the page size Users asks for: the API's maximum.
const UsersPageLimit = 250

// maxUserPages stops a server that always answers with a next page: 2,500,000
// users is far beyond any account.
const maxUserPages = 10000

// Config configures a Client. BaseURL and Token are required.
type Config struct {
	// BaseURL is the account's address, e.g. https://mycompany.kommo.com
	// (BaseURL turns a bare domain into one). https only; plain http only
	// to a loopback host.
	BaseURL string
	// Token is a long-lived token (or an OAuth access token) of an admin:
	// only admins may list users.
	Token signer.Secret
	// HTTPClient is copied, with redirect following turned off; nil means a
	// fresh client with certificate checks on.
	HTTPClient *http.Client
	// Timeout bounds one request; default DefaultTimeout.
	Timeout time.Duration
	// MaxResponseBytes caps one response body; default DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// Client calls the main API of one account. It is safe for concurrent use.
type Client struct {
	base     *url.URL
	token    signer.Secret
	hc       *http.Client
	timeout  time.Duration
	maxBytes int64
}

// New checks cfg and returns a Client. It refuses a BaseURL that is not https
// (plain http only to a loopback host) or has a path, query or credentials,
// and an empty Token.
func New(cfg Config) (*Client, error) {
	base, err := baseurl.Parse(cfg.BaseURL, false, "the token would travel unencrypted")
	if err != nil {
		return nil, fmt.Errorf("kommo api: %w", err)
	}
	if strings.TrimSpace(cfg.Token.Reveal()) == "" {
		return nil, errors.New("kommo api: empty token")
	}
	if cfg.Timeout < 0 || cfg.MaxResponseBytes < 0 {
		return nil, errors.New("kommo api: negative Timeout or MaxResponseBytes")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	var hc http.Client
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	if hc.Transport == nil {
		// A clone, not http.DefaultTransport: that is a global anyone can loosen.
		hc.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	// A redirect would carry the token to wherever it points (net/http drops
	// it only across domains, not from https to http on the same host).
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{base: base, token: cfg.Token, hc: &hc, timeout: cfg.Timeout, maxBytes: cfg.MaxResponseBytes}, nil
}

// BaseURL turns what a user types for --kommo-domain into a base URL:
// "mycompany" → https://mycompany.kommo.com, "mycompany.kommo.com" (or an
// amocrm domain) → https://mycompany.kommo.com, and a full URL stays as it
// is (New still checks its scheme).
func BaseURL(domain string) (string, error) {
	d := strings.TrimSpace(domain)
	if d == "" {
		return "", errors.New("empty Kommo domain")
	}
	if strings.Contains(d, "://") {
		u, err := baseurl.Parse(d, false, "the token would travel unencrypted")
		if err != nil {
			return "", err
		}
		return u.String(), nil
	}
	d = strings.TrimSuffix(d, "/")
	if strings.ContainsAny(d, "/?#@ ") {
		return "", fmt.Errorf("the Kommo domain %q: want SUBDOMAIN.kommo.com", domain)
	}
	if !strings.Contains(d, ".") && d != "localhost" {
		d += ".kommo.com"
	}
	return "https://" + d, nil
}

// Account is the part of GET /api/v4/account the importer uses.
type Account struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Subdomain string `json:"subdomain"`
	AmojoID   string `json:"amojo_id"`
}

// Account returns the account, with its amojo_id (the account id connect
// takes). An answer without amojo_id is an *Error.
func (c *Client) Account(ctx context.Context) (*Account, error) {
	const op = "account"
	status, body, err := c.get(ctx, op, "/api/v4/account", url.Values{"with": {"amojo_id"}})
	if err != nil {
		return nil, err
	}
	var a Account
	if status == http.StatusNoContent {
		return nil, &Error{Op: op, Status: status, Err: errors.New("empty answer")}
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, &Error{Op: op, Status: status, Err: fmt.Errorf("decode response: %w", err)}
	}
	if a.AmojoID == "" {
		return nil, &Error{Op: op, Status: status, Err: errors.New("answer without amojo_id")}
	}
	return &a, nil
}

// User is a Kommo user. AmojoID is empty when the API gives null: the user
// has no identity in the chat service (yet), and cannot author messages.
type User struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	AmojoID string `json:"amojo_id"`
}

type usersPage struct {
	Links struct {
		Next *struct {
			Href string `json:"href"`
		} `json:"next"`
	} `json:"_links"`
	Embedded struct {
		Users []struct {
			ID      int64   `json:"id"`
			Name    string  `json:"name"`
			Email   string  `json:"email"`
			AmojoID *string `json:"amojo_id"`
		} `json:"users"`
	} `json:"_embedded"`
}

// Users returns every user of the account with their amojo_ids, reading
// GET /api/v4/users?with=amojo_id page by page (UsersPageLimit a page) until
// a page has no next link, is empty, or is a 204. Only admins may list users:
// anyone else gets an *Error with Status 403.
//
// The next page is asked for by number on the client's own base URL rather
// than by following the next link's href: the token must not go wherever a
// response says.
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var out []User
	for page := 1; ; page++ {
		if page > maxUserPages {
			return nil, &Error{Op: "users", Err: fmt.Errorf("more than %d pages: the API keeps announcing a next page", maxUserPages)}
		}
		op := "users page " + strconv.Itoa(page)
		q := url.Values{"with": {"amojo_id"}, "page": {strconv.Itoa(page)}, "limit": {strconv.Itoa(UsersPageLimit)}}
		status, body, err := c.get(ctx, op, "/api/v4/users", q)
		if err != nil {
			return nil, err
		}
		if status == http.StatusNoContent || len(body) == 0 {
			return out, nil
		}
		var p usersPage
		if err := json.Unmarshal(body, &p); err != nil {
			return nil, &Error{Op: op, Status: status, Err: fmt.Errorf("decode response: %w", err)}
		}
		for _, u := range p.Embedded.Users {
			user := User{ID: u.ID, Name: u.Name, Email: u.Email}
			if u.AmojoID != nil {
				user.AmojoID = *u.AmojoID
			}
			out = append(out, user)
		}
		if len(p.Embedded.Users) == 0 || p.Links.Next == nil || p.Links.Next.Href == "" {
			return out, nil
		}
	}
}

// get makes one GET and returns a 2xx answer's status and body, or an *Error.
func (c *Client) get(ctx context.Context, op, path string, q url.Values) (int, []byte, error) {
	return c.do(ctx, op, http.MethodGet, path, q, nil)
}

// do makes one request (never a retry: the caller paces and retries) and
// returns a 2xx answer's status and body, or an *Error. A body, when given,
// is sent as JSON.
func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	u := *c.base
	u.Path = path
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, &Error{Op: op, Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.token.Reveal())
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	// A POST that got no answer may have been carried out.
	inDoubt := method != http.MethodGet
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, &Error{Op: op, Err: err, InDoubt: inDoubt}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return resp.StatusCode, nil, &Error{Op: op, Status: resp.StatusCode, Err: fmt.Errorf("read response: %w", err), InDoubt: inDoubt && resp.StatusCode/100 != 4}
	}
	if int64(len(data)) > c.maxBytes {
		return resp.StatusCode, nil, &Error{Op: op, Status: resp.StatusCode, Err: fmt.Errorf("response over %d bytes", c.maxBytes), InDoubt: inDoubt && resp.StatusCode/100 != 4}
	}
	if resp.StatusCode/100 != 2 {
		e := &Error{Op: op, Status: resp.StatusCode, InDoubt: inDoubt && resp.StatusCode/100 == 5}
		var prob struct {
			Title      string          `json:"title"`
			Detail     string          `json:"detail"`
			RetryAfter json.RawMessage `json:"retry_after"`
			Validation []struct {
				RequestID string `json:"request_id"`
				Errors    []struct {
					Path   string `json:"path"`
					Detail string `json:"detail"`
				} `json:"errors"`
			} `json:"validation-errors"`
		}
		if json.Unmarshal(data, &prob) == nil {
			e.Title, e.Detail = printable(prob.Title), printable(prob.Detail)
			for _, v := range prob.Validation {
				for _, ve := range v.Errors {
					e.Invalid = append(e.Invalid, FieldError{RequestID: printable(v.RequestID), Path: printable(ve.Path), Detail: printable(ve.Detail)})
				}
			}
		}
		if resp.StatusCode == http.StatusTooManyRequests {
			e.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), prob.RetryAfter)
		}
		if resp.StatusCode/100 == 3 {
			e.Err = fmt.Errorf("redirected to %q (not followed)", printable(resp.Header.Get("Location")))
		}
		return resp.StatusCode, nil, e
	}
	return resp.StatusCode, data, nil
}

// retryAfter reads a 429's wait: the Retry-After header (seconds), else the
// body's retry_after; at most MaxRetryAfter, and at least a second.
func retryAfter(header string, body json.RawMessage) time.Duration {
	secs, err := strconv.ParseFloat(strings.TrimSpace(header), 64)
	if err != nil || secs <= 0 {
		secs = 0
		var n float64
		if json.Unmarshal(body, &n) == nil && n > 0 {
			secs = n
		}
	}
	if secs > MaxRetryAfter.Seconds() || secs != secs {
		return MaxRetryAfter
	}
	return max(time.Duration(secs*float64(time.Second)), time.Second)
}

// CloseIdleConnections closes the pooled connections; call it when done.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// Host is the account's host (and port), as the client's base URL names
// it: what tells one account's rate schedule from another's.
func (c *Client) Host() string { return c.base.Host }
