package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kommo-import/kommo-import/sources"
)

const convertHelp = `Read a source as run does and write what run would stage, as JSONL: one
Chats API payload a line, the importer's own format, which --source
jsonl:FILE reads back. So an export of any kind (a Telegram result.json, ...)
can be read, grepped, fixed and then imported as JSONL.

The same flags and the same report as validate: every bad record
(file:line: field: reason) and the counts, what the source held that is not
imported (group chats, service messages, media without a file, ...)
included. Exits 0 when every record is valid, 3 when any is not (the valid
ones are written all the same).

With --out the file is written whole or not at all (a temporary file beside
it, renamed at the end), created 0600, and the report goes to stdout;
without it the JSONL goes to stdout and the report to stderr.

Examples:
  kommo-import convert --source telegram:ChatExport_2024-03-14 --out chat.jsonl --bot-id BOT
  kommo-import convert --source csv:export.csv | jq -c 'select(.conversation_id == "c-17")'`

func runConvert(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	fs := newFlagSet(env, "convert", "--source SOURCE [--out FILE [--force]] [flags]", convertHelp+"\n\n"+csvColumnsHelp())
	var c readCommand
	c.register(fs, "convert")
	outPath := fs.String("out", "", "write the JSONL to `FILE` instead of stdout (created 0600; through a symbolic link, its target)")
	force := fs.Bool("force", false, "let --out replace an existing file (keeping its mode; never a read-only one)")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if c.spec.Kind == "" {
		return withHint(ExitUsage, errors.New("convert: --source is required"), "kommo-import convert --source telegram:ChatExport_2024-03-14 --out chat.jsonl")
	}
	var file *atomicFile
	var out io.Writer = env.Stdout
	report, counts := env.Stderr, env.Stderr
	if *outPath != "" {
		var err error
		file, err = createAtomic(*outPath, *force, 0o600)
		if errors.Is(err, errExists) {
			return withHint(ExitUsage, fmt.Errorf("--out: %w", err), "give --force to replace it, or another --out")
		}
		if err != nil {
			return usageError(fmt.Errorf("--out: %w", err))
		}
		defer file.abort() // after commit, nothing left to drop
		out, report, counts = file, env.Stdout, env.Stdout
		if c.asJSON {
			report = env.Stderr
		}
	}
	w := bufio.NewWriterSize(out, 256<<10)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	err := c.run(ctx, env, sig, report, counts, func(rec *sources.Record) error {
		return enc.Encode(&rec.Payload)
	})
	var code *exitError
	if err != nil && !(errors.As(err, &code) && code.code == ExitIncomplete) {
		return err // nothing is committed: a partial file would pass for the whole
	}
	if ferr := w.Flush(); ferr != nil {
		return fmt.Errorf("convert: write: %w", ferr)
	}
	if file != nil {
		if cerr := file.commit(); cerr != nil {
			return fmt.Errorf("convert: write %s: %w", *outPath, cerr)
		}
	}
	return err
}
