-- How to resume a run, as the command that started it last: status prints
-- it ("kommo-import run --config /etc/kommo/import.toml --run NAME"), since a
-- run started from a config file is resumed by naming the file. The line
-- names the environment variables of secret flags, never their values. No
-- foreign key: the row is written before the run's own row exists (the
-- importer creates that when it starts), and a stale row is only ever read
-- by the name of a run.
CREATE TABLE kommo_import_run_commands (
    run_name    text PRIMARY KEY,
    config_file text,                 -- absolute path of --config, when given
    resume      text        NOT NULL, -- kommo-import run ... --run NAME
    workdir     text        NOT NULL, -- where it was started: relative paths of the line resolve there
    updated_at  timestamptz NOT NULL DEFAULT now()
);
