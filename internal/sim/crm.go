package sim

import (
	"bufio"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The main (CRM) API, v4, on the simulator's own address: the calls the
// importer makes with an account token (the account, its users, contact
// search and creation, chat links). Its requests are counted apart from the
// Chats API's (Stats.CRM*), and limited by a bucket of their own: Kommo
// limits the main API per account and IP, and a 429 there must not pause the
// message sending.

// CRM endpoint names used in Stats.CRMByEndpoint.
const (
	CRMAccount        = "account"
	CRMUsers          = "users"
	CRMContactsSearch = "contacts_search"
	CRMContactsCreate = "contacts_create"
	CRMLink           = "contacts_link"
	CRMLinks          = "contacts_links"
	CRMUnknown        = "unknown"
)

const crmPrefix = "/api/v4/"

// Limits of the main API the simulator enforces.
const (
	// MaxContactsPage is the largest page of contacts (and users) served.
	MaxContactsPage = 250
	// MaxCRMBatch is the most items one POST of contacts or links takes.
	MaxCRMBatch = 250
	// minDigitQuery is the shortest all-digit query also matched against a
	// value's digits (so "9161234567" finds "+7 (916) 123-45-67").
	minDigitQuery = 5
)

// Contact is a contact of the simulated account as the v4 API shows it. A
// seed file line is one Contact; fields the simulator does not know are
// kept and served back as they were.
type Contact struct {
	ID                 int64               `json:"id"`
	Name               string              `json:"name"`
	FirstName          string              `json:"first_name,omitempty"`
	LastName           string              `json:"last_name,omitempty"`
	CustomFieldsValues []CustomFieldValues `json:"custom_fields_values"`
}

// CustomFieldValues is one custom field of a contact; the system fields are
// told by FieldCode (PHONE, EMAIL).
type CustomFieldValues struct {
	FieldID   int64        `json:"field_id,omitempty"`
	FieldName string       `json:"field_name,omitempty"`
	FieldCode string       `json:"field_code,omitempty"`
	FieldType string       `json:"field_type,omitempty"`
	Values    []FieldValue `json:"values"`
}

// FieldValue is one value of a custom field. Value is a string, a number or
// a boolean.
type FieldValue struct {
	Value    any    `json:"value"`
	EnumID   int64  `json:"enum_id,omitempty"`
	EnumCode string `json:"enum_code,omitempty"`
}

// CRMUser is a user of the simulated account (GET /api/v4/users).
type CRMUser struct {
	ID      int64   `json:"id"`
	Name    string  `json:"name"`
	Email   string  `json:"email"`
	AmojoID *string `json:"amojo_id"`
}

// Link is a chat linked to a contact, as GET /_sim/links lists them.
type Link struct {
	ChatID         string `json:"chat_id"`
	ContactID      int64  `json:"contact_id"`
	ConversationID string `json:"conversation_id"`
}

// storedContact is a contact with what the search looks through.
type storedContact struct {
	id       int64
	raw      map[string]any // served as it is, id included
	haystack []string       // every field value, lower case
	digits   []string       // the same, digits only (for all-digit queries)
}

// link is a chat's link to a contact.
type link struct {
	id        int64
	contactID int64
}

// LoadContacts reads a JSONL file of contacts in the v4 shape (one object a
// line; blank lines skipped). A line that is not a contact is an error naming
// the line; a contact without an id gets one when the server starts.
func LoadContacts(r io.Reader, name string) ([]map[string]any, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var out []map[string]any
	for line := 1; sc.Scan(); line++ {
		b := strings.TrimSpace(sc.Text())
		if b == "" {
			continue
		}
		c, err := parseContact([]byte(b))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// parseContact checks one contact object: it must decode as a Contact.
func parseContact(b []byte) (map[string]any, error) {
	var typed Contact
	if err := json.Unmarshal(b, &typed); err != nil {
		return nil, fmt.Errorf("not a contact: %w", err)
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a contact: %w", err)
	}
	if raw == nil {
		return nil, errors.New("not a contact: null")
	}
	for i, f := range typed.CustomFieldsValues {
		for j, v := range f.Values {
			switch v.Value.(type) {
			case string, float64, bool:
			default:
				return nil, fmt.Errorf("custom_fields_values[%d].values[%d].value: want a string, number or boolean", i, j)
			}
		}
	}
	return raw, nil
}

// index makes a storedContact of a raw contact whose id is set.
func index(id int64, raw map[string]any) *storedContact {
	raw["id"] = id
	sc := &storedContact{id: id, raw: raw}
	add := func(v any) {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		default:
			return
		}
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			sc.haystack = append(sc.haystack, s)
			sc.digits = append(sc.digits, onlyDigits(s))
		}
	}
	for _, k := range []string{"name", "first_name", "last_name"} {
		add(raw[k])
	}
	fields, _ := raw["custom_fields_values"].([]any)
	for _, f := range fields {
		fm, _ := f.(map[string]any)
		values, _ := fm["values"].([]any)
		for _, v := range values {
			vm, _ := v.(map[string]any)
			add(vm["value"])
		}
	}
	return sc
}

func onlyDigits(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}

func allDigits(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) }) < 0
}

// matches is Kommo's loose search as observed: a substring of any filled
// field, case aside; phones are not normalised ("+7..." and "8..." differ),
// though an all-digit query is also looked for in a value's digits, so the
// national number finds "+7 (916) 123-45-67" and "8 916 123 45 67" alike.
func (c *storedContact) matches(q string) bool {
	if q == "" {
		return true
	}
	digits := len(q) >= minDigitQuery && allDigits(q)
	for i, h := range c.haystack {
		if strings.Contains(h, q) || digits && strings.Contains(c.digits[i], q) {
			return true
		}
	}
	return false
}

// seedCRM indexes the seed contacts. Callers hold s.mu (or own s).
func (s *Server) seedCRM(contacts []map[string]any) error {
	s.contacts = map[int64]*storedContact{}
	var next int64 = 1
	for _, raw := range contacts {
		if id, ok := raw["id"].(float64); ok && id >= 1 && id == float64(int64(id)) {
			next = max(next, int64(id)+1)
		}
	}
	for i, raw := range contacts {
		cp := make(map[string]any, len(raw))
		for k, v := range raw {
			cp[k] = v
		}
		id := next
		if f, ok := cp["id"].(float64); ok && f >= 1 && f == float64(int64(f)) {
			id = int64(f)
		} else {
			next++
		}
		if _, dup := s.contacts[id]; dup {
			return fmt.Errorf("sim: contact %d (item %d): id %d given twice", i+1, i+1, id)
		}
		s.contacts[id] = index(id, cp)
		s.contactOrder = append(s.contactOrder, id)
	}
	s.nextContactID = next
	for _, id := range s.contactOrder {
		s.nextContactID = max(s.nextContactID, id+1)
	}
	return nil
}

// serveCRM serves /api/v4/: the rate limit first, then the token, then the
// endpoint.
func (s *Server) serveCRM(w http.ResponseWriter, r *http.Request, arrived time.Time) {
	rec := &recorder{ResponseWriter: w}
	endpoint := crmEndpoint(r.Method, r.URL.Path)
	s.serveCRMEndpoint(rec, r, endpoint, arrived)
	s.mu.Lock()
	s.stats.CRMRequests++
	s.stats.CRMByEndpoint[endpoint]++
	s.stats.CRMByStatus[rec.label()]++
	s.mu.Unlock()
	s.log.Debug("crm request", "method", r.Method, "path", r.URL.Path, "endpoint", endpoint, "status", rec.label())
}

func crmEndpoint(method, path string) string {
	switch {
	case path == "/api/v4/account" && method == http.MethodGet:
		return CRMAccount
	case path == "/api/v4/users" && method == http.MethodGet:
		return CRMUsers
	case path == "/api/v4/contacts" && method == http.MethodGet:
		return CRMContactsSearch
	case path == "/api/v4/contacts" && method == http.MethodPost:
		return CRMContactsCreate
	case path == "/api/v4/contacts/chats" && method == http.MethodPost:
		return CRMLink
	case path == "/api/v4/contacts/chats" && method == http.MethodGet:
		return CRMLinks
	}
	return CRMUnknown
}

func (s *Server) serveCRMEndpoint(w *recorder, r *http.Request, endpoint string, arrived time.Time) {
	if !s.admitCRM(arrived) {
		s.writeTooMany(w, s.opts.CRMRetryAfter, "Too many requests to the main API")
		return
	}
	if !s.crmAuthorized(r) {
		s.log.Info("refused: main API token", "endpoint", endpoint)
		writeProblem(w, http.StatusUnauthorized, "Unauthorized", "Invalid or expired token")
		return
	}
	if (endpoint == CRMLink || endpoint == CRMLinks) && s.opts.CRMTokenNoLink {
		s.log.Info("refused: linking with a token of another integration", "endpoint", endpoint)
		writeProblem(w, http.StatusForbidden, "Forbidden",
			"chats can be linked only by an admin's token of the integration whose uuid is set in the chat channel's settings")
		return
	}
	kind := ""
	if endpoint != CRMAccount && endpoint != CRMUsers {
		kind = s.drawCRMFault()
	}
	switch kind {
	case Fault500, Fault503:
		s.log.Info("main API fault injected", "kind", kind, "endpoint", endpoint)
		writeProblem(w, map[string]int{Fault500: http.StatusInternalServerError, Fault503: http.StatusServiceUnavailable}[kind], "Server Error", "injected fault")
		return
	case FaultAccept500, FaultAcceptDrop:
		// Carried out, then the answer is lost: a POST is in doubt.
		s.serveCRMCall(discardWriter{h: http.Header{}}, r, endpoint)
		s.log.Info("main API fault injected after carrying the request out", "kind", kind, "endpoint", endpoint)
		if kind == FaultAccept500 {
			writeProblem(w, http.StatusInternalServerError, "Server Error", "injected fault after carrying the request out")
			return
		}
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			conn.Close()
			w.dropped = true
			return
		}
		panic(http.ErrAbortHandler)
	}
	s.serveCRMCall(w, r, endpoint)
}

// drawCRMFault decides a contact or link request's fault
// (Options.CRMFaults): 500 and 503 before the request is carried out,
// accept-500 and accept-drop after. Drawn from the faults' generator, in
// arrival order.
func (s *Server) drawCRMFault() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.opts.CRMFaults) == 0 {
		return ""
	}
	kind := s.opts.CRMFaults.pick(s.rng.Float64())
	switch kind {
	case Fault500, Fault503, FaultAccept500, FaultAcceptDrop:
		s.stats.CRMFaults[kind]++
		return kind
	}
	return ""
}

// discardWriter takes an answer nobody will read (an accept fault's).
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// serveCRMCall carries a main-API request out.
func (s *Server) serveCRMCall(w http.ResponseWriter, r *http.Request, endpoint string) {
	switch endpoint {
	case CRMAccount:
		s.serveAccount(w, r)
	case CRMUsers:
		s.serveUsers(w, r)
	case CRMContactsSearch:
		s.serveContactsSearch(w, r)
	case CRMContactsCreate:
		s.serveContactsCreate(w, r)
	case CRMLink:
		s.serveLink(w, r)
	case CRMLinks:
		s.serveLinks(w, r)
	default:
		writeProblem(w, http.StatusNotFound, "Not Found", "no such method: "+r.Method+" "+r.URL.Path)
	}
}

// admitCRM applies the main API's rate limit to a request that arrived at
// now.
func (s *Server) admitCRM(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.crmWin.add(now)
	if s.crmBucket.allow(now) {
		return true
	}
	s.stats.CRMRateLimited++
	if s.stats.CRMFirstRateLimited.IsZero() {
		s.stats.CRMFirstRateLimited = now
	}
	s.stats.CRMLastRateLimited = now
	return false
}

// crmAuthorized checks the bearer token against the account's; with no
// token configured every request is refused.
func (s *Server) crmAuthorized(r *http.Request) bool {
	want := s.opts.CRMToken.Reveal()
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func writeProblem(w http.ResponseWriter, status int, title, detail string) {
	writeJSON(w, status, problem{Title: title, Type: "https://httpstatus.es/" + strconv.Itoa(status), Status: status, Detail: detail})
}

// validationProblem is the 400 of a batch: which item, which field, why.
func validationProblem(w http.ResponseWriter, requestID, path, detail string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{
		"title": "Bad Request", "type": "https://httpstatus.es/400", "status": 400, "detail": "Request validation failed",
		"validation-errors": []any{map[string]any{"request_id": requestID, "errors": []any{
			map[string]string{"code": "InvalidValue", "path": path, "detail": detail}}}},
	})
}

// AccountID is the account's amojo_id: the part of the scope id after "_"
// (scope ids are {channel_id}_{account amojo_id}).
func (s *Server) AccountID() string {
	if _, acc, ok := strings.Cut(s.opts.ScopeID, "_"); ok && acc != "" {
		return acc
	}
	return s.opts.ScopeID
}

func (s *Server) serveAccount(w http.ResponseWriter, r *http.Request) {
	acc := map[string]any{"id": 1, "name": "kommo-sim", "subdomain": "kommo-sim"}
	if slices.Contains(strings.Split(r.URL.Query().Get("with"), ","), "amojo_id") {
		acc["amojo_id"] = s.AccountID()
	}
	writeJSON(w, http.StatusOK, acc)
}

// pageParams reads page (from 1) and limit (1 to MaxContactsPage, default 50).
func pageParams(w http.ResponseWriter, r *http.Request) (page, limit int, ok bool) {
	page, limit = 1, 50
	q := r.URL.Query()
	if v := q.Get("page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeProblem(w, http.StatusBadRequest, "Bad Request", "page must be an integer from 1, got "+strconv.Quote(v))
			return 0, 0, false
		}
		page = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxContactsPage {
			writeProblem(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("limit must be an integer from 1 to %d, got %q", MaxContactsPage, v))
			return 0, 0, false
		}
		limit = n
	}
	return page, limit, true
}

// writePage answers one page of a list: 204 when it is empty, a next link
// while more remain.
func writePage(w http.ResponseWriter, r *http.Request, kind string, items []any, page, limit int) {
	from := (page - 1) * limit
	if from >= len(items) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	to := min(from+limit, len(items))
	self := func(p int) map[string]string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		q.Set("limit", strconv.Itoa(limit))
		return map[string]string{"href": "http://" + r.Host + r.URL.Path + "?" + q.Encode()}
	}
	links := map[string]any{"self": self(page)}
	if to < len(items) {
		links["next"] = self(page + 1)
	}
	writeJSON(w, http.StatusOK, map[string]any{"_page": page, "_links": links, "_embedded": map[string]any{kind: items[from:to]}})
}

func (s *Server) serveUsers(w http.ResponseWriter, r *http.Request) {
	page, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	withAmojo := slices.Contains(strings.Split(r.URL.Query().Get("with"), ","), "amojo_id")
	items := make([]any, 0, len(s.opts.CRMUsers))
	for _, u := range s.opts.CRMUsers {
		m := map[string]any{"id": u.ID, "name": u.Name, "email": u.Email}
		if withAmojo {
			m["amojo_id"] = u.AmojoID
		}
		items = append(items, m)
	}
	writePage(w, r, "users", items, page, limit)
}

func (s *Server) serveContactsSearch(w http.ResponseWriter, r *http.Request) {
	page, limit, ok := pageParams(w, r)
	if !ok {
		return
	}
	q := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("query")))
	s.mu.Lock()
	var items []any
	for _, id := range s.contactOrder {
		if c := s.contacts[id]; c.matches(q) {
			items = append(items, c.raw)
		}
	}
	s.mu.Unlock()
	writePage(w, r, "contacts", items, page, limit)
}

// readBatch reads a POST body that must be a JSON array of 1 to MaxCRMBatch objects.
func readBatch(w http.ResponseWriter, r *http.Request) ([]map[string]any, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		writeProblem(w, http.StatusBadRequest, "Bad Request", "body: "+err.Error())
		return nil, false
	}
	var items []map[string]any
	if err := json.Unmarshal(body, &items); err != nil {
		writeProblem(w, http.StatusBadRequest, "Bad Request", "body must be a JSON array of objects: "+err.Error())
		return nil, false
	}
	if len(items) == 0 || len(items) > MaxCRMBatch {
		writeProblem(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf("body must hold 1 to %d items, got %d", MaxCRMBatch, len(items)))
		return nil, false
	}
	for i, it := range items {
		if it == nil {
			validationProblem(w, strconv.Itoa(i), strconv.Itoa(i), "must be an object")
			return nil, false
		}
	}
	return items, true
}

// requestID is an item's request_id, or its index when it has none.
func requestID(it map[string]any, i int) (string, bool) {
	v, ok := it["request_id"]
	if !ok {
		return strconv.Itoa(i), true
	}
	s, isStr := v.(string)
	return s, isStr
}

func (s *Server) serveContactsCreate(w http.ResponseWriter, r *http.Request) {
	items, ok := readBatch(w, r)
	if !ok {
		return
	}
	type created struct {
		ID        int64  `json:"id"`
		RequestID string `json:"request_id"`
	}
	// Check the whole batch first: Kommo creates all or none.
	for i, it := range items {
		rid, ok := requestID(it, i)
		if !ok {
			validationProblem(w, strconv.Itoa(i), "request_id", "must be a string")
			return
		}
		if _, has := it["id"]; has {
			validationProblem(w, rid, "id", "must not be set on creation")
			return
		}
		for _, k := range []string{"name", "first_name", "last_name"} {
			if v, has := it[k]; has {
				if _, isStr := v.(string); !isStr {
					validationProblem(w, rid, k, "must be a string")
					return
				}
			}
		}
		b, _ := json.Marshal(it)
		if _, err := parseContact(b); err != nil {
			validationProblem(w, rid, "custom_fields_values", err.Error())
			return
		}
	}
	out := make([]created, 0, len(items))
	s.mu.Lock()
	for i, it := range items {
		rid, _ := requestID(it, i)
		delete(it, "request_id")
		if _, has := it["name"]; !has {
			first, _ := it["first_name"].(string)
			last, _ := it["last_name"].(string)
			it["name"] = strings.TrimSpace(first + " " + last)
		}
		id := s.nextContactID
		s.nextContactID++
		s.contacts[id] = index(id, it)
		s.contactOrder = append(s.contactOrder, id)
		s.stats.ContactsCreated++
		out = append(out, created{ID: id, RequestID: rid})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"_links": map[string]any{"self": map[string]string{"href": "/api/v4/contacts"}},
		"_embedded": map[string]any{"contacts": out}})
}

type linkItem struct {
	ChatID    string `json:"chat_id"`
	ContactID int64  `json:"contact_id"`
	ID        int64  `json:"id"`
	RequestID string `json:"request_id"`
}

// serveLink links chats to contacts. A chat links to one contact: linking it
// to another replaces the link (with a new id); linking it to the same one
// again changes nothing.
func (s *Server) serveLink(w http.ResponseWriter, r *http.Request) {
	items, ok := readBatch(w, r)
	if !ok {
		return
	}
	type want struct {
		chatID    string
		contactID int64
		rid       string
	}
	wants := make([]want, 0, len(items))
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, it := range items {
		rid, ok := requestID(it, i)
		if !ok {
			validationProblem(w, strconv.Itoa(i), "request_id", "must be a string")
			return
		}
		chatID, _ := it["chat_id"].(string)
		if chatID == "" {
			validationProblem(w, rid, "chat_id", "required: the chat's id (the Chats API's, a UUID)")
			return
		}
		if _, ok := s.chatByID[chatID]; !ok {
			validationProblem(w, rid, "chat_id", "no chat "+chatID+" in this account")
			return
		}
		f, _ := it["contact_id"].(float64)
		if f < 1 || f != float64(int64(f)) {
			validationProblem(w, rid, "contact_id", "required: a contact id")
			return
		}
		if _, ok := s.contacts[int64(f)]; !ok {
			validationProblem(w, rid, "contact_id", fmt.Sprintf("no contact %d", int64(f)))
			return
		}
		wants = append(wants, want{chatID, int64(f), rid})
	}
	out := make([]linkItem, 0, len(wants))
	for _, wt := range wants {
		c := s.chatByID[wt.chatID]
		switch {
		case c.link == nil || c.link.contactID != wt.contactID:
			if c.link != nil {
				s.stats.LinksChanged++
			}
			if len(c.messages) > 0 {
				s.stats.LinksAfterMessages++
			}
			s.linkSeq++
			c.link = &link{id: s.linkSeq, contactID: wt.contactID}
			s.stats.LinksCreated++
		default:
			s.stats.LinksRepeated++
		}
		out = append(out, linkItem{ChatID: wt.chatID, ContactID: wt.contactID, ID: c.link.id, RequestID: wt.rid})
	}
	writeJSON(w, http.StatusOK, map[string]any{"_total_items": len(out), "_embedded": map[string]any{"chats": out}})
}

// serveLinks lists links by chat_id or by contact_id (one of the two, each
// one value or several as chat_id[]=...); 204 when there are none.
func (s *Server) serveLinks(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	chats := append(q["chat_id"], q["chat_id[]"]...)
	contacts := append(q["contact_id"], q["contact_id[]"]...)
	if len(chats) > 0 == (len(contacts) > 0) {
		writeProblem(w, http.StatusBadRequest, "Bad Request", "give chat_id or contact_id (one of the two)")
		return
	}
	var out []linkItem
	s.mu.Lock()
	if len(chats) > 0 {
		for _, id := range chats {
			if c, ok := s.chatByID[id]; ok && c.link != nil {
				out = append(out, linkItem{ChatID: c.id, ContactID: c.link.contactID, ID: c.link.id})
			}
		}
	} else {
		want := map[int64]bool{}
		for _, v := range contacts {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				s.mu.Unlock()
				writeProblem(w, http.StatusBadRequest, "Bad Request", "contact_id must be an integer, got "+strconv.Quote(v))
				return
			}
			want[n] = true
		}
		for _, c := range s.chats {
			if c.link != nil && want[c.link.contactID] {
				out = append(out, linkItem{ChatID: c.id, ContactID: c.link.contactID, ID: c.link.id})
			}
		}
	}
	s.mu.Unlock()
	if len(out) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	slices.SortFunc(out, func(a, b linkItem) int { return cmpInt(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, map[string]any{"_total_items": len(out), "_embedded": map[string]any{"chats": out}})
}

// Links returns every chat linked to a contact, by conversation_id.
func (s *Server) Links() []Link {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []Link{}
	for _, c := range s.chats {
		if c.link != nil {
			out = append(out, Link{ChatID: c.id, ContactID: c.link.contactID, ConversationID: c.conversationID})
		}
	}
	slices.SortFunc(out, func(a, b Link) int { return strings.Compare(a.ConversationID, b.ConversationID) })
	return out
}

// Contacts returns the account's contacts (seeded and created), by id.
func (s *Server) Contacts() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]map[string]any, 0, len(s.contactOrder))
	for _, id := range s.contactOrder {
		out = append(out, s.contacts[id].raw)
	}
	return out
}
