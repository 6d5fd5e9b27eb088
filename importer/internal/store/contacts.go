package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// The checkpoints of --link-contacts (migrations 006 and 009): per run and
// client identity the match (kommo_import_contact_matches), per scope and
// conversation the chat's link (kommo_import_contact_links). Every step
// that changes the account is written before its request (the intent:
// 'creating', 'linking', with the time of the attempt) and completed after
// its answer (the id); a resumed run that finds an intent looks the account
// up before doing anything again.

// adoptLinkMode records a run's linking mode ($2: ” none, 'link',
// 'link+create') when the run has none yet and has sent nothing (a run that
// sent chats unlinked does not start linking halfway), and returns the mode
// the run has now. The outer SELECT reads the row as it was before the
// UPDATE of the same statement.
const adoptLinkMode = `
WITH up AS (
    UPDATE kommo_import_runs SET link_contacts = $2
    WHERE name = $1 AND link_contacts IS NULL AND $2 <> ''
      AND NOT EXISTS (SELECT 1 FROM kommo_import_messages WHERE run_name = $1 AND state <> 'pending')
    RETURNING link_contacts
)
SELECT COALESCE((SELECT link_contacts FROM up), (SELECT link_contacts FROM kommo_import_runs WHERE name = $1), '')`

// AdoptLinkMode makes mode the run's linking mode if the run has none and
// has sent nothing yet, and returns the run's mode ("" none).
func (q *Queries) AdoptLinkMode(ctx context.Context, run, mode string) (string, error) {
	var have string
	err := q.db.QueryRow(ctx, adoptLinkMode, run, mode).Scan(&have)
	return have, err
}

// Client is a conversation's client as its staged messages give it: the
// first message's client (its receiver, else its sender), with the first
// name, phone and e-mail any of that client's messages carries (exports
// often give the profile on some messages only).
type Client struct {
	ID, Name, Phone, Email string
}

// conversationClient reads every message of the conversation the scope
// holds, from any run (a re-sync's profile may be on an old message), in
// order. The CTE is materialised once (it is read three times).
const conversationClient = `
WITH m AS (
    SELECT u, msec_timestamp, seq FROM (
        SELECT CASE WHEN jsonb_typeof(p -> 'receiver') = 'object' THEN p -> 'receiver' ELSE p -> 'sender' END AS u,
               msec_timestamp, seq
        FROM (SELECT convert_from(payload, 'UTF8')::jsonb AS p, msec_timestamp, seq
              FROM kommo_import_messages WHERE scope_id = $1 AND conversation_id = $2) raw
    ) x WHERE jsonb_typeof(u) = 'object'
), first AS (
    SELECT COALESCE(u ->> 'id', '') AS id FROM m ORDER BY msec_timestamp, seq LIMIT 1
), mine AS (
    SELECT m.* FROM m, first WHERE COALESCE(m.u ->> 'id', '') = first.id
)
SELECT first.id,
    COALESCE((SELECT u ->> 'name' FROM mine WHERE COALESCE(u ->> 'name', '') <> '' ORDER BY msec_timestamp, seq LIMIT 1), ''),
    COALESCE((SELECT btrim(u -> 'profile' ->> 'phone', E' \t\r\n') FROM mine
              WHERE btrim(COALESCE(u -> 'profile' ->> 'phone', ''), E' \t\r\n') <> '' ORDER BY msec_timestamp, seq LIMIT 1), ''),
    COALESCE((SELECT btrim(u -> 'profile' ->> 'email', E' \t\r\n') FROM mine
              WHERE btrim(COALESCE(u -> 'profile' ->> 'email', ''), E' \t\r\n') <> '' ORDER BY msec_timestamp, seq LIMIT 1), '')
FROM first`

// ConversationClient returns the conversation's client as the scope's
// staged messages give it; the zero Client when no message names one.
func (q *Queries) ConversationClient(ctx context.Context, scope, conv string) (Client, error) {
	var c Client
	err := q.db.QueryRow(ctx, conversationClient, scope, conv).Scan(&c.ID, &c.Name, &c.Phone, &c.Email)
	if IsNoRows(err) {
		return Client{}, nil
	}
	return c, err
}

// Link is a conversation's row of kommo_import_contact_links.
type Link struct {
	Run       string // the run that decided it
	ClientID  string
	MatchKey  string // "" when the client had nothing to match by
	State     string // linking, linked, unlinked
	Method    string
	ChatID    string
	ContactID int64
	LinkID    int64
	Reason    string
	// SinceAttempt is the time since the link's request was last sent
	// (linking), in the database's clock.
	SinceAttempt time.Duration
}

const selectLink = `
SELECT run_name, client_id, COALESCE(match_key, ''), state, method, COALESCE(chat_id, ''), COALESCE(contact_id, 0),
       COALESCE(link_id, 0), COALESCE(reason, ''), COALESCE(extract(epoch FROM now() - attempted_at), 1e9)::float8
FROM kommo_import_contact_links WHERE scope_id = $1 AND conversation_id = $2`

// LinkOf reads the conversation's link; ok is false when it has none.
func (q *Queries) LinkOf(ctx context.Context, scope, conv string) (l Link, ok bool, err error) {
	var since float64
	err = q.db.QueryRow(ctx, selectLink, scope, conv).Scan(&l.Run, &l.ClientID, &l.MatchKey, &l.State, &l.Method, &l.ChatID,
		&l.ContactID, &l.LinkID, &l.Reason, &since)
	if IsNoRows(err) {
		return Link{}, false, nil
	}
	l.SinceAttempt = Seconds(since)
	return l, err == nil, err
}

// LinkParams is what a link row records.
type LinkParams struct {
	Run, Scope, Conversation string
	ClientID, MatchKey       string
	Method                   string
	ChatID                   string
	ContactID, LinkID        int64
	Reason                   string
}

// markLinking writes the intent to link the chat ('linking', attempted now)
// while the lease $1-$4 holds, renewing it for $5 seconds, as markSending
// does for a message: no lease, no request. A linked row is never set back.
const markLinking = `
WITH lease AS (
    UPDATE kommo_import_conversations SET lease_until = now() + make_interval(secs => $5)
    WHERE ` + leaseHeld + ` AND lease_until > now()
    RETURNING 1
), up AS (
    INSERT INTO kommo_import_contact_links AS l (scope_id, conversation_id, run_name, client_id, match_key, state, method,
                                                 chat_id, contact_id, attempted_at)
    SELECT $6, $2, $1, $7, NULLIF($8, ''), 'linking', $9, $10, $11, now() WHERE EXISTS (SELECT 1 FROM lease)
    ON CONFLICT (scope_id, conversation_id) DO UPDATE
    SET run_name = EXCLUDED.run_name, client_id = EXCLUDED.client_id, match_key = EXCLUDED.match_key, state = 'linking',
        method = EXCLUDED.method, chat_id = EXCLUDED.chat_id, contact_id = EXCLUDED.contact_id, link_id = NULL,
        reason = NULL, attempted_at = now()
    WHERE l.state <> 'linked'
    RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM lease), EXISTS (SELECT 1 FROM up)`

// MarkLinking records, while l holds its conversation, that the chat's
// link to p.ContactID is about to be requested. leased is false when the
// conversation is not l's any more; marked false when its row is linked
// already.
func (q *Queries) MarkLinking(ctx context.Context, l Lease, lease time.Duration, p LinkParams) (leased, marked bool, err error) {
	err = q.db.QueryRow(ctx, markLinking, l.Run, l.Conversation, l.Owner, l.Epoch, lease.Seconds(), l.Scope,
		p.ClientID, p.MatchKey, p.Method, p.ChatID, p.ContactID).Scan(&leased, &marked)
	return leased, marked, err
}

const clearLinking = `
DELETE FROM kommo_import_contact_links
WHERE scope_id = $5 AND conversation_id = $2 AND state = 'linking'
  AND EXISTS (SELECT 1 FROM kommo_import_conversations WHERE ` + leaseHeld + `)`

// ClearLinking takes back, while l holds its conversation, the intent of a
// link whose request was not made (or was refused unprocessed): nothing of
// it is in doubt. An earlier attempt of it was settled (read back, absent)
// before this one was written.
func (q *Queries) ClearLinking(ctx context.Context, l Lease) error {
	_, err := q.db.Exec(ctx, clearLinking, l.Run, l.Conversation, l.Owner, l.Epoch, l.Scope)
	return err
}

// markLinked records a chat linked (by this run, or found linked), and
// makes the run's messages of the conversation silent as the plan records
// them: they all go out silent (report --sent says what was sent).
const markLinked = `
WITH up AS (
    INSERT INTO kommo_import_contact_links AS l (scope_id, conversation_id, run_name, client_id, match_key, state, method,
                                                 chat_id, contact_id, link_id, linked_at)
    VALUES ($1, $2, $3, $4, NULLIF($5, ''), 'linked', $6, $7, $8, NULLIF($9, 0), now())
    ON CONFLICT (scope_id, conversation_id) DO UPDATE
    SET run_name = EXCLUDED.run_name, client_id = EXCLUDED.client_id, match_key = EXCLUDED.match_key, state = 'linked',
        method = EXCLUDED.method, chat_id = EXCLUDED.chat_id, contact_id = EXCLUDED.contact_id, link_id = EXCLUDED.link_id,
        reason = NULL, linked_at = now()
    WHERE l.state <> 'linked'
)
UPDATE kommo_import_messages SET silent = true
WHERE run_name = $3 AND conversation_id = $2 AND state <> 'sent' AND silent IS DISTINCT FROM true`

// MarkLinked records the conversation's chat linked to p.ContactID (link
// p.LinkID, 0 when unknown). A row linked already is kept as it is.
func (q *Queries) MarkLinked(ctx context.Context, p LinkParams) error {
	_, err := q.db.Exec(ctx, markLinked, p.Scope, p.Conversation, p.Run, p.ClientID, p.MatchKey, p.Method, p.ChatID, p.ContactID, p.LinkID)
	return err
}

const markUnlinked = `
INSERT INTO kommo_import_contact_links AS l (scope_id, conversation_id, run_name, client_id, match_key, state, method, chat_id, reason)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), 'unlinked', $6, NULLIF($7, ''), NULLIF($8, ''))
ON CONFLICT (scope_id, conversation_id) DO UPDATE
SET run_name = EXCLUDED.run_name, client_id = EXCLUDED.client_id, match_key = EXCLUDED.match_key, state = 'unlinked',
    method = EXCLUDED.method, chat_id = COALESCE(EXCLUDED.chat_id, l.chat_id), contact_id = NULL, link_id = NULL,
    reason = EXCLUDED.reason, attempted_at = NULL
WHERE l.state <> 'linked'`

// MarkUnlinked records that the conversation's chat is sent unlinked, how
// (p.Method: ambiguous, not_found, no_contact_info, map_none, error) and
// why (p.Reason). A linked row is kept.
func (q *Queries) MarkUnlinked(ctx context.Context, p LinkParams) error {
	_, err := q.db.Exec(ctx, markUnlinked, p.Scope, p.Conversation, p.Run, p.ClientID, p.MatchKey, p.Method, p.ChatID, p.Reason)
	return err
}

// Match is a client identity's row of kommo_import_contact_matches.
type Match struct {
	State       string // found, ambiguous, not_found, creating, created
	Method      string // phone, email, phone+email, created ("" otherwise)
	ContactID   int64
	ContactName string
	Candidates  json.RawMessage // ambiguous: [{"id", "name", "by"}, ...]
	RequestID   string          // creating, created
	Attempts    int
	// Owner is the process that holds the creation; SinceAttempt the time
	// since its request was last (about to be) sent, in the database's
	// clock.
	Owner        string
	SinceAttempt time.Duration
}

const selectMatch = `
SELECT state, COALESCE(method, ''), COALESCE(contact_id, 0), COALESCE(contact_name, ''), COALESCE(candidates, 'null'),
       COALESCE(request_id, ''), attempts, COALESCE(owner, ''),
       COALESCE(extract(epoch FROM now() - attempted_at), 1e9)::float8
FROM kommo_import_contact_matches WHERE run_name = $1 AND match_key = $2`

// MatchOf reads the run's match for a client identity; ok is false when
// it has none.
func (q *Queries) MatchOf(ctx context.Context, run, key string) (m Match, ok bool, err error) {
	var since float64
	var cands []byte
	err = q.db.QueryRow(ctx, selectMatch, run, key).Scan(&m.State, &m.Method, &m.ContactID, &m.ContactName, &cands,
		&m.RequestID, &m.Attempts, &m.Owner, &since)
	if IsNoRows(err) {
		return Match{}, false, nil
	}
	if string(cands) != "null" {
		m.Candidates = cands
	}
	m.SinceAttempt = Seconds(since)
	return m, err == nil, err
}

const insertMatch = `
INSERT INTO kommo_import_contact_matches (run_name, match_key, state, method, contact_id, contact_name, candidates,
                                          request_id, attempted_at, owner)
VALUES ($1, $2, $3, NULLIF($4, ''), NULLIF($5, 0), NULLIF($6, ''), $7::jsonb, NULLIF($8, ''),
        CASE WHEN $3 = 'creating' THEN now() END, NULLIF($9, ''))
ON CONFLICT DO NOTHING`

// InsertMatch records the run's match for a client identity, unless one is
// recorded already (inserted false: read that one). A 'creating' row is
// the claim of the contact's creation, for owner, its attempt now: of all
// workers of all processes, the one whose row goes in creates.
func (q *Queries) InsertMatch(ctx context.Context, run, key string, m Match) (inserted bool, err error) {
	var cands any
	if len(m.Candidates) > 0 {
		cands = string(m.Candidates)
	}
	tag, err := q.db.Exec(ctx, insertMatch, run, key, m.State, m.Method, m.ContactID, m.ContactName, cands, m.RequestID, m.Owner)
	return tag.RowsAffected() == 1, err
}

// touchCreating is the checkpoint of a creation request, just before it is
// sent: the attempt's time, for every item of the batch the process still
// owns.
const touchCreating = `
UPDATE kommo_import_contact_matches SET attempted_at = now(), attempts = attempts + 1, updated_at = now()
WHERE run_name = $1 AND request_id = ANY($2) AND state = 'creating' AND owner = $3`

// TouchCreating records that the creation of the contacts requestIDs is
// about to be requested by owner, and returns how many of them owner still
// owns (a process taken for dead may have lost some: it must not send them).
func (q *Queries) TouchCreating(ctx context.Context, run, owner string, requestIDs []string) (int64, error) {
	tag, err := q.db.Exec(ctx, touchCreating, run, requestIDs, owner)
	return tag.RowsAffected(), err
}

const settleMatch = `
UPDATE kommo_import_contact_matches
SET state = $3, method = NULLIF($4, ''), contact_id = NULLIF($5, 0), contact_name = NULLIF($6, ''), candidates = $7::jsonb,
    updated_at = now()
WHERE run_name = $1 AND match_key = $2 AND state = 'creating'`

// SettleMatch completes a creation claim: state created (or found: a
// search after a creation in doubt found the contact), or ambiguous. It
// changes nothing when the row is no longer 'creating' (settled already).
func (q *Queries) SettleMatch(ctx context.Context, run, key string, m Match) error {
	var cands any
	if len(m.Candidates) > 0 {
		cands = string(m.Candidates)
	}
	_, err := q.db.Exec(ctx, settleMatch, run, key, m.State, m.Method, m.ContactID, m.ContactName, cands)
	return err
}

const releaseCreate = `
DELETE FROM kommo_import_contact_matches WHERE run_name = $1 AND match_key = $2 AND state = 'creating' AND owner = $3`

// ReleaseCreate gives up owner's creation claim of a contact whose request
// was refused unprocessed (a 429, a 400): the next conversation of the
// client matches and claims again.
func (q *Queries) ReleaseCreate(ctx context.Context, run, key, owner string) error {
	_, err := q.db.Exec(ctx, releaseCreate, run, key, owner)
	return err
}

// retakeCreate takes over a creation in doubt, for $3: its own once its
// last attempt is older than the reconcile window ($4 seconds: the attempt
// has ended, and a request of its own in flight is joined, not repeated),
// another process's once it is older than the window plus the request
// timeout ($5 seconds: the longest that request may have travelled). Every
// attempt is recorded just before its request, for the owner, so a retaken
// claim's old owner sends nothing more. Of several workers, one takes it.
const retakeCreate = `
UPDATE kommo_import_contact_matches SET owner = $3, attempted_at = now(), updated_at = now()
WHERE run_name = $1 AND match_key = $2 AND state = 'creating'
  AND attempted_at <= now() - make_interval(secs => $4 + CASE WHEN owner = $3 THEN 0 ELSE $5 END)`

// RetakeCreate takes over a creation in doubt for owner (see retakeCreate),
// and reports whether it did.
func (q *Queries) RetakeCreate(ctx context.Context, run, key, owner string, window, requestTimeout time.Duration) (bool, error) {
	tag, err := q.db.Exec(ctx, retakeCreate, run, key, owner, window.Seconds(), requestTimeout.Seconds())
	return tag.RowsAffected() == 1, err
}

// LinkCount counts a run's links of one state and method.
type LinkCount struct {
	State, Method string
	N             int64
}

const selectLinkMode = `SELECT COALESCE(link_contacts, '') FROM kommo_import_runs WHERE name = $1`

const countLinks = `
SELECT state, method, count(*) FROM kommo_import_contact_links WHERE run_name = $1 GROUP BY state, method ORDER BY state, method`

// CountLinks counts the run's conversations by the state and method of
// their link, and returns the run's linking mode ("" none).
func (q *Queries) CountLinks(ctx context.Context, run string) (mode string, counts []LinkCount, err error) {
	if err = q.db.QueryRow(ctx, selectLinkMode, run).Scan(&mode); err != nil {
		return "", nil, err
	}
	rows, err := q.db.Query(ctx, countLinks, run)
	if err != nil {
		return "", nil, err
	}
	counts, err = pgx.CollectRows(rows, pgx.RowToStructByPos[LinkCount])
	return mode, counts, err
}

// LinkRow is a conversation's link as report --contacts lists it.
type LinkRow struct {
	ConversationID, ClientID string
	MatchKey                 string
	State, Method            string
	ContactID                int64
	ContactName              string
	ChatID                   string
	LinkID                   int64
	Candidates               []byte // JSON; nil for none
	Reason                   string
}

const selectLinks = `
SELECT l.conversation_id, l.client_id, COALESCE(l.match_key, ''), l.state, l.method, COALESCE(l.contact_id, 0),
       COALESCE(CASE WHEN m.contact_id = l.contact_id THEN m.contact_name END, ''), COALESCE(l.chat_id, c.chat_id, ''),
       COALESCE(l.link_id, 0), CASE WHEN l.method = 'ambiguous' THEN convert_to(m.candidates::text, 'UTF8') END,
       COALESCE(l.reason, '')
FROM kommo_import_contact_links l
LEFT JOIN kommo_import_contact_matches m ON m.run_name = l.run_name AND m.match_key = l.match_key
LEFT JOIN kommo_import_chats c ON c.scope_id = l.scope_id AND c.conversation_id = l.conversation_id
WHERE l.run_name = $1
ORDER BY l.conversation_id`

// EachLink streams the run's links by conversation (r is reused). A chat
// sent unlinked has the chat id its first message got.
func (q *Queries) EachLink(ctx context.Context, run string, fn func(r *LinkRow) error) error {
	rows, err := q.db.Query(ctx, selectLinks, run)
	if err != nil {
		return err
	}
	var r LinkRow
	_, err = pgx.ForEachRow(rows, []any{&r.ConversationID, &r.ClientID, &r.MatchKey, &r.State, &r.Method, &r.ContactID,
		&r.ContactName, &r.ChatID, &r.LinkID, &r.Candidates, &r.Reason}, func() error { return fn(&r) })
	return err
}
