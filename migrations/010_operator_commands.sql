-- kommo-import schema: the operator's commands (issue 20: status, verify,
-- backfills, known rejects, the dry run; issue 16.8: verify --repair).
--
-- * How an invocation ended, and when: status tells a stop an invocation
--   recorded from a process that died without recording one (its row in
--   kommo_import_processes outlives it, with its last heartbeat).
-- * A backfill: messages of a run older than what their chat already shows
--   (sent by an earlier run) are counted at planning, and with --older skip
--   given up with the reason.
-- * Known rejects: a reject carries the hash of the record as read and its
--   msgid (when the record had one); one that an earlier run of the scope
--   rejected too is known (known_from names that run) and does not fail a
--   later run again; runs ack NAME acknowledges a run's rejects; a run may
--   allow up to max_rejects new ones.
-- * Verify's checkpoint: the conversations a verify of a run has checked,
--   with what it found in each, so that verify --resume goes on where an
--   interrupted one stopped.

ALTER TABLE kommo_import_runs
    ADD COLUMN stopped_at          timestamptz,                 -- when the last invocation that recorded its end ended
    ADD COLUMN older               text   NOT NULL DEFAULT 'send' CHECK (older IN ('send', 'skip')),
    ADD COLUMN older_messages      bigint NOT NULL DEFAULT 0,   -- older than their chat's newest sent message, at planning
    ADD COLUMN older_conversations bigint NOT NULL DEFAULT 0,
    ADD COLUMN max_rejects         bigint NOT NULL DEFAULT 0;   -- new rejects the run allows (--max-rejects)

ALTER TABLE kommo_import_rejects
    ADD COLUMN raw_hash   bytea,        -- sha256 of raw
    ADD COLUMN msgid      text,         -- the record's msgid, when it was read far enough to have one
    ADD COLUMN known_from text,         -- an earlier run of the scope that rejected the same record
    ADD COLUMN acked_at   timestamptz;  -- runs ack: an operator has seen it

UPDATE kommo_import_rejects SET raw_hash = sha256(raw);

-- Staging looks a batch's rejects up among the scope's earlier ones.
CREATE INDEX kommo_import_rejects_hash ON kommo_import_rejects (raw_hash);
CREATE INDEX kommo_import_rejects_msgid ON kommo_import_rejects (msgid) WHERE msgid IS NOT NULL;

-- One verification of a run at a time: the latest one, finished or not. No
-- foreign key, as kommo_import_run_commands: runs delete removes its rows.
CREATE TABLE kommo_import_verifications (
    run_name    text PRIMARY KEY,
    sample      integer     NOT NULL DEFAULT 0,  -- conversations asked for; 0: all
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

-- What the verification found in each conversation it checked.
CREATE TABLE kommo_import_verified (
    run_name        text   NOT NULL,
    conversation_id text   NOT NULL,
    checked         bigint NOT NULL,  -- sent messages looked for
    found           bigint NOT NULL,  -- ... found once
    missing         bigint NOT NULL,
    duplicated      bigint NOT NULL,
    unexpected      bigint NOT NULL,
    in_flight       bigint NOT NULL,
    out_of_order    bigint NOT NULL,
    requests        bigint NOT NULL,
    issues          jsonb  NOT NULL DEFAULT '[]', -- [{"kind": "missing", "msgid": ..., ...}]
    checked_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_name, conversation_id)
);
