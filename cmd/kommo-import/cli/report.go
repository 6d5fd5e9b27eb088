package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer"
)

const reportHelp = `
List a run's failed messages (refused by the API: msgid, conversation, source
line, attempts and the API's answer; or whose local media file could not be
sent), its rejected records (refused while staging: source line, field,
reason and the record as read), and the messages that went out as text
because their media file could not be used when their turn came
(--media-missing text), in source order.

Formats: text for people; csv and jsonl (one object a line, with "kind":
"failed", "rejected" or "media_as_text") for spreadsheets and scripts. The default is text on
a terminal, jsonl when stdout is a pipe or file, and for --output the format
its extension names (.csv, .jsonl), else text.

Exits 0 when the run has neither, 3 when it has some. Fix the cause of the
failures, then send them again with kommo-import retry --run NAME. Rejected
records never reached the database: fix them in the source and import it as
a new run (messages already sent are skipped).

With --sent it lists the run's delivered messages instead, for the
customer's records: msgid, conversation_id, Kommo's message id and chat id,
the message's time, when Kommo took it (sent_at, UTC), whether it was silent,
and whether it was found in history after an in-doubt attempt (reconciled);
conversation by conversation in the order sent, streamed from the database
(a run of millions needs no more memory than one of ten). Exits 0.

With --contacts it lists the chats of a run that links them to contacts
(--link-contacts): each conversation's client (phone and e-mail as matched),
whether its chat is linked, to which contact and how (phone, email,
phone+email, map, created, existing), and for the chats sent unlinked why
(ambiguous, with the candidates; not_found; no_contact_info; map_none;
error). Its CSV is a --contacts-map once the ambiguous rows' contact_id is
filled in. Exits 0.

Examples:
  kommo-import report --run my-import
  kommo-import report --run my-import --output failures.csv
  kommo-import report --run my-import --sent --output delivered.csv
  kommo-import report --run my-import --contacts --output contacts.csv`

func runReport(ctx context.Context, inv *invocation, args []string) error {
	env := inv.env
	fs := newFlagSet(env, "report", "--run NAME [--sent | --contacts] [--format text|csv|jsonl] [--output FILE [--force]]", reportHelp)
	var db dbFlags
	db.register(fs, env)
	run := fs.String("run", "", "the run's name (kommo-import runs lists them); required")
	format := fs.String("format", "", "text, csv or jsonl; default: see above")
	output := fs.String("output", "", "write the report to `FILE` instead of stdout (created 0600; through a symbolic link, its target)")
	force := fs.Bool("force", false, "let --output replace an existing file (keeping its mode; never a read-only one)")
	sent := fs.Bool("sent", false, "list the delivered messages with Kommo's ids (an audit export), not the failed and rejected ones")
	links := fs.Bool("contacts", false, "list the chats' links to contacts (--link-contacts): linked, created, ambiguous with their candidates, unlinked and why")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if *sent && *links {
		return usageError(errors.New("report: --sent and --contacts are two reports: give one"))
	}
	if *run == "" {
		return withHint(ExitUsage, errors.New("report: --run is required"), "kommo-import runs lists the runs")
	}
	out := env.Stdout
	if *format == "" {
		*format = defaultReportFormat(*output, out)
	}
	switch *format {
	case "text", "csv", "jsonl":
	default:
		return usageError(fmt.Errorf("--format must be text, csv or jsonl, not %q", *format))
	}
	var file *atomicFile
	if *output != "" {
		// Before the database: a refused file is said at once.
		var err error
		file, err = createAtomic(*output, *force, 0o600)
		if errors.Is(err, errExists) {
			return withHint(ExitUsage, fmt.Errorf("--output: %w", err), "give --force to replace it, or another --output")
		}
		if err != nil {
			return usageError(fmt.Errorf("--output: %w", err))
		}
		defer file.abort() // after commit, nothing left to drop
		out = file
	}
	pool, err := db.open(ctx, 2)
	if err != nil {
		return err
	}
	defer pool.Close()

	buf := bufio.NewWriter(out)
	if *sent || *links {
		write := writeSent
		if *links {
			write = writeContactLinks
		}
		if err := write(ctx, pool, *run, *format, buf); err != nil {
			return err
		}
		if err := buf.Flush(); err != nil {
			return fmt.Errorf("report: write: %w", err)
		}
		if file != nil {
			if err := file.commit(); err != nil {
				return fmt.Errorf("report: write %s: %w", *output, err)
			}
		}
		return nil
	}
	w := newReportWriter(*format, buf)
	failed, rejected, err := writeReport(ctx, pool, *run, w)
	if err != nil {
		return err
	}
	if err := errors.Join(w.finish(failed, rejected), buf.Flush()); err != nil {
		return fmt.Errorf("report: write: %w", err)
	}
	if file != nil {
		if err := file.commit(); err != nil {
			return fmt.Errorf("report: write %s: %w", *output, err)
		}
	}
	// The exit code follows the run's state: rejects an earlier run of the
	// scope reported, or acknowledged ones, are listed and fail nothing.
	st, err := importer.Status(ctx, pool, *run)
	if err != nil {
		return err
	}
	if st.Failed > 0 || st.RejectsFail() {
		return &incompleteError{run: *run, failed: failed, rejected: st.RejectedNew, known: rejected - st.RejectedNew, listed: true}
	}
	return nil
}

func defaultReportFormat(output string, stdout io.Writer) string {
	if output != "" {
		switch strings.ToLower(filepath.Ext(output)) {
		case ".csv":
			return "csv"
		case ".jsonl", ".ndjson", ".json":
			return "jsonl"
		}
		return "text"
	}
	if isTerminal(stdout) {
		return "text"
	}
	return "jsonl"
}

// writeReport streams the run's failed messages, its given-up ones, then
// its rejects, to w.
func writeReport(ctx context.Context, pool *pgxpool.Pool, run string, w reportWriter) (failed, rejected int64, err error) {
	err = importer.EachFailed(ctx, pool, run, func(m *importer.FailedMessage) error {
		failed++
		return w.failed(m)
	})
	if err != nil {
		return failed, rejected, err
	}
	if err = importer.EachGivenUp(ctx, pool, run, w.givenUp); err != nil {
		return failed, rejected, err
	}
	err = importer.EachReject(ctx, pool, run, func(r *importer.Reject) error {
		rejected++
		return w.rejected(r)
	})
	if err != nil {
		return failed, rejected, err
	}
	err = importer.EachMediaPlaceholder(ctx, pool, run, w.placeholder)
	return failed, rejected, err
}

// sentColumns are the CSV columns of report --sent.
var sentColumns = []string{"msgid", "conversation_id", "kommo_message_id", "kommo_chat_id", "message_time", "sent_at", "silent", "reconciled"}

// writeSent streams the run's sent messages to w in format.
func writeSent(ctx context.Context, pool *pgxpool.Pool, run, format string, w io.Writer) error {
	var n int64
	var each func(m *importer.SentMessage) error
	ts := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	var cw *csv.Writer
	switch format {
	case "csv":
		cw = csv.NewWriter(w)
		if err := cw.Write(sentColumns); err != nil {
			return fmt.Errorf("report: write: %w", err)
		}
		each = func(m *importer.SentMessage) error {
			return cw.Write([]string{m.MsgID, m.ConversationID, m.KommoMsgID, m.KommoChatID, ts(m.MessageTime), ts(m.SentAt),
				strconv.FormatBool(m.Silent), strconv.FormatBool(m.Reconciled)})
		}
	case "jsonl":
		enc := json.NewEncoder(w)
		each = func(m *importer.SentMessage) error { return enc.Encode(m) }
	default:
		each = func(m *importer.SentMessage) error {
			loud := "silent"
			if !m.Silent {
				loud = "LOUD"
			}
			_, err := fmt.Fprintf(w, "%s  msgid %s  conversation %s  kommo message %s  chat %s  %s\n",
				m.SentAt.Local().Format("2006-01-02 15:04:05"), m.MsgID, m.ConversationID, m.KommoMsgID, orDefault(m.KommoChatID, "(unknown)"), loud)
			return err
		}
	}
	err := importer.EachSent(ctx, pool, run, func(m *importer.SentMessage) error {
		n++
		return each(m)
	})
	if err != nil {
		return err
	}
	switch format {
	case "csv":
		cw.Flush()
		return cw.Error()
	case "text":
		_, err = fmt.Fprintf(w, "%s\n", nouns(n, "sent message", "sent messages"))
	}
	return err
}

// reportWriter writes one format.
type reportWriter interface {
	failed(*importer.FailedMessage) error
	givenUp(*importer.FailedMessage) error // never sent, by choice (retry --skip, --older skip)
	rejected(*importer.Reject) error
	// placeholder: a message sent as text, its media file unusable.
	placeholder(*importer.MediaPlaceholder) error
	finish(failed, rejected int64) error
}

func newReportWriter(format string, w io.Writer) reportWriter {
	switch format {
	case "csv":
		return &csvReport{w: csv.NewWriter(w)}
	case "jsonl":
		return &jsonlReport{enc: json.NewEncoder(w)}
	}
	return &textReport{w: w}
}

var reportColumns = []string{"kind", "line", "msgid", "conversation_id", "attempts", "field", "reason", "raw", "known_from", "acked"}

type csvReport struct {
	w      *csv.Writer
	header bool
}

func (r *csvReport) write(rec []string) error {
	if !r.header {
		r.header = true
		if err := r.w.Write(reportColumns); err != nil {
			return err
		}
	}
	return r.w.Write(rec)
}

func (r *csvReport) failed(m *importer.FailedMessage) error {
	return r.write([]string{"failed", strconv.FormatInt(m.Line, 10), m.MsgID, m.ConversationID, strconv.Itoa(m.Attempts), "", m.LastError, "", "", ""})
}

func (r *csvReport) givenUp(m *importer.FailedMessage) error {
	return r.write([]string{"given_up", strconv.FormatInt(m.Line, 10), m.MsgID, m.ConversationID, strconv.Itoa(m.Attempts), "", m.LastError, "", "", ""})
}

func (r *csvReport) rejected(j *importer.Reject) error {
	acked := ""
	if j.Acked {
		acked = "true"
	}
	return r.write([]string{"rejected", strconv.FormatInt(j.Line, 10), j.MsgID, "", "", j.Field, j.Reason, rawText(j.Raw), j.KnownFrom, acked})
}

func (r *csvReport) placeholder(m *importer.MediaPlaceholder) error {
	return r.write([]string{"media_as_text", strconv.FormatInt(m.Line, 10), m.MsgID, m.ConversationID, "", "message.media", m.Reason, ""})
}

func (r *csvReport) finish(_, _ int64) error {
	if !r.header {
		// A header even when empty, so a spreadsheet import never guesses.
		if err := r.w.Write(reportColumns); err != nil {
			return err
		}
	}
	r.w.Flush()
	return r.w.Error()
}

type jsonlReport struct{ enc *json.Encoder }

type jsonlFailed struct {
	Kind string `json:"kind"`
	*importer.FailedMessage
}

type jsonlRejected struct {
	Kind      string `json:"kind"`
	Line      int64  `json:"line"`
	MsgID     string `json:"msgid,omitempty"`
	Field     string `json:"field"`
	Reason    string `json:"reason"`
	Raw       string `json:"raw"`
	KnownFrom string `json:"known_from,omitempty"` // an earlier run of the scope rejected it too
	Acked     bool   `json:"acked,omitempty"`      // runs ack
}

func (r *jsonlReport) failed(m *importer.FailedMessage) error {
	return r.enc.Encode(jsonlFailed{"failed", m})
}

func (r *jsonlReport) givenUp(m *importer.FailedMessage) error {
	return r.enc.Encode(jsonlFailed{"given_up", m})
}

func (r *jsonlReport) rejected(j *importer.Reject) error {
	return r.enc.Encode(jsonlRejected{"rejected", j.Line, j.MsgID, j.Field, j.Reason, rawText(j.Raw), j.KnownFrom, j.Acked})
}

type jsonlPlaceholder struct {
	Kind string `json:"kind"`
	*importer.MediaPlaceholder
}

func (r *jsonlReport) placeholder(m *importer.MediaPlaceholder) error {
	return r.enc.Encode(jsonlPlaceholder{"media_as_text", m})
}

func (r *jsonlReport) finish(_, _ int64) error { return nil }

// textReport is for reading: one line a message or record, the reason
// indented below it.
type textReport struct {
	w                   io.Writer
	failedHead, rejHead bool
	givenUpHead         bool
	placeholders        int64
}

// maxTextRaw is how much of a rejected record the text report shows.
const maxTextRaw = 200

func (r *textReport) failed(m *importer.FailedMessage) error {
	if !r.failedHead {
		r.failedHead = true
		if _, err := fmt.Fprintln(r.w, "Failed messages (refused by the API):"); err != nil {
			return err
		}
	}
	attempts := "attempts"
	if m.Attempts == 1 {
		attempts = "attempt"
	}
	_, err := fmt.Fprintf(r.w, "  line %d  msgid %s  conversation %s  %d %s\n      %s\n",
		m.Line, m.MsgID, m.ConversationID, m.Attempts, attempts, oneLine(m.LastError, 0))
	return err
}

func (r *textReport) givenUp(m *importer.FailedMessage) error {
	if !r.givenUpHead {
		r.givenUpHead = true
		sep := ""
		if r.failedHead {
			sep = "\n"
		}
		if _, err := fmt.Fprint(r.w, sep+"Given up (never sent, by choice: retry --skip, --older skip):\n"); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(r.w, "  line %d  msgid %s  conversation %s\n      %s\n", m.Line, m.MsgID, m.ConversationID, oneLine(m.LastError, 0))
	return err
}

func (r *textReport) rejected(j *importer.Reject) error {
	if !r.rejHead {
		r.rejHead = true
		sep := ""
		if r.failedHead || r.givenUpHead {
			sep = "\n"
		}
		if _, err := fmt.Fprint(r.w, sep+"Rejected records (refused while staging):\n"); err != nil {
			return err
		}
	}
	what := j.Reason // a record that did not parse has no field to name
	if j.Field != "" {
		what = j.Field + ": " + j.Reason
	}
	switch {
	case j.KnownFrom != "":
		what += "  (known: run " + j.KnownFrom + " rejected it too)"
	case j.Acked:
		what += "  (acknowledged)"
	}
	_, err := fmt.Fprintf(r.w, "  line %d  %s\n      %s\n", j.Line, what, oneLine(validText(j.Raw), maxTextRaw))
	return err
}

func (r *textReport) placeholder(m *importer.MediaPlaceholder) error {
	if r.placeholders == 0 {
		sep := ""
		if r.failedHead || r.rejHead {
			sep = "\n"
		}
		if _, err := fmt.Fprint(r.w, sep+"Sent as text (their media file could not be used when their turn came):\n"); err != nil {
			return err
		}
	}
	r.placeholders++
	_, err := fmt.Fprintf(r.w, "  line %d  msgid %s  conversation %s\n      %s\n", m.Line, m.MsgID, m.ConversationID, oneLine(m.Reason, 0))
	return err
}

func (r *textReport) finish(failed, rejected int64) error {
	sentAsText := ""
	if r.placeholders > 0 {
		sentAsText = fmt.Sprintf("; %s sent as text", nouns(r.placeholders, "media message", "media messages"))
	}
	if failed+rejected == 0 {
		lead := ""
		if r.placeholders > 0 {
			lead = "\n"
		}
		_, err := fmt.Fprintf(r.w, "%sNo failed messages and no rejected records%s.\n", lead, sentAsText)
		return err
	}
	_, err := fmt.Fprintf(r.w, "\n%s, %s%s\n", nouns(failed, "failed message", "failed messages"), nouns(rejected, "rejected record", "rejected records"), sentAsText)
	return err
}

// oneLine folds s onto one line, cut to max runes (0: no cut).
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if max > 0 && utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s
}

// validText is raw as text: a record that is not valid UTF-8 gets U+FFFD
// where its bad bytes were, so CSV and JSON stay readable.
func validText(b []byte) string {
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// rawText is a rejected record as read, without the line break that ended it.
func rawText(b []byte) string {
	return strings.TrimSuffix(strings.TrimSuffix(validText(b), "\n"), "\r")
}

// nextSteps says what to do about a run's failed messages and rejected records.
func nextSteps(run string, failed, rejected int64) string {
	var steps []string
	if failed > 0 {
		steps = append(steps, "fix the cause of the failures, then send them again with: kommo-import retry --run "+shellQuote([]string{run}))
	}
	if rejected > 0 {
		steps = append(steps, "fix the rejected records in the source (kommo-import validate lists them) and import it again: messages already sent are skipped",
			"or, once looked at, acknowledge them: kommo-import runs ack "+shellQuote([]string{run})+
				" (a later run of the scope does not fail on the same records again; --max-rejects N allows some)")
	}
	return strings.Join(steps, "\n")
}
