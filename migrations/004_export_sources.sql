-- kommo-import schema: messenger exports (Telegram, WhatsApp, Messenger,
-- Instagram) as sources.
--
-- An export holds more than the messages a run stages: chats skipped whole
-- (groups, channels), service messages, media without a file. The run keeps
-- the reader's counts of them, by reason, with each staging checkpoint, so the
-- summary, status and runs say what was read and what was not, as validate
-- does; and the number of conversations read.

ALTER TABLE kommo_import_runs
    ADD COLUMN skipped       jsonb  NOT NULL DEFAULT '{}', -- not imported as it stands: reason -> count (sources.Stats.Skipped)
    ADD COLUMN conversations bigint NOT NULL DEFAULT 0;    -- distinct conversations among the valid records read
