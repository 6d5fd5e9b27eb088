-- kommo-import schema: media (issue 18).
--
-- A message whose message.media is a local file (a file: URL: the export
-- formats and CSV/JSONL paths write them) needs the file put where Kommo can
-- fetch it before its slot. Uploads run ahead of the sending, concurrently;
-- each success is a row here, so a crash between upload and send costs only
-- a presign (made at send time from object_key), and nothing is uploaded
-- twice. The content-addressed key makes the store itself idempotent too: a
-- run without a row HEADs the key and finds the object.

-- The local file behind message.media, set at staging (NULL: no local media),
-- so the uploader finds the files to put without reading payloads.
ALTER TABLE kommo_import_messages ADD COLUMN media_path text;

CREATE INDEX kommo_import_messages_media
    ON kommo_import_messages (run_name, media_path) WHERE media_path IS NOT NULL;

-- One row per local file a run has put in a store (or, with --media-base-url,
-- found published with its size). A file many messages share (a sticker) is
-- one row. Another --media-store on the same run is another store: its files
-- are put again there.
CREATE TABLE kommo_import_media_uploads (
    run_name    text   NOT NULL REFERENCES kommo_import_runs (name),
    store       text   NOT NULL,   -- s3://bucket/prefix (at its endpoint) or the base URL; never a credential
    local_path  text   NOT NULL,   -- absolute, as media_path and the file: URL name it
    object_key  text   NOT NULL,   -- PREFIX/sha256/<hex>/<name>; with --media-base-url the path under the export root
    size        bigint NOT NULL CHECK (size > 0),                        -- the file_size to send
    sha256      bytea  CHECK (sha256 IS NULL OR length(sha256) = 32),    -- NULL with --media-base-url (no content read)
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_name, store, local_path)
);
