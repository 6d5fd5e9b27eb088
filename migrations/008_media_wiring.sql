-- kommo-import schema: the media send path (issue 18).
--
-- 005 made the uploads table and messages.media_path; the send path adds
-- what a run's counts need to tell apart.

-- uploaded: this run's Put sent the bytes. false: the store had the object
-- already under its content address (a HEAD found it: another run, another
-- process, a Put killed before its row was written), or with
-- --media-base-url, where nothing is uploaded and the row records that the
-- file's URL served it with its size.
ALTER TABLE kommo_import_media_uploads ADD COLUMN uploaded boolean NOT NULL DEFAULT true;

-- Why a message's local file could not go out as media when its turn came
-- (missing, unreadable, empty, over --media-max-size, not published at
-- --media-base-url), NULL when it did. The message's state says what became
-- of it: sent, it went out as its text placeholder (--media-missing text);
-- failed, it waits for retry. Cleared when the file goes out after all.
ALTER TABLE kommo_import_messages ADD COLUMN media_problem text;

-- status and report count and list them without reading the whole run.
CREATE INDEX kommo_import_messages_media_problem
    ON kommo_import_messages (run_name, line) WHERE media_problem IS NOT NULL;
