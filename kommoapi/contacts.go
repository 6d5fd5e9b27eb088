package kommoapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The contact and chat-link calls. Each method makes exactly one request:
// the caller (the importer's paced attempt, or contacts plan's limiter)
// decides when, and whether to try again.

// Ops of the contact calls, as an *Error names them.
const (
	OpSearchContacts = "search contacts"
	OpCreateContacts = "create contacts"
	OpLinkChats      = "link chats"
	OpChatLinks      = "chat links"
)

// ContactsPageLimit is the page size SearchContacts asks for: the API's maximum.
const ContactsPageLimit = 250

// MaxBatch is the most items CreateContacts and LinkChats send in one
// request. The API takes 250; smaller batches keep a request well inside its
// time limit (Kommo advises shrinking a batch that got a 504).
const MaxBatch = 50

// Field codes of the system fields a contact's phones and e-mails are in.
const (
	FieldPhone = "PHONE"
	FieldEmail = "EMAIL"
)

// Contact is the part of a contact the matching reads: its phones and
// e-mails as written in the account.
type Contact struct {
	ID     int64
	Name   string
	Phones []string
	Emails []string
}

type contactJSON struct {
	ID                 int64  `json:"id"`
	Name               string `json:"name"`
	FirstName          string `json:"first_name"`
	LastName           string `json:"last_name"`
	CustomFieldsValues []struct {
		FieldCode string `json:"field_code"`
		Values    []struct {
			Value json.RawMessage `json:"value"`
		} `json:"values"`
	} `json:"custom_fields_values"`
}

func (cj contactJSON) contact() Contact {
	c := Contact{ID: cj.ID, Name: cj.Name}
	if c.Name == "" {
		c.Name = strings.TrimSpace(cj.FirstName + " " + cj.LastName)
	}
	for _, f := range cj.CustomFieldsValues {
		for _, v := range f.Values {
			s := fieldText(v.Value)
			if s == "" {
				continue
			}
			switch f.FieldCode {
			case FieldPhone:
				c.Phones = append(c.Phones, s)
			case FieldEmail:
				c.Emails = append(c.Emails, s)
			}
		}
	}
	return c
}

// fieldText is a field value as text: a string as it is, a number as
// written; anything else is "".
func fieldText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

// ContactsPage is one page of a contact search.
type ContactsPage struct {
	Contacts []Contact
	// More: the answer announced a next page.
	More bool
}

// SearchContacts asks for one page (from 1) of GET
// /api/v4/contacts?query=...: Kommo's search of every filled field, loose (a
// query finds values that merely contain it) and without phone
// normalisation, so the caller verifies every hit. No match is a 204 and an
// empty page. The next page is asked for by number on the client's own base
// URL, never by following the answer's link (the token must not go wherever
// a response says).
func (c *Client) SearchContacts(ctx context.Context, query string, page int) (ContactsPage, error) {
	op := OpSearchContacts
	if page > 1 {
		op += " page " + strconv.Itoa(page)
	}
	if strings.TrimSpace(query) == "" {
		return ContactsPage{}, &Error{Op: op, Err: errors.New("empty query: it would list every contact")}
	}
	q := url.Values{"query": {query}, "limit": {strconv.Itoa(ContactsPageLimit)}, "page": {strconv.Itoa(max(page, 1))}}
	status, body, err := c.get(ctx, op, "/api/v4/contacts", q)
	if err != nil {
		return ContactsPage{}, err
	}
	if status == http.StatusNoContent || len(body) == 0 {
		return ContactsPage{}, nil
	}
	var p struct {
		Links struct {
			Next *struct {
				Href string `json:"href"`
			} `json:"next"`
		} `json:"_links"`
		Embedded struct {
			Contacts []contactJSON `json:"contacts"`
		} `json:"_embedded"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return ContactsPage{}, &Error{Op: op, Status: status, Err: fmt.Errorf("decode response: %w", err)}
	}
	out := ContactsPage{More: len(p.Embedded.Contacts) > 0 && p.Links.Next != nil && p.Links.Next.Href != ""}
	for _, cj := range p.Embedded.Contacts {
		out.Contacts = append(out.Contacts, cj.contact())
	}
	return out, nil
}

// NewContact is a contact to create. RequestID names it in the answer (and
// in a validation error); it must be unique within the batch.
type NewContact struct {
	RequestID string
	Name      string
	Phones    []string
	Emails    []string
}

type customField struct {
	FieldCode string       `json:"field_code"`
	Values    []fieldValue `json:"values"`
}

type fieldValue struct {
	Value    string `json:"value"`
	EnumCode string `json:"enum_code"`
}

func field(code string, values []string) []customField {
	if len(values) == 0 {
		return nil
	}
	f := customField{FieldCode: code}
	for _, v := range values {
		f.Values = append(f.Values, fieldValue{Value: v, EnumCode: "WORK"})
	}
	return []customField{f}
}

// CreateContacts creates up to MaxBatch contacts in one POST /api/v4/contacts
// and returns their ids by RequestID. The API creates all or none: a 400
// names the refused items in Error.Invalid. An answer that lost an item (or
// never came: Error.InDoubt) may still have created them: look them up
// before creating again.
func (c *Client) CreateContacts(ctx context.Context, batch []NewContact) (map[string]int64, error) {
	const op = OpCreateContacts
	if len(batch) == 0 || len(batch) > MaxBatch {
		return nil, &Error{Op: op, Err: fmt.Errorf("a batch holds 1 to %d contacts, not %d", MaxBatch, len(batch))}
	}
	type item struct {
		Name               string        `json:"name"`
		CustomFieldsValues []customField `json:"custom_fields_values,omitempty"`
		RequestID          string        `json:"request_id"`
	}
	items := make([]item, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, nc := range batch {
		if nc.RequestID == "" || seen[nc.RequestID] {
			return nil, &Error{Op: op, Err: fmt.Errorf("request_id %q: empty or repeated in the batch", nc.RequestID)}
		}
		seen[nc.RequestID] = true
		items = append(items, item{Name: nc.Name, RequestID: nc.RequestID,
			CustomFieldsValues: append(field(FieldPhone, nc.Phones), field(FieldEmail, nc.Emails)...)})
	}
	body, err := json.Marshal(items)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	status, resp, err := c.do(ctx, op, http.MethodPost, "/api/v4/contacts", nil, body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Embedded struct {
			Contacts []struct {
				ID        int64  `json:"id"`
				RequestID string `json:"request_id"`
			} `json:"contacts"`
		} `json:"_embedded"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return nil, &Error{Op: op, Status: status, InDoubt: true, Err: fmt.Errorf("decode response: %w", err)}
	}
	out := make(map[string]int64, len(batch))
	for _, ct := range r.Embedded.Contacts {
		if seen[ct.RequestID] && ct.ID > 0 {
			out[ct.RequestID] = ct.ID
		}
	}
	if len(out) != len(batch) {
		return out, &Error{Op: op, Status: status, InDoubt: true,
			Err: fmt.Errorf("the answer names %d of the %d contacts sent", len(out), len(batch))}
	}
	return out, nil
}

// ChatLink is a chat's link to a contact. ChatID is the Chats API's chat id
// (create-chat's id), not the conversation_id.
type ChatLink struct {
	ID        int64  `json:"id,omitempty"`
	ChatID    string `json:"chat_id"`
	ContactID int64  `json:"contact_id"`
	RequestID string `json:"request_id,omitempty"`
}

type linksJSON struct {
	Embedded struct {
		Chats []struct {
			ID        int64           `json:"id"`
			ChatID    string          `json:"chat_id"`
			ContactID int64           `json:"contact_id"`
			RequestID json.RawMessage `json:"request_id"`
		} `json:"chats"`
	} `json:"_embedded"`
}

func (l linksJSON) links() []ChatLink {
	var out []ChatLink
	for _, ch := range l.Embedded.Chats {
		out = append(out, ChatLink{ID: ch.ID, ChatID: ch.ChatID, ContactID: ch.ContactID, RequestID: fieldText(ch.RequestID)})
	}
	return out
}

// LinkChats links up to MaxBatch chats to contacts in one POST
// /api/v4/contacts/chats and returns the links made. A chat links to one
// contact; linking it to another replaces the link. Only an admin's token of
// the chat channel's own integration may link (else 403: Error.Reason).
func (c *Client) LinkChats(ctx context.Context, links []ChatLink) ([]ChatLink, error) {
	const op = OpLinkChats
	if len(links) == 0 || len(links) > MaxBatch {
		return nil, &Error{Op: op, Err: fmt.Errorf("a batch holds 1 to %d links, not %d", MaxBatch, len(links))}
	}
	items := make([]ChatLink, len(links))
	for i, l := range links {
		if l.ChatID == "" || l.ContactID <= 0 {
			return nil, &Error{Op: op, Err: fmt.Errorf("link %d: a chat id and a contact id are required", i)}
		}
		items[i] = ChatLink{ChatID: l.ChatID, ContactID: l.ContactID, RequestID: l.RequestID}
	}
	body, err := json.Marshal(items)
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	status, resp, err := c.do(ctx, op, http.MethodPost, "/api/v4/contacts/chats", nil, body)
	if err != nil {
		return nil, err
	}
	var r linksJSON
	if err := json.Unmarshal(resp, &r); err != nil {
		return nil, &Error{Op: op, Status: status, InDoubt: true, Err: fmt.Errorf("decode response: %w", err)}
	}
	out := r.links()
	if len(out) != len(links) {
		return out, &Error{Op: op, Status: status, InDoubt: true, Err: fmt.Errorf("the answer names %d of the %d links sent", len(out), len(links))}
	}
	return out, nil
}

// ChatLinks returns the links of one chat (GET
// /api/v4/contacts/chats?chat_id=...): none, or the one contact it is linked
// to. Kommo lists the contact of the chat's incoming lead for a chat that
// has one. The same token rule as LinkChats applies.
func (c *Client) ChatLinks(ctx context.Context, chatID string) ([]ChatLink, error) {
	const op = OpChatLinks
	if chatID == "" {
		return nil, &Error{Op: op, Err: errors.New("empty chat id")}
	}
	status, body, err := c.get(ctx, op, "/api/v4/contacts/chats", url.Values{"chat_id": {chatID}})
	if err != nil {
		return nil, err
	}
	if status == http.StatusNoContent || len(body) == 0 {
		return nil, nil
	}
	var r linksJSON
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, &Error{Op: op, Status: status, Err: fmt.Errorf("decode response: %w", err)}
	}
	return r.links(), nil
}
