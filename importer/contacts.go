package importer

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/chatsapi"
	"github.com/kommo-import/kommo-import/contacts"
	"github.com/kommo-import/kommo-import/importer/internal/store"
	"github.com/kommo-import/kommo-import/kommoapi"
	"github.com/kommo-import/kommo-import/wire"
)

// Contact linking (--link-contacts), Kommo's own recipe for importing
// history: before a conversation's first message its chat is created (the
// Chats API's create-chat, idempotent per conversation), the client's
// contact found (strictly: package contacts) or created, and the chat
// linked to it; then every message of the chat goes out silent, so no
// incoming lead and no duplicate contact is made for a client the account
// has. Every step is a checkpoint (the chat id; the match per client
// identity; the link per conversation), and every step that changes the
// account writes its intent just before its request (the slot's
// checkpoint) and its result after:
//
//   - a contact's creation is claimed per run and client identity ('creating',
//     one worker of all processes wins); a creation in doubt is searched for
//     again (Recheck, strict: the contact carries the client's phone and
//     e-mail) and made again, with the same request_id, only after its
//     attempt plus the reconcile window (and the request timeout, for another
//     process's attempt) has passed;
//   - a link in doubt ('linking') is read back (the chat's link listing) and
//     posted again only when absent after the window, as a message in doubt
//     is looked up in its chat's history.
//
// The main API's calls have a rate schedule of their own (--crm-rate, the
// pacer row "crm:<account host>"): a 429 there pauses them for every process
// and parks the conversations that need one, while the workers send the
// conversations whose link is settled.

// The run's linking modes, as kommo_import_runs.link_contacts records them.
const (
	linkModeLink   = "link"
	linkModeCreate = "link+create"
)

// createLinger is how long a contact's creation waits for others to join
// its batch; createPoll how long a conversation parks while another worker
// creates its client's contact.
const (
	createLinger = time.Second
	createPoll   = time.Second
)

// linker is this process's contact linking: the run's settings, the
// matcher over the main API's schedule, the batching creator.
type linker struct {
	cfg  *contacts.RunConfig
	mode string
	m    *contacts.Matcher
	cr   *contacts.Creator // made when sending starts
	att  *attempter        // the main API's schedule
	// halt is the send's soft stop (nil before sending): a request waiting
	// for its slot gives it up.
	halt <-chan struct{}
}

// ContactsError is a refusal of Kommo's main API that stops a run that
// links chats: the token refused (401), a token that may not link (403 on
// the link calls: not an admin's token of the chat channel's own
// integration) or may not search, the account not paid (402); at the
// preflight also an API that does not answer or keeps failing, or refuses
// the request otherwise (a wrong address). At the preflight (Preflight)
// nothing of the run was written or sent; during the run the conversation
// that met it is left as it was, to be resumed.
type ContactsError struct {
	Err       *kommoapi.Error
	Preflight bool
	Host      string // the account's address
}

func (e *ContactsError) Error() string {
	when := "while linking chats to contacts"
	if e.Preflight {
		when = "at the preflight, before anything was sent"
	}
	what := "refused the token"
	switch {
	case e.Err.Status == 0:
		what = "did not answer"
	case e.Err.Retryable():
		what = "kept failing"
	case !e.Err.Unauthorized() && !e.Err.Forbidden() && !e.Err.PaymentRequired():
		what = "refused the request"
	}
	msg := fmt.Sprintf("Kommo's main API at %s %s %s: %v", e.Host, what, when, e.Err)
	if r := e.Err.Reason(); r != "" {
		msg += " (" + r + ")"
	}
	return msg
}

func (e *ContactsError) Unwrap() error { return e.Err }

// ErrLinkingNeeded: a conversation of a run that links chats is not linked
// yet, and this invocation (retry) cannot link: resume it with run and
// --link-contacts.
var ErrLinkingNeeded = errors.New("the run links chats to contacts and a conversation's link is not settled: resume it with run --link-contacts")

// errLostClaim: a contact's creation this process claimed was taken over
// (the process was taken for dead): its request is not sent.
var errLostClaim = errors.New("contact creation claim taken over by another process")

// errLinkSettled: the conversation's link is recorded linked already.
var errLinkSettled = errors.New("chat linked already")

// crmPaused is a main-API request not made for a 429 pause in force: the
// conversation parks until it ends.
type crmPaused struct{ after time.Duration }

func (e *crmPaused) Error() string {
	return fmt.Sprintf("Kommo's main API is paused for %s (429)", e.after.Round(time.Second))
}

// newLinker sets up linking for im (Config.Contacts).
func newLinker(im *Importer, cfg *contacts.RunConfig) (*linker, error) {
	if cfg.API == nil {
		return nil, errors.New("importer: Contacts.API is required")
	}
	rate := cfg.CRMRate
	if rate == 0 {
		rate = contacts.DefaultCRMRate
	}
	l := &linker{cfg: cfg, mode: linkModeLink}
	if cfg.Create {
		l.mode = linkModeCreate
	}
	l.att = &attempter{pacer: newPacer(im.q, im.cfg.Clock, "crm:"+cfg.API.Host(), rate, im.withDB), log: im.log, policy: im.att.policy,
		pauseMsg: "rate limited by Kommo's main API: pausing its requests (contact search, creation, links); message sending goes on"}
	m, err := cfg.Matcher(im.crmAttempt)
	if err != nil {
		return nil, fmt.Errorf("importer: %w", err)
	}
	l.m = m
	return l, nil
}

// linkMode is the mode this invocation asks for ("" without linking).
func (im *Importer) linkMode() string {
	if im.link == nil {
		return ""
	}
	return im.link.mode
}

// adoptLinkMode records the run's linking mode, or checks that this
// invocation's is the run's: a run that links keeps linking when resumed
// (its chats are never sent loud because a flag was forgotten), one that
// sent chats unlinked does not start linking halfway. retry (no source)
// keeps the run's mode whatever it is: linked chats stay silent.
func (im *Importer) adoptLinkMode(ctx context.Context) error {
	want := im.linkMode()
	have, err := im.q.AdoptLinkMode(ctx, im.cfg.Run, want)
	if err != nil {
		return fmt.Errorf("open run %s: %w", im.cfg.Run, err)
	}
	im.runLinks = have != ""
	if have == want || (want == "" && im.cfg.Open == nil) {
		return nil
	}
	return &MismatchError{Run: im.cfg.Run, Field: "contacts", Have: cmp.Or(have, "none"), Want: cmp.Or(want, "none")}
}

// crmAttempt is the matcher's contacts.Attempt: one request in a slot of
// the main API's schedule, its checkpoint (if ctx carries one) just before
// the slot and the liveness guard right before the request. It never
// retries: a 429 (or a pause in force) returns *crmPaused, any other
// failure the request's own error, for the caller to park the
// conversation, look a request in doubt up, or stop.
func (im *Importer) crmAttempt(ctx context.Context, _ contacts.Op, call func(context.Context) error) error {
	l := im.link
	var callErr error
	r := request{parkOnPause: true, returnOnPause: true, do: func(ctx context.Context) error {
		callErr = call(ctx)
		return crmClass(callErr)
	}}
	if cp, ok := contacts.CheckpointOf(ctx); ok {
		r.checkpoint = cp.Do
		r.uncheckpoint = func(ctx context.Context, _ bool) error {
			if cp.Undo == nil {
				return nil
			}
			return cp.Undo(ctx)
		}
		r.guard = im.alive
	}
	d, err := l.att.attempt(ctx, l.halt, r, 0)
	switch {
	case err != nil:
		return err
	case d.act == 0:
		return nil
	case d.act == actPause:
		return &crmPaused{after: d.after}
	case d.act == actAbort:
		return interrupted(CauseSignal, "", d.err)
	}
	return callErr
}

// crmClass classifies a main-API error for the retry policy: a 429 pauses
// the schedule, a 5xx or no answer is retryable (in doubt for a POST), any
// other answer permanent. The policy never stops the run for it (that is
// the Chats API's scope): the caller reads the main API's error itself.
func crmClass(err error) error {
	e, ok := kommoapi.AsError(err)
	switch {
	case err == nil:
		return nil
	case !ok:
		return err
	case e.RateLimited():
		return &chatsapi.Error{Op: e.Op, Kind: chatsapi.KindRateLimited, RetryAfter: e.RetryAfter, Err: err}
	case e.Retryable():
		return &chatsapi.Error{Op: e.Op, Kind: chatsapi.KindRetryable, InDoubt: e.InDoubt, Err: err}
	}
	return &chatsapi.Error{Op: e.Op, Kind: chatsapi.KindPermanent, Err: err}
}

// preflightContacts checks, before anything of the run is written or sent,
// that the token may search contacts and link chats: one search and one
// link listing on the main API's schedule. A pause is waited out; an API
// that does not answer is tried three times, one that fails (5xx) up to
// MaxAttempts times.
func (im *Importer) preflightContacts(ctx context.Context) error {
	if im.link == nil {
		return nil
	}
	for failures := 1; ; failures++ {
		err := im.link.m.Preflight(ctx)
		if err == nil {
			return nil
		}
		var paused *crmPaused
		if errors.As(err, &paused) {
			im.log.Warn("Kommo's main API is rate limiting: waiting before the contacts preflight", "for", paused.after.Round(time.Second))
			if err := im.link.att.sleep(ctx, nil, paused.after); err != nil {
				return err
			}
			continue
		}
		e, ok := kommoapi.AsError(err)
		if !ok {
			return err
		}
		if e.Retryable() && (failures < preflightAttempts || e.Status != 0 && failures < im.cfg.MaxAttempts) {
			if err := im.link.att.sleep(ctx, nil, min(im.att.policy.backoff(failures), time.Second)); err != nil {
				return err
			}
			continue
		}
		return &ContactsError{Err: e, Preflight: true, Host: im.link.cfg.API.Host()}
	}
}

// startLinking makes the creator when sending starts (its batches live as
// long as the send) and gives the main API's requests the send's soft stop.
func (im *Importer) startLinking(ctx context.Context, halt <-chan struct{}) {
	if im.link == nil {
		return
	}
	im.link.halt = halt
	im.link.cr = im.link.m.NewCreator(ctx, createLinger)
	im.link.cr.BeforeRequest(func(ctx context.Context, requestIDs []string) error {
		var n int64
		err := im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) (err error) {
			n, err = q.TouchCreating(ctx, im.cfg.Run, im.procID, requestIDs)
			return err
		})
		if err == nil && n < int64(len(requestIDs)) {
			return errLostClaim
		}
		return err
	})
}

// prepareConversation runs before a conversation's first pending message
// is sent (first is that message): with contact linking on, the chat is
// created, the client's contact found (or created) and the chat linked to
// it, each step a checkpoint, and conv.linked set. A non-zero step (parked:
// the v4 API is paused) leaves the conversation for later. Without linking
// it does nothing; in a run that links, a process that does not (retry)
// reads the link, so a linked chat stays silent.
func (im *Importer) prepareConversation(ctx context.Context, conv *conversation, first *pendingMessage, halt <-chan struct{}) (step, error) {
	if im.link == nil && !im.runLinks {
		return 0, nil
	}
	var row store.Link
	var found bool
	err := im.withDB(ctx, "contact link", func(ctx context.Context) (err error) {
		row, found, err = im.q.LinkOf(ctx, im.cfg.ScopeID, conv.id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("contact link of conversation %s: %w", conv.id, err)
	}
	switch {
	case found && row.State == "linked":
		conv.linked = true
		return 0, nil
	case found && row.State == "unlinked" && (row.Run == im.cfg.Run || im.link == nil):
		// Decided by this run; or by an earlier run, and this process
		// cannot decide again.
		return 0, nil
	case im.link == nil:
		return 0, fmt.Errorf("conversation %s: %w", conv.id, ErrLinkingNeeded)
	}
	w := &linkWork{Importer: im, conv: conv, first: first, halt: halt}
	st, err := w.linkConversation(ctx, row, found)
	if err == nil && st == 0 {
		conv.failures = 0
	}
	return st, err
}

// linkWork is one conversation's linking, by the worker that holds it.
type linkWork struct {
	*Importer
	conv  *conversation
	first *pendingMessage // its first pending message: the chat's user, for create-chat
	halt  <-chan struct{}
	// client and key: the conversation's client and what it is matched by,
	// once read.
	client contacts.Client
	key    contacts.Key
}

// linkConversation settles the link of a conversation whose link this run
// has not decided: row is its link row (found: there is one: 'linking', in
// doubt, or 'unlinked' by an earlier run).
func (w *linkWork) linkConversation(ctx context.Context, row store.Link, found bool) (step, error) {
	chatKnown := w.conv.chatID != ""
	if found && row.State == "linking" {
		return w.settleLink(ctx, row, false)
	}
	if chatKnown {
		// The chat had a life before this run decided its link (an earlier
		// import, a run deleted since, an incoming lead): Kommo may have it
		// on a contact already, which is kept.
		link, err := w.link.m.ChatLink(ctx, w.conv.chatID)
		if err != nil {
			return w.crmFailed(ctx, err, "reading its chat's link", store.LinkParams{})
		}
		w.conv.failures = 0
		if link != nil {
			return w.linked(ctx, store.LinkParams{Method: "existing", ContactID: link.ContactID, LinkID: link.ID})
		}
	}

	// The client, from the conversation's staged messages.
	var c store.Client
	err := w.withDB(ctx, "conversation's client", func(ctx context.Context) (err error) {
		c, err = w.q.ConversationClient(ctx, w.cfg.ScopeID, w.conv.id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("client of conversation %s: %w", w.conv.id, err)
	}
	w.client = contacts.Client{ID: c.ID, Name: c.Name, Phone: c.Phone, Email: c.Email}
	p := store.LinkParams{ClientID: w.client.ID}

	// The operator's map wins over the search.
	if id, ok := w.link.cfg.Map.Lookup(w.conv.id, w.client.ID); ok {
		if id == 0 {
			p.Method, p.Reason = "map_none", "the contacts map says none"
			return w.unlinked(ctx, p)
		}
		p.Method, p.ContactID = "map", id
		return w.linkChat(ctx, p)
	}
	key, note := w.link.m.KeyOf(w.client)
	w.key = key
	if w.key.Empty() {
		p.Method, p.Reason = "no_contact_info", cmp.Or(note, "the client has no phone or e-mail")
		return w.unlinked(ctx, p)
	}
	p.MatchKey = w.key.String()
	return w.matchContact(ctx, note, p)
}

// matchContact finds the client's contact: the run's match for the
// client's identity if one is recorded (another conversation of the client,
// a process before a restart), else a search, recorded for the others.
func (w *linkWork) matchContact(ctx context.Context, note string, p store.LinkParams) (step, error) {
	mrow, found, err := w.matchOf(ctx)
	if err != nil {
		return 0, err
	}
	if !found {
		res, err := w.link.m.Match(ctx, w.conv.id, w.client)
		if err != nil {
			return w.crmFailed(ctx, err, "searching for its client's contact", p)
		}
		w.conv.failures = 0
		note = res.Note
		m := store.Match{State: "not_found"}
		switch res.Outcome {
		case contacts.OutcomeLink:
			m = store.Match{State: "found", Method: string(res.Method), ContactID: res.Contact.ID, ContactName: res.Contact.Name}
		case contacts.OutcomeAmbiguous:
			cands, err := json.Marshal(res.Candidates)
			if err != nil {
				return 0, err
			}
			m = store.Match{State: "ambiguous", Candidates: cands}
		case contacts.OutcomeCreate:
			m = store.Match{State: "creating", RequestID: contacts.RequestID(w.cfg.Run, w.key), Owner: w.procID}
		}
		var inserted bool
		err = w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) (err error) {
			inserted, err = q.InsertMatch(ctx, w.cfg.Run, w.key.String(), m)
			return err
		})
		if err != nil {
			return 0, err
		}
		if inserted && m.State == "creating" {
			return w.createContact(ctx, p, m.RequestID)
		}
		if inserted {
			mrow = m
		} else if mrow, found, err = w.matchOf(ctx); err != nil {
			return 0, err
		} else if !found {
			// The claim was given up meanwhile (its request refused): match again soon.
			return stepParked, w.park(ctx, w.conv, createPoll, "")
		}
	}
	switch mrow.State {
	case "found", "created":
		p.Method, p.ContactID = mrow.Method, mrow.ContactID
		return w.linkChat(ctx, p)
	case "ambiguous":
		var cands []contacts.Contact
		_ = json.Unmarshal(mrow.Candidates, &cands)
		p.Method, p.Reason = "ambiguous", fmt.Sprintf("%d contacts have this phone or e-mail: settle it in --contacts-map (kommo-import report --contacts lists them)", len(cands))
		return w.unlinked(ctx, p)
	case "not_found":
		p.Method, p.Reason = "not_found", joinNote(note, "no contact has this phone or e-mail")
		return w.unlinked(ctx, p)
	}
	return w.settleCreate(ctx, p, mrow, false)
}

func joinNote(a, b string) string {
	switch {
	case a == "":
		return b
	case strings.Contains(a, b):
		return a
	}
	return a + "; " + b
}

func (w *linkWork) matchOf(ctx context.Context) (m store.Match, found bool, err error) {
	err = w.withDB(ctx, "contact match", func(ctx context.Context) (err error) {
		m, found, err = w.q.MatchOf(ctx, w.cfg.Run, w.key.String())
		return err
	})
	if err != nil {
		return m, false, fmt.Errorf("contact match: %w", err)
	}
	return m, found, nil
}

// createContact creates the client's contact, this worker holding the
// claim, in the creator's next batch, and links the chat to it.
func (w *linkWork) createContact(ctx context.Context, p store.LinkParams, requestID string) (step, error) {
	nc := contacts.NewContact(requestID, w.client, w.key)
	id, err := w.link.cr.Create(ctx, nc)
	if err == nil {
		w.conv.failures = 0
		err = w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
			return q.SettleMatch(ctx, w.cfg.Run, w.key.String(), store.Match{State: "created", Method: "created", ContactID: id, ContactName: nc.Name})
		})
		if err != nil {
			return 0, err
		}
		w.log.Debug("contact created", "conversation_id", w.conv.id, "contact_id", id, "request_id", requestID)
		p.Method, p.ContactID = "created", id
		return w.linkChat(ctx, p)
	}
	if ctx.Err() != nil {
		return 0, interrupted(CauseSignal, "", ctx.Err())
	}
	if e, ok := kommoapi.AsError(err); ok && e.InDoubt {
		w.log.Info("contact creation in doubt: searching for it", "conversation_id", w.conv.id, "request_id", requestID, "err", err)
		return w.settleCreate(ctx, p, store.Match{State: "creating", RequestID: requestID, Owner: w.procID}, true)
	}
	// Not made (a pause, a refusal, a soft stop, a lost claim): the claim
	// goes, and the client's next conversation claims again.
	if rerr := w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
		return q.ReleaseCreate(ctx, w.cfg.Run, w.key.String(), w.procID)
	}); rerr != nil {
		return 0, rerr
	}
	if errors.Is(err, errLostClaim) {
		return stepParked, w.park(ctx, w.conv, createPoll, "")
	}
	return w.crmFailed(ctx, err, "creating its client's contact", p)
}

// settleCreate settles a creation claim found in doubt ('creating'): the
// client's contact is searched for again, strictly, past the cache (a
// creation that landed is found: it carries the client's phone and e-mail)
// and, found, recorded; not found once the attempt's window has passed, the
// claim is taken over and the contact created with the same request_id.
// While the window lasts (another worker may still create it) the
// conversation parks. lookNow: this worker's own attempt has just ended in
// doubt: search at once.
func (w *linkWork) settleCreate(ctx context.Context, p store.LinkParams, mrow store.Match, lookNow bool) (step, error) {
	window := w.cfg.ReconcileWait
	if mrow.Owner != w.procID {
		window += w.cfg.RequestTimeout
	}
	wait := max(window-mrow.SinceAttempt, 0)
	if lookNow {
		wait = w.cfg.ReconcileWait // the attempt has just ended
	}
	if wait > 0 && !lookNow {
		return stepParked, w.park(ctx, w.conv, min(wait, createPoll), "")
	}
	res, err := w.link.m.Recheck(ctx, w.client)
	if err != nil {
		return w.crmFailed(ctx, err, "searching for a contact whose creation is in doubt", p)
	}
	w.conv.failures = 0
	switch res.Outcome {
	case contacts.OutcomeLink:
		err := w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
			return q.SettleMatch(ctx, w.cfg.Run, w.key.String(), store.Match{State: "created", Method: "created", ContactID: res.Contact.ID, ContactName: res.Contact.Name})
		})
		if err != nil {
			return 0, err
		}
		w.log.Info("contact whose creation was in doubt found: not creating it again", "conversation_id", w.conv.id, "contact_id", res.Contact.ID)
		p.Method, p.ContactID = "created", res.Contact.ID
		return w.linkChat(ctx, p)
	case contacts.OutcomeAmbiguous:
		cands, err := json.Marshal(res.Candidates)
		if err != nil {
			return 0, err
		}
		if err := w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
			return q.SettleMatch(ctx, w.cfg.Run, w.key.String(), store.Match{State: "ambiguous", Candidates: cands})
		}); err != nil {
			return 0, err
		}
		w.log.Warn("several contacts have the client's phone or e-mail now that its creation was in doubt: not linked", "conversation_id", w.conv.id, "contacts", len(res.Candidates))
		p.Method, p.Reason = "ambiguous", fmt.Sprintf("%d contacts have this phone or e-mail: settle it in --contacts-map (kommo-import report --contacts lists them)", len(res.Candidates))
		return w.unlinked(ctx, p)
	}
	if wait > 0 {
		w.log.Info("contact whose creation is in doubt not found yet: parking the conversation", "conversation_id", w.conv.id, "for", wait.Round(time.Millisecond))
		return stepParked, w.park(ctx, w.conv, wait, "")
	}
	var won bool
	err = w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) (err error) {
		won, err = q.RetakeCreate(ctx, w.cfg.Run, w.key.String(), w.procID, w.cfg.ReconcileWait, w.cfg.RequestTimeout)
		return err
	})
	if err != nil {
		return 0, err
	}
	if !won {
		// Another worker took it, or settled it: look again soon.
		return stepParked, w.park(ctx, w.conv, createPoll, "")
	}
	w.log.Info("contact whose creation was in doubt is not in the account: creating it again", "conversation_id", w.conv.id, "request_id", mrow.RequestID)
	return w.createContact(ctx, p, mrow.RequestID)
}

// linkChat links the conversation's chat to p.ContactID, creating the chat
// first when it has none yet (only a chat to be linked costs a create-chat:
// the others are created by their first message): the intent ('linking')
// is the link request's checkpoint, written under the lease just before its
// slot.
func (w *linkWork) linkChat(ctx context.Context, p store.LinkParams) (step, error) {
	if w.conv.chatID == "" {
		st, refused, err := w.createChat(ctx)
		if err != nil || st != 0 {
			return st, err
		}
		if refused != "" {
			p.Method, p.Reason = "error", "create chat: "+refused
			return w.unlinked(ctx, p)
		}
	}
	p.ChatID = w.conv.chatID
	cctx := contacts.WithCheckpoint(ctx, contacts.Checkpoint{
		Do:   func(ctx context.Context) error { return w.markLinking(ctx, p) },
		Undo: w.clearLinking,
	})
	link, err := w.link.m.Link(cctx, w.conv.chatID, p.ContactID)
	if err == nil {
		w.conv.failures = 0
		p.LinkID = link.ID
		return w.linked(ctx, p)
	}
	if errors.Is(err, errLinkSettled) {
		w.conv.linked = true
		return 0, nil
	}
	e, isAPI := kommoapi.AsError(err)
	switch {
	case isAPI && e.InDoubt:
		w.log.Info("link in doubt: reading it back", "conversation_id", w.conv.id, "err", err)
		return w.settleLink(ctx, store.Link{State: "linking", ClientID: p.ClientID, MatchKey: p.MatchKey, Method: p.Method,
			ChatID: p.ChatID, ContactID: p.ContactID}, true)
	case isAPI && !e.Retryable():
		// Refused, not carried out (a 400; a token refused): nothing is in doubt.
		if err := w.clearLinking(ctx); err != nil {
			return 0, err
		}
	}
	return w.crmFailed(ctx, err, "linking its chat", p)
}

// settleLink settles a link in doubt ('linking'): the chat's link is read
// back; present, it is recorded (kept as Kommo has it when it names another
// contact); absent once the reconcile window since the attempt has passed
// (and the conversation's fence: an earlier owner's request), it is posted
// again. ended: this worker's attempt has just ended (the window counts
// from now).
func (w *linkWork) settleLink(ctx context.Context, row store.Link, ended bool) (step, error) {
	p := store.LinkParams{ClientID: row.ClientID, MatchKey: row.MatchKey, Method: row.Method, ContactID: row.ContactID}
	chatID := cmp.Or(row.ChatID, w.conv.chatID)
	link, err := w.link.m.ChatLink(ctx, chatID)
	if err != nil {
		return w.crmFailed(ctx, err, "reading its chat's link", p)
	}
	w.conv.failures = 0
	if link != nil {
		if link.ContactID != row.ContactID {
			w.log.Warn("the chat is on another contact than the one it was being linked to: keeping Kommo's", "conversation_id", w.conv.id,
				"contact_id", link.ContactID, "wanted", row.ContactID)
			p.Method, p.ContactID = "existing", link.ContactID
		}
		p.LinkID = link.ID
		return w.linked(ctx, p)
	}
	since := row.SinceAttempt
	if ended {
		since = 0
	}
	if wait := resendWait(w.cfg.Clock.Now(), since, w.conv.fence, w.cfg.ReconcileWait); wait > 0 {
		w.log.Info("link in doubt not listed yet: parking the conversation", "conversation_id", w.conv.id, "for", wait.Round(time.Millisecond))
		return stepParked, w.park(ctx, w.conv, wait, "")
	}
	return w.linkChat(ctx, p)
}

// crmFailed decides what a failed main-API request does to the
// conversation: a pause parks it until the pause ends; a failure to try
// again parks it for its backoff (the run stops after MaxAttempts in a
// row); a refused token stops the run (*ContactsError); a refusal of this
// request alone (a 400, a search too broad to verify) sends the chat
// unlinked with the reason.
func (w *linkWork) crmFailed(ctx context.Context, err error, what string, p store.LinkParams) (step, error) {
	var paused *crmPaused
	var broad *contacts.BroadSearchError
	switch {
	case errors.Is(err, errHalted):
		return stepHalted, nil
	case errors.As(err, &paused):
		return stepParked, w.park(ctx, w.conv, paused.after, "")
	case errors.As(err, &broad):
		p.Method, p.Reason = "error", broad.Error()
		return w.unlinked(ctx, p)
	}
	e, ok := kommoapi.AsError(err)
	switch {
	case !ok:
		// Not the API's answer: a stop, a lost lease or liveness, the database.
		return 0, err
	case e.Unauthorized() || e.Forbidden() || e.PaymentRequired():
		return 0, &ContactsError{Err: e, Host: w.link.cfg.API.Host()}
	case e.Retryable():
		w.stats.retries.Add(1)
		w.conv.failures++
		if w.conv.failures >= w.cfg.MaxAttempts {
			return 0, interrupted(CauseAPIUnavailable, fmt.Sprintf("%d attempts in a row at %s for conversation %s on Kommo's main API", w.conv.failures, what, w.conv.id), e)
		}
		after := w.att.policy.backoff(w.conv.failures)
		w.log.Info("main API request failed: parking the conversation", "conversation_id", w.conv.id, "what", what, "in", after.Round(time.Millisecond), "err", err)
		return stepParked, w.park(ctx, w.conv, after, "")
	}
	p.Method, p.Reason = "error", what+": "+e.Error()
	return w.unlinked(ctx, p)
}

// createChat creates the conversation's chat (create-chat, idempotent per
// conversation_id) on the Chats API's schedule and records its id. refused
// is the API's refusal, the chat then sent unlinked.
func (w *linkWork) createChat(ctx context.Context) (st step, refused string, err error) {
	var p wire.Payload
	if err := json.Unmarshal(w.first.Payload, &p); err != nil {
		return 0, "", fmt.Errorf("message %s: stored payload: %w", w.first.MsgID, err)
	}
	var chat *chatsapi.Chat
	d, err := w.att.attempt(ctx, w.halt, request{do: func(ctx context.Context) (err error) {
		chat, err = w.api.CreateChat(ctx, w.conv.id, chatUser(&p))
		return err
	}}, w.conv.failures)
	switch {
	case errors.Is(err, errHalted):
		return stepHalted, "", nil
	case err != nil:
		return 0, "", err
	}
	switch d.act {
	case 0:
		w.conv.chatID = chat.ID
		return 0, "", w.saveChat(ctx, w.conv)
	case actAbort:
		return 0, "", interrupted(CauseSignal, "", d.err)
	case actStop:
		return 0, "", d.err
	case actFail:
		return 0, d.api.Error(), nil
	}
	w.stats.retries.Add(1)
	w.conv.failures++
	if w.conv.failures >= w.cfg.MaxAttempts {
		return 0, "", interrupted(CauseAPIUnavailable, fmt.Sprintf("%d attempts in a row at creating the chat of conversation %s", w.conv.failures, w.conv.id), d.api)
	}
	return stepParked, "", w.park(ctx, w.conv, d.after, "")
}

// markLinking is a link request's checkpoint: the intent, under the lease.
func (w *linkWork) markLinking(ctx context.Context, p store.LinkParams) error {
	p.Run, p.Scope, p.Conversation = w.cfg.Run, w.cfg.ScopeID, w.conv.id
	var leased, marked bool
	err := w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) (err error) {
		leased, marked, err = q.MarkLinking(ctx, w.lease(w.conv), w.cfg.Lease, p)
		return err
	})
	switch {
	case err != nil:
		return err
	case !leased:
		return errLostLease
	case !marked:
		return errLinkSettled
	}
	return nil
}

// clearLinking takes a link's intent back: its request was not made, or
// was refused unprocessed (a 429), so nothing is in doubt.
func (w *linkWork) clearLinking(ctx context.Context) error {
	return w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error { return q.ClearLinking(ctx, w.lease(w.conv)) })
}

// linked records the conversation's chat on p.ContactID: every message of
// it goes out silent.
func (w *linkWork) linked(ctx context.Context, p store.LinkParams) (step, error) {
	p.Run, p.Scope, p.Conversation, p.ChatID = w.cfg.Run, w.cfg.ScopeID, w.conv.id, cmp.Or(p.ChatID, w.conv.chatID)
	if err := w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error { return q.MarkLinked(ctx, p) }); err != nil {
		return 0, err
	}
	w.conv.linked = true
	w.log.Debug("chat linked to its client's contact", "conversation_id", w.conv.id, "contact_id", p.ContactID, "method", p.Method)
	return 0, nil
}

// unlinked records the conversation's chat sent unlinked, and why: its
// messages keep the run's notify rule.
func (w *linkWork) unlinked(ctx context.Context, p store.LinkParams) (step, error) {
	p.Run, p.Scope, p.Conversation, p.ChatID = w.cfg.Run, w.cfg.ScopeID, w.conv.id, w.conv.chatID
	p.Reason = cleanText(p.Reason)
	if err := w.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error { return q.MarkUnlinked(ctx, p) }); err != nil {
		return 0, err
	}
	lvl := w.log.Debug
	if p.Method == "error" {
		lvl = w.log.Info
	}
	lvl("chat sent unlinked", "conversation_id", w.conv.id, "why", p.Method, "reason", p.Reason)
	return 0, nil
}

// ContactLinks counts a run's conversations by what became of their chat's
// link (--link-contacts), as status, report and the summary say it.
type ContactLinks struct {
	Mode string `json:"mode"` // link, or link+create (--create-contacts)
	// Linked: on the client's existing contact (by phone, e-mail, the
	// operator's map, or found linked in Kommo already).
	Linked int64 `json:"linked"`
	// Created: on a contact created for the client (--create-contacts).
	Created int64 `json:"created"`
	// Ambiguous: several contacts have the client's phone or e-mail: sent
	// unlinked; report --contacts lists the candidates.
	Ambiguous int64 `json:"ambiguous"`
	// Unlinked: sent unlinked otherwise (no contact matches, no phone or
	// e-mail, the map says none, a refusal: ByMethod says which).
	Unlinked int64 `json:"unlinked"`
	// InDoubt: a link whose request may have landed, read back on resume.
	InDoubt  int64            `json:"in_doubt"`
	ByMethod map[string]int64 `json:"by_method,omitempty"`
}

// contactLinks counts run's links; nil for a run that neither links nor
// has links.
func contactLinks(ctx context.Context, q *store.Queries, run string) (*ContactLinks, error) {
	mode, counts, err := q.CountLinks(ctx, run)
	if err != nil {
		return nil, err
	}
	if mode == "" && len(counts) == 0 {
		return nil, nil
	}
	c := &ContactLinks{Mode: mode, ByMethod: map[string]int64{}}
	for _, n := range counts {
		switch {
		case n.State == "linking":
			c.InDoubt += n.N
			continue
		case n.State == "linked" && n.Method == "created":
			c.Created += n.N
		case n.State == "linked":
			c.Linked += n.N
		case n.Method == "ambiguous":
			c.Ambiguous += n.N
		default:
			c.Unlinked += n.N
		}
		c.ByMethod[n.Method] += n.N
	}
	return c, nil
}

// ContactLink is a conversation's chat link as report --contacts lists it.
type ContactLink struct {
	ConversationID string `json:"conversation_id"`
	ClientID       string `json:"client_id"`
	Phone          string `json:"phone"` // as matched: E.164
	Email          string `json:"email"` // as matched: lower case
	State          string `json:"state"` // linked, unlinked, linking (in doubt)
	// Method: how the contact was chosen (phone, email, phone+email, map,
	// created, existing), or why there is none (ambiguous, not_found,
	// no_contact_info, map_none, error).
	Method      string             `json:"method"`
	ContactID   int64              `json:"contact_id,omitempty"`
	ContactName string             `json:"contact_name,omitempty"`
	ChatID      string             `json:"chat_id,omitempty"`
	LinkID      int64              `json:"link_id,omitempty"`
	Candidates  []contacts.Contact `json:"candidates,omitempty"` // ambiguous: the contacts to choose from
	Reason      string             `json:"reason,omitempty"`
}

// EachContactLink calls fn for each conversation of run whose link the run
// decided, by conversation id, streaming (c is reused). A run the database
// does not have gives ErrNoRun.
func EachContactLink(ctx context.Context, pool *pgxpool.Pool, run string, fn func(c *ContactLink) error) error {
	q := store.New(pool)
	if err := checkRun(ctx, q, run); err != nil {
		return err
	}
	var c ContactLink
	err := q.EachLink(ctx, run, func(r *store.LinkRow) error {
		phone, email, _ := strings.Cut(r.MatchKey, "|")
		c = ContactLink{ConversationID: r.ConversationID, ClientID: r.ClientID, Phone: phone, Email: email, State: r.State,
			Method: r.Method, ContactID: r.ContactID, ContactName: r.ContactName, ChatID: r.ChatID, LinkID: r.LinkID, Reason: r.Reason}
		if len(r.Candidates) > 0 {
			if err := json.Unmarshal(r.Candidates, &c.Candidates); err != nil {
				return fmt.Errorf("conversation %s: candidates: %w", r.ConversationID, err)
			}
		}
		return fn(&c)
	})
	if err != nil {
		return fmt.Errorf("contact links of %s: %w", run, err)
	}
	return nil
}
