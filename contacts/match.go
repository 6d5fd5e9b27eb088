package contacts

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/singleflight"

	"github.com/kommo-import/kommo-import/kommoapi"
)

// Op is one kind of main-API request, for the caller's pacing, metrics and
// retry policy.
type Op string

// The requests a Matcher makes.
const (
	OpSearch Op = "contacts_search" // GET /api/v4/contacts?query=
	OpCreate Op = "contacts_create" // POST /api/v4/contacts
	OpLink   Op = "contacts_link"   // POST /api/v4/contacts/chats
	OpLinks  Op = "contacts_links"  // GET /api/v4/contacts/chats?chat_id=
)

// Idempotent reports whether a request of this kind may be made again after
// a failure whose outcome is unknown. Searches and listings may; a create
// or a link that is in doubt (kommoapi.Error.InDoubt) must be looked up
// first (Recheck, ChatLink): a blind repeat could make a second contact.
func (o Op) Idempotent() bool { return o == OpSearch || o == OpLinks }

// Attempt makes one main-API request on the caller's terms: it waits for
// the request's turn (the main API's own rate schedule, --crm-rate, and any
// 429 pause of it), runs call once, and returns call's error, or its own (a
// stop, a pause that outlasts ctx). It may run call again for an error that
// is kommoapi.Error.Retryable and not InDoubt (nothing was done: a 429, a
// 5xx to a GET); it must not otherwise. The importer's paced attempt is one;
// Pacer is one for a standalone command.
type Attempt func(ctx context.Context, op Op, call func(context.Context) error) error

// direct is the Attempt of a Matcher given none: one call, at once.
func direct(ctx context.Context, _ Op, call func(context.Context) error) error { return call(ctx) }

// Outcome is what a conversation's chat gets.
type Outcome string

// The outcomes.
const (
	// OutcomeLink: exactly one contact (or the map's): link the chat to it
	// and send every message silently.
	OutcomeLink Outcome = "link"
	// OutcomeCreate: no contact has the client's phone or e-mail, and
	// --create-contacts creates one (name, phone, e-mail) to link to.
	OutcomeCreate Outcome = "create"
	// OutcomeUnlinked: no contact found (without --create-contacts), or the
	// map says none: the chat is sent unlinked, as without --link-contacts.
	OutcomeUnlinked Outcome = "unlinked"
	// OutcomeAmbiguous: several contacts have the phone or e-mail: not
	// linked; Candidates lists them for the operator's map.
	OutcomeAmbiguous Outcome = "ambiguous"
	// OutcomeNoContactInfo: the client has no usable phone or e-mail:
	// nothing to match by; sent unlinked.
	OutcomeNoContactInfo Outcome = "no_contact_info"
)

// Method is how a contact was chosen.
type Method string

// The methods.
const (
	MethodMap        Method = "map"         // --contacts-map
	MethodPhone      Method = "phone"       // the same phone in E.164
	MethodEmail      Method = "email"       // the same e-mail, case aside
	MethodPhoneEmail Method = "phone+email" // both
	MethodCreated    Method = "created"     // created for the client (by this Matcher)
)

// Contact is a contact a chat is (or could be) linked to.
type Contact struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// By is how the contact matched (phone, email, phone+email).
	By Method `json:"by,omitempty"`
}

// Key is a client's identity as matched: a phone in E.164 and an e-mail in
// lower case, either possibly empty. Clients with the same Key share a
// search and a created contact.
type Key struct {
	Phone Phone
	Email string
}

// String is "E164|email", the key's form in a checkpoint.
func (k Key) String() string { return k.Phone.E164 + "|" + k.Email }

// Empty reports a key with nothing to match by.
func (k Key) Empty() bool { return k.Phone.E164 == "" && k.Email == "" }

// Match is a conversation's outcome.
type Match struct {
	Outcome Outcome
	// Method: how Contact was chosen (OutcomeLink), or MethodMap for an
	// unlinked chat the map said none for.
	Method  Method
	Contact Contact // OutcomeLink
	Key     Key     // what was searched for
	// Candidates are the contacts of an ambiguous match, by id.
	Candidates []Contact
	// Note explains what was not used (a phone that is no number) or why
	// nothing matched.
	Note string
	// NeedsRegion: the client's phone has no country code and no
	// --default-region was given, so it was not used.
	NeedsRegion bool
}

// DefaultMaxSearchPages bounds one search: a query that finds more than
// this many pages of 250 contacts is too broad to verify.
const DefaultMaxSearchPages = 20

// Config configures a Matcher. API is required.
type Config struct {
	API *kommoapi.Client
	// Attempt paces every request; nil makes each at once, one try.
	Attempt Attempt
	// Region reads phones written without a country code (--default-region).
	Region Region
	// Map is the operator's map (--contacts-map); it wins over the search.
	Map *Map
	// Create: a client no contact matches gets OutcomeCreate rather than
	// OutcomeUnlinked (--create-contacts).
	Create bool
	// MaxSearchPages bounds one search; 0 means DefaultMaxSearchPages.
	MaxSearchPages int
}

// Matcher finds the contact of each conversation's client. It caches every
// search for its life (one run): a client with ten chats, or ten clients
// with one phone, cost one search. It is safe for concurrent use;
// concurrent searches for one query make one request.
type Matcher struct {
	cfg     Config
	flight  singleflight.Group
	mu      sync.Mutex
	cache   map[string][]kommoapi.Contact // by query
	created map[int64]bool
	pages   atomic.Int64
}

// New checks cfg and returns a Matcher.
func New(cfg Config) (*Matcher, error) {
	if cfg.API == nil {
		return nil, errors.New("contacts: no API client")
	}
	if cfg.Attempt == nil {
		cfg.Attempt = direct
	}
	if cfg.MaxSearchPages <= 0 {
		cfg.MaxSearchPages = DefaultMaxSearchPages
	}
	return &Matcher{cfg: cfg, cache: map[string][]kommoapi.Contact{}, created: map[int64]bool{}}, nil
}

// Searches returns the number of search requests (pages) made so far.
func (m *Matcher) Searches() int64 { return m.pages.Load() }

// KeyOf reads a client's phone and e-mail. The note says what could not be
// used (a phone that is no number, one without a country code and no
// region, an e-mail without "@").
func (m *Matcher) KeyOf(c Client) (Key, string) {
	k, note, _ := m.keyOf(c)
	return k, note
}

func (m *Matcher) keyOf(c Client) (k Key, note string, needsRegion bool) {
	var notes []string
	if c.Phone != "" {
		p, err := ParsePhone(c.Phone, m.cfg.Region)
		if err != nil {
			notes = append(notes, "phone "+err.Error())
			needsRegion = errors.Is(err, ErrNoCountryCode)
		} else {
			k.Phone = p
		}
	}
	if c.Email != "" {
		if k.Email = NormEmail(c.Email); k.Email == "" {
			notes = append(notes, fmt.Sprintf("e-mail %q is not an address", c.Email))
		}
	}
	return k, strings.Join(notes, "; "), needsRegion
}

// Match finds the contact for a conversation's client: the map's word if it
// has one, else a search by phone and e-mail, each hit verified (the same
// phone in E.164, or the same e-mail case aside). Only a request's failure
// is an error (kommoapi's *Error, or one of the Attempt's); a search too
// broad to verify is a *BroadSearchError.
func (m *Matcher) Match(ctx context.Context, conversationID string, c Client) (Match, error) {
	key, note, needsRegion := m.keyOf(c)
	if id, ok := m.cfg.Map.Lookup(conversationID, c.ID); ok {
		if id == 0 {
			return Match{Outcome: OutcomeUnlinked, Method: MethodMap, Key: key, Note: "the contacts map says none"}, nil
		}
		return Match{Outcome: OutcomeLink, Method: MethodMap, Contact: Contact{ID: id, By: MethodMap}, Key: key}, nil
	}
	res, err := m.match(ctx, key, note, false)
	res.NeedsRegion = needsRegion
	return res, err
}

// Recheck searches for a client's contact again, past the cache: after a
// creation that is in doubt (the request may or may not have made the
// contact), it finds the contact that request made, if it did. The map is
// not consulted (a created contact is never a mapped one).
func (m *Matcher) Recheck(ctx context.Context, c Client) (Match, error) {
	key, note := m.KeyOf(c)
	return m.match(ctx, key, note, true)
}

func (m *Matcher) match(ctx context.Context, key Key, note string, fresh bool) (Match, error) {
	res := Match{Key: key, Note: note}
	if key.Empty() {
		res.Outcome = OutcomeNoContactInfo
		if res.Note == "" {
			res.Note = "the client has no phone or e-mail"
		}
		return res, nil
	}
	var hits []kommoapi.Contact
	if key.Phone.E164 != "" {
		h, err := m.search(ctx, key.Phone.National, fresh)
		if err != nil {
			return res, err
		}
		hits = append(hits, h...)
	}
	if key.Email != "" {
		h, err := m.search(ctx, key.Email, fresh)
		if err != nil {
			return res, err
		}
		hits = append(hits, h...)
	}
	seen := map[int64]bool{}
	for _, h := range hits {
		if seen[h.ID] {
			continue
		}
		seen[h.ID] = true
		if by := m.verify(key, h); by != "" {
			res.Candidates = append(res.Candidates, Contact{ID: h.ID, Name: h.Name, By: by})
		}
	}
	slices.SortFunc(res.Candidates, func(a, b Contact) int { return cmp.Compare(a.ID, b.ID) })
	switch len(res.Candidates) {
	case 0:
		res.Outcome = OutcomeUnlinked
		if m.cfg.Create {
			res.Outcome = OutcomeCreate
		}
		res.Note = joinNote(res.Note, "no contact has this phone or e-mail")
	case 1:
		res.Outcome, res.Contact, res.Method = OutcomeLink, res.Candidates[0], res.Candidates[0].By
		m.mu.Lock()
		if m.created[res.Contact.ID] {
			res.Method = MethodCreated
		}
		m.mu.Unlock()
		res.Candidates = nil
	default:
		res.Outcome = OutcomeAmbiguous
		res.Note = joinNote(res.Note, fmt.Sprintf("%d contacts have this phone or e-mail", len(res.Candidates)))
	}
	return res, nil
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// verify says how a search hit matches the key: the same phone in E.164,
// the same e-mail case aside, both, or "" (a look-alike the loose search
// found: the digits in another field, a longer number, an address that
// contains the one asked for).
func (m *Matcher) verify(key Key, c kommoapi.Contact) Method {
	phone, email := false, false
	if key.Phone.E164 != "" {
		for _, raw := range c.Phones {
			if p, err := ParsePhone(raw, m.cfg.Region); err == nil && p.E164 == key.Phone.E164 {
				phone = true
				break
			}
		}
	}
	if key.Email != "" {
		for _, raw := range c.Emails {
			if NormEmail(raw) == key.Email {
				email = true
				break
			}
		}
	}
	switch {
	case phone && email:
		return MethodPhoneEmail
	case phone:
		return MethodPhone
	case email:
		return MethodEmail
	}
	return ""
}

// BroadSearchError is a search that finds more contacts than can be
// verified: the phone or e-mail is too common to match by.
type BroadSearchError struct {
	Query string
	Pages int
}

func (e *BroadSearchError) Error() string {
	return fmt.Sprintf("the search for %q finds more than %d contacts: too broad to match by; settle it in --contacts-map", e.Query, e.Pages*kommoapi.ContactsPageLimit)
}

// search returns every contact the loose search finds for query, from the
// cache unless fresh; each page is one request through the Attempt.
func (m *Matcher) search(ctx context.Context, query string, fresh bool) ([]kommoapi.Contact, error) {
	if !fresh {
		m.mu.Lock()
		hits, ok := m.cache[query]
		m.mu.Unlock()
		if ok {
			return hits, nil
		}
	}
	flightKey := query
	if fresh {
		flightKey = "\x00fresh\x00" + query
	}
	v, err, _ := m.flight.Do(flightKey, func() (any, error) {
		var all []kommoapi.Contact
		for page := 1; ; page++ {
			if page > m.cfg.MaxSearchPages {
				return nil, &BroadSearchError{Query: query, Pages: m.cfg.MaxSearchPages}
			}
			var p kommoapi.ContactsPage
			err := m.cfg.Attempt(ctx, OpSearch, func(ctx context.Context) error {
				m.pages.Add(1)
				var err error
				p, err = m.cfg.API.SearchContacts(ctx, query, page)
				return err
			})
			if err != nil {
				return nil, err
			}
			all = append(all, p.Contacts...)
			if !p.More {
				break
			}
		}
		m.mu.Lock()
		m.cache[query] = all
		m.mu.Unlock()
		return all, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]kommoapi.Contact), nil
}

// RequestID is the request_id of the contact created for a key in a run:
// the same for every conversation of the client (so a batch creates it
// once) and for every attempt (so a log line of one attempt names the
// other's). Kommo echoes it but does not store it: what finds a contact
// whose creation is in doubt is Recheck.
func RequestID(run string, key Key) string {
	sum := sha256.Sum256([]byte(run + "\x00" + key.String()))
	return "kimp-" + hex.EncodeToString(sum[:8])
}

// NewContact is the contact to create for a client: their name (or, with
// none, the phone or e-mail), the phone in E.164 and the e-mail, so that a
// Recheck finds it strictly.
func NewContact(requestID string, c Client, key Key) kommoapi.NewContact {
	nc := kommoapi.NewContact{RequestID: requestID, Name: strings.TrimSpace(c.Name)}
	if key.Phone.E164 != "" {
		nc.Phones = []string{key.Phone.E164}
	}
	if key.Email != "" {
		nc.Emails = []string{key.Email}
	}
	if nc.Name == "" {
		nc.Name = cmp.Or(key.Phone.E164, key.Email)
	}
	return nc
}

// CreateContacts creates up to kommoapi.MaxBatch contacts in one request
// through the Attempt and returns their ids by request_id. A created contact
// joins the cached searches, so the client's next conversation finds it
// without a request (as MethodCreated). An error that is InDoubt may have
// created some: Recheck each before creating again.
func (m *Matcher) CreateContacts(ctx context.Context, batch []kommoapi.NewContact) (map[string]int64, error) {
	var ids map[string]int64
	err := m.cfg.Attempt(ctx, OpCreate, func(ctx context.Context) error {
		var err error
		ids, err = m.cfg.API.CreateContacts(ctx, batch)
		return err
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, nc := range batch {
		id, ok := ids[nc.RequestID]
		if !ok {
			continue
		}
		m.created[id] = true
		c := kommoapi.Contact{ID: id, Name: nc.Name, Phones: nc.Phones, Emails: nc.Emails}
		for _, ph := range nc.Phones {
			if p, perr := ParsePhone(ph, ""); perr == nil {
				m.addCached(p.National, c)
			}
		}
		for _, e := range nc.Emails {
			m.addCached(e, c)
		}
	}
	return ids, err
}

// addCached adds a contact to a cached search. Callers hold m.mu.
func (m *Matcher) addCached(query string, c kommoapi.Contact) {
	hits, ok := m.cache[query]
	if !ok {
		return // not searched yet: the search will find it
	}
	m.cache[query] = append(slices.Clip(hits), c)
}

// Link links a chat (the Chats API's chat id, from create-chat) to a
// contact in one request through the Attempt, and returns the link. An error
// that is InDoubt may have linked it: ChatLink says.
func (m *Matcher) Link(ctx context.Context, chatID string, contactID int64) (kommoapi.ChatLink, error) {
	var made []kommoapi.ChatLink
	err := m.cfg.Attempt(ctx, OpLink, func(ctx context.Context) error {
		var err error
		made, err = m.cfg.API.LinkChats(ctx, []kommoapi.ChatLink{{ChatID: chatID, ContactID: contactID, RequestID: chatID}})
		return err
	})
	if err != nil {
		return kommoapi.ChatLink{}, err
	}
	return made[0], nil
}

// ChatLink returns a chat's link, nil when it has none, in one request
// through the Attempt.
func (m *Matcher) ChatLink(ctx context.Context, chatID string) (*kommoapi.ChatLink, error) {
	var links []kommoapi.ChatLink
	err := m.cfg.Attempt(ctx, OpLinks, func(ctx context.Context) error {
		var err error
		links, err = m.cfg.API.ChatLinks(ctx, chatID)
		return err
	})
	if err != nil || len(links) == 0 {
		return nil, err
	}
	return &links[0], nil
}

// preflightChat is a chat id no chat has: listing its links asks the API
// whether the token may link, without touching anything.
const preflightChat = "00000000-0000-4000-8000-000000000000"

// Preflight checks, before anything is sent, that the token may search and
// link: one search and one link listing through the Attempt. It returns
// the *kommoapi.Error of a refusal (401: the token; 403 on the listing: not
// an admin's token of the chat channel's own integration; 402: the account
// is not paid); any other answer to the listing of a chat that does not
// exist passes.
func (m *Matcher) Preflight(ctx context.Context) error {
	err := m.cfg.Attempt(ctx, OpSearch, func(ctx context.Context) error {
		_, err := m.cfg.API.SearchContacts(ctx, "kommo-import preflight", 1)
		return err
	})
	if err != nil {
		return err
	}
	_, err = m.ChatLink(ctx, preflightChat)
	if e, ok := kommoapi.AsError(err); ok && e.Status/100 == 4 && !e.Unauthorized() && !e.Forbidden() && !e.PaymentRequired() && !e.RateLimited() {
		return nil
	}
	return err
}
