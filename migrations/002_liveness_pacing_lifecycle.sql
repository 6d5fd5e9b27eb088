-- kommo-import schema, version 2.
--
-- A process is alive while its database session holds its advisory lock (a
-- killed process's session ends with it), so its conversations are free at
-- once; a heartbeat older than a few beats (a host cut off) counts as dead too.
-- The rate is one schedule per scope that every request of every process
-- advances. A conversation whose next message is in doubt, or waits for a
-- retry, is parked until a time instead of idling a worker. Runs can be
-- abandoned, and a run that stages a msgid held by a run nobody works takes
-- it over.

ALTER TABLE kommo_import_runs
    ADD COLUMN abandoned_at   timestamptz,
    ADD COLUMN progress_at    timestamptz,                 -- last time a process of the run delivered a message
    ADD COLUMN taken_over     bigint NOT NULL DEFAULT 0,   -- msgids taken over from runs nobody worked any more
    ADD COLUMN handed_over    bigint NOT NULL DEFAULT 0,   -- msgids later runs took over from this one
    ADD COLUMN quotes_dropped bigint NOT NULL DEFAULT 0,   -- replies/forwards sent without a quote the export does not hold
    ADD COLUMN unknown_fields jsonb  NOT NULL DEFAULT '{}', -- input fields not part of the payload: path -> records
    DROP COLUMN paused_until,                               -- a 429 pause lives in the scope's schedule
    DROP CONSTRAINT kommo_import_runs_notify_check,
    ADD CONSTRAINT kommo_import_runs_notify_check CHECK (notify IN ('newest', 'newest-incoming', 'none'));

-- Whether a message has a receiver (written by a manager or the bot): the
-- newest-incoming notify mode makes the newest message from the client loud.
ALTER TABLE kommo_import_messages ADD COLUMN outgoing boolean NOT NULL DEFAULT false;
UPDATE kommo_import_messages
SET outgoing = (convert_from(payload, 'UTF8')::json -> 'receiver') IS NOT NULL
WHERE state <> 'sent';

ALTER TABLE kommo_import_conversations
    ADD COLUMN not_before timestamptz,               -- parked: not claimed before this time
    ADD COLUMN failures   integer NOT NULL DEFAULT 0; -- failed attempts in a row at its next message

-- The claim takes a parked conversation whose time has come first: a few rows.
CREATE INDEX kommo_import_conversations_parked
    ON kommo_import_conversations (run_name, not_before) WHERE not_before IS NOT NULL AND NOT done;

ALTER TABLE kommo_import_processes
    ADD COLUMN lock_key   bigint,       -- pg_advisory_lock key its database session holds while it lives
    ADD COLUMN expires_at timestamptz;  -- a few heartbeats ahead: later, the process is gone (a host cut off)

-- The processes that are alive: their session still holds their lock (it ends
-- when the process dies, kill -9 included) and their heartbeat is recent.
CREATE VIEW kommo_import_live_processes AS
SELECT p.run_name, p.process_id, p.host, p.pid, p.started_at, p.heartbeat_at
FROM kommo_import_processes p
WHERE p.expires_at > now()
  AND EXISTS (SELECT 1 FROM pg_locks l
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND ((l.classid::bigint << 32) | l.objid::bigint) = p.lock_key);

-- One GCRA schedule per scope: tat is the next free slot; every request takes
-- the slot at max(tat, now()) and moves tat one interval on. Unlogged: losing
-- it in a crash only restarts the schedule, and its updates (several a
-- second) need no WAL.
CREATE UNLOGGED TABLE kommo_import_pacer (
    scope_id     text PRIMARY KEY,
    tat          timestamptz      NOT NULL DEFAULT now(),
    factor       double precision NOT NULL DEFAULT 1,     -- halved by each 429 (down to 1/16), recovering
    last_step    timestamptz      NOT NULL DEFAULT now(), -- last change of factor
    paused_until timestamptz                              -- a 429: no request before this
);

-- The reaper frees the leases of dead processes every heartbeat: a few rows.
CREATE INDEX kommo_import_conversations_leased
    ON kommo_import_conversations (run_name) WHERE lease_owner IS NOT NULL;
