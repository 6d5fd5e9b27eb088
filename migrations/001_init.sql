-- kommo-import schema, version 1.
--
-- A run imports one source into one scope. Messages are keyed by
-- (scope_id, msgid): a msgid known to the scope is never staged again, by
-- this run or any later one, which is what makes re-sync and exactly-once hold.

CREATE TABLE kommo_import_runs (
    name            text PRIMARY KEY,
    scope_id        text NOT NULL,
    source          text NOT NULL,            -- what was read, e.g. csv:/data/export.csv; never a password
    source_version  text NOT NULL DEFAULT '', -- a file's size and modification time when first staged
    notify          text NOT NULL CHECK (notify IN ('newest', 'none')),
    rate            double precision NOT NULL, -- requests/s for all processes of the run together
    staged_line     bigint NOT NULL DEFAULT 0, -- staging checkpoint: every record at or before it is staged
    staging_done    boolean NOT NULL DEFAULT false,
    planned         boolean NOT NULL DEFAULT false,
    records         bigint NOT NULL DEFAULT 0, -- valid records read
    staged          bigint NOT NULL DEFAULT 0, -- rows this run added
    known_sent      bigint NOT NULL DEFAULT 0, -- msgids the scope already had as sent (re-sync)
    known_other     bigint NOT NULL DEFAULT 0, -- msgids another run of the scope holds, not yet sent
    duplicates      bigint NOT NULL DEFAULT 0, -- repeated identical records in the input
    rejected        bigint NOT NULL DEFAULT 0,
    paused_until    timestamptz,              -- a 429 seen by any process pauses every process
    stop_reason     text,
    finished_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE kommo_import_messages (
    scope_id        text   NOT NULL,
    msgid           text   NOT NULL,
    run_name        text   NOT NULL REFERENCES kommo_import_runs (name),
    seq             bigint GENERATED ALWAYS AS IDENTITY, -- staging order, across runs
    conversation_id text   NOT NULL,
    line            bigint NOT NULL,          -- position in the run's source
    msec_timestamp  bigint NOT NULL,
    payload         bytea  NOT NULL,          -- the payload JSON as staged (bytea: any valid JSON string survives)
    state           text   NOT NULL DEFAULT 'pending'
                           CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    silent          boolean,                  -- decided by the plan
    attempts        integer NOT NULL DEFAULT 0,
    kommo_msgid     text,
    kommo_chat_id   text,
    kommo_sender_id text,
    last_error      text,
    reconciled      boolean NOT NULL DEFAULT false, -- found in the chat's history after an in-doubt attempt
    last_attempt_at timestamptz,
    sent_at         timestamptz,
    PRIMARY KEY (scope_id, msgid)
);

CREATE INDEX kommo_import_messages_run_conv
    ON kommo_import_messages (run_name, conversation_id, msec_timestamp, seq);
CREATE INDEX kommo_import_messages_scope_conv
    ON kommo_import_messages (scope_id, conversation_id, msec_timestamp DESC, seq DESC);
-- report and retry find failed messages without reading the whole run.
CREATE INDEX kommo_import_messages_failed
    ON kommo_import_messages (run_name, line) WHERE state = 'failed';

CREATE TABLE kommo_import_conversations (
    run_name        text    NOT NULL REFERENCES kommo_import_runs (name),
    conversation_id text    NOT NULL,
    messages        integer NOT NULL,         -- messages this run sends in it: the largest go first
    done            boolean NOT NULL DEFAULT false,
    lease_owner     text,
    lease_until     timestamptz,
    PRIMARY KEY (run_name, conversation_id)
);

CREATE INDEX kommo_import_conversations_todo
    ON kommo_import_conversations (run_name, messages DESC, conversation_id) WHERE NOT done;

-- Kommo's chat id per conversation of a scope: learnt from send responses or
-- create-chat, needed to read a chat's history when a message is in doubt.
CREATE TABLE kommo_import_chats (
    scope_id        text NOT NULL,
    conversation_id text NOT NULL,
    chat_id         text NOT NULL,
    PRIMARY KEY (scope_id, conversation_id)
);

CREATE TABLE kommo_import_rejects (
    run_name   text   NOT NULL REFERENCES kommo_import_runs (name),
    line       bigint NOT NULL,
    field      text   NOT NULL,
    reason     text   NOT NULL,
    raw        bytea  NOT NULL,               -- the record as read, capped
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_name, line)
);

-- Processes working a run announce themselves with a heartbeat; the run's
-- rate is split between the live ones.
CREATE TABLE kommo_import_processes (
    run_name     text NOT NULL REFERENCES kommo_import_runs (name),
    process_id   text NOT NULL,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_name, process_id)
);
