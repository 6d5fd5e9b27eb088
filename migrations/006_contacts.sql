-- kommo-import schema: contacts (--link-contacts).
--
-- Before a conversation's first message the importer creates its chat, finds
-- the client's contact (or creates one with --create-contacts) and links the
-- chat to it; a linked chat's messages all go out silent. Every step that
-- changes the account is written here BEFORE its request is sent (the
-- intent: state 'creating' / 'linking', with the time of the attempt) and
-- completed AFTER its answer (the id). A run that finds an intent without
-- its result looks the account up before doing anything again, so a crash
-- at any point makes neither a second contact nor a second link:
--
--   creating, no contact_id: search again (contacts.Matcher.Recheck, past
--       the cache): the contact carries the client's phone/e-mail, so one
--       that was made is found strictly -> 'created' with its id. Found
--       nothing: wait until attempted_at + the reconcile window (the API may
--       be slow to index), search again, and only then create again with the
--       same request_id (attempts + 1; a compare-and-set on attempted_at lets
--       one worker of all processes do it).
--   linking, no link_id: list the chat's link (GET contacts/chats?chat_id=):
--       linked to our contact -> 'linked'; to another one (the chat had a
--       life before: Kommo lists an incoming lead's contact) -> 'linked',
--       method 'existing', that contact kept; none -> POST the link again.
--
-- Neither table is written by a run without --link-contacts.

-- The answer for one client identity (match_key = "+E164|email", either part
-- possibly empty) in one run: shared by every conversation of the client and
-- every process of the run, so a client with ten chats costs one search even
-- across a restart. Creation is claimed here: the worker whose INSERT ...
-- 'creating' wins creates; the others park their conversation until the row
-- is 'created' (or its attempt is older than the reconcile window: then the
-- creator is gone, and they recheck).
CREATE TABLE kommo_import_contact_matches (
    run_name     text   NOT NULL REFERENCES kommo_import_runs (name),
    match_key    text   NOT NULL,
    state        text   NOT NULL CHECK (state IN ('found', 'ambiguous', 'not_found', 'creating', 'created')),
    method       text   CHECK (method IN ('phone', 'email', 'phone+email', 'created')),
    contact_id   bigint,
    contact_name text,
    candidates   jsonb,          -- ambiguous: [{"id": 1, "name": "...", "by": "phone"}, ...]
    request_id   text,           -- creating/created: the request_id of the POST /api/v4/contacts item
    attempted_at timestamptz,    -- creating: when that POST was last sent
    attempts     integer NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_name, match_key),
    CHECK (state NOT IN ('found', 'created') OR contact_id IS NOT NULL),
    CHECK (state <> 'creating' OR (request_id IS NOT NULL AND attempted_at IS NOT NULL))
);

-- One row per conversation of a scope: its chat's link. Keyed like
-- kommo_import_chats (a chat belongs to the scope, whichever run sent it), so
-- a re-sync neither links again nor unlinks; run_name is the run that
-- decided it. A conversation is ready to send once its row is 'linked' or
-- 'unlinked'; its messages then go out all silent if it is 'linked', and
-- under the run's --notify rule if not.
CREATE TABLE kommo_import_contact_links (
    scope_id        text   NOT NULL,
    conversation_id text   NOT NULL,
    run_name        text   NOT NULL REFERENCES kommo_import_runs (name),
    client_id       text   NOT NULL DEFAULT '',
    match_key       text,           -- NULL: the client has no usable phone or e-mail
    state           text   NOT NULL CHECK (state IN ('linking', 'linked', 'unlinked')),
    -- how the contact was chosen (linked), or why there is none (unlinked)
    method          text   NOT NULL CHECK (method IN ('map', 'phone', 'email', 'phone+email', 'created', 'existing',
                                                      'ambiguous', 'not_found', 'no_contact_info', 'map_none', 'error')),
    chat_id         text,           -- the Chats API's chat id the link is for (as in kommo_import_chats)
    contact_id      bigint,
    link_id         bigint,
    reason          text,           -- unlinked: the note (the candidates' count, an unusable phone, the API's refusal)
    attempted_at    timestamptz,    -- linking: when the POST was last sent
    linked_at       timestamptz,
    PRIMARY KEY (scope_id, conversation_id),
    CHECK (state <> 'linking' OR (chat_id IS NOT NULL AND contact_id IS NOT NULL AND attempted_at IS NOT NULL)),
    CHECK (state <> 'linked' OR (chat_id IS NOT NULL AND contact_id IS NOT NULL))
);

-- status and report count a run's links by state and method.
CREATE INDEX kommo_import_contact_links_run ON kommo_import_contact_links (run_name, state, method);
