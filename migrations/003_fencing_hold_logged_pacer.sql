-- kommo-import schema, version 3.
--
-- Exactly once when a process freezes or its network half-dies, and order
-- kept past a failed message:
-- * A conversation's lease has an epoch, raised by every claim: a worker's
--   writes name the epoch it claimed, so a process that comes back from a
--   freeze cannot act on a lease that was taken from it. fence_until is the
--   time until which an earlier owner's request may still arrive (its
--   liveness deadline plus its request timeout): an in-doubt message is not
--   sent again before it.
-- * attempt_id makes the "sending" checkpoint count one attempt once, even
--   when the statement is run again after its answer was lost.
-- * A failed message holds the rest of its conversation (runs.on_failure
--   'hold', the default): held conversations are not claimed until retry
--   sends the failed message (or retry --skip gives it up: state 'skipped').
-- * The scope's rate schedule is logged: a database crash no longer empties
--   it (which let a restarted run send at full rate into a second the API
--   had already counted). It keeps the rate in force, one per scope.

ALTER TABLE kommo_import_pacer SET LOGGED;
ALTER TABLE kommo_import_pacer ADD COLUMN rate double precision; -- requests/s at full speed, shared by every process of the scope

ALTER TABLE kommo_import_conversations
    ADD COLUMN lease_epoch bigint  NOT NULL DEFAULT 0,
    ADD COLUMN fence_until timestamptz,
    ADD COLUMN held        boolean NOT NULL DEFAULT false;

ALTER TABLE kommo_import_messages
    ADD COLUMN attempt_id bigint,
    DROP CONSTRAINT kommo_import_messages_state_check,
    ADD CONSTRAINT kommo_import_messages_state_check
        CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'skipped'));

ALTER TABLE kommo_import_processes
    ADD COLUMN request_timeout double precision NOT NULL DEFAULT 30; -- seconds: how long its requests may travel

ALTER TABLE kommo_import_runs
    ADD COLUMN on_failure text NOT NULL DEFAULT 'hold' CHECK (on_failure IN ('hold', 'continue'));
