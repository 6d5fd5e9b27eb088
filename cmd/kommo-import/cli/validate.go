package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/kommo-import/kommo-import/sources"
)

const validateHelp = `Read a source to the end and report every bad record (file:line: field: reason),
then the counts of records, valid ones, rejected ones, skipped duplicates
and conversations. Nothing is sent and no database is needed (except to read
--source postgres). Exits 0 when every record is valid, 3 when any is not.

With --json the counts are printed as one JSON object on stdout and the bad
records go to stderr instead.

JSONL fields that are not part of the Chats API payload (a typo such as
"mesage", another system's "mood") are not sent: validate lists each with the
number of records carrying it; --strict rejects those records.`

// csvColumnsHelp lists the canonical column names for --help, wrapped.
func csvColumnsHelp() string {
	var b strings.Builder
	b.WriteString("CSV columns (and --source postgres result columns): a header row names them, in any\n" +
		"order, case-insensitively; the separator is ',', ';' or TAB (from the header, or Excel's\n" +
		"sep= first line); --map canonical=theirs renames a column, --ignore-columns skips one:\n")
	line := " "
	for i, c := range sources.CanonicalColumns {
		word := " " + c
		if i < len(sources.CanonicalColumns)-1 {
			word += ","
		}
		if len(line)+len(word) > 88 {
			b.WriteString(line + "\n")
			line = " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}

func runValidate(ctx context.Context, env Env, args []string, sig <-chan os.Signal) error {
	fs := newFlagSet(env, "validate", "--source SOURCE [flags]", validateHelp+"\n\n"+csvColumnsHelp())
	var c readCommand
	c.register(fs, "validate")
	if err := parseFlags(fs, env, args); err != nil {
		return err
	}
	if c.spec.Kind == "" {
		return withHint(ExitUsage, errors.New("validate: --source is required"), "kommo-import validate --source export.csv")
	}
	report := env.Stdout
	if c.asJSON {
		report = env.Stderr
	}
	return c.run(ctx, env, sig, report, env.Stdout, nil)
}

// readCommand is what validate and convert share: the source and user
// flags, --rejects and --json, and reading the source to the end with a
// report of every bad record and the counts.
type readCommand struct {
	name    string // the command, for messages
	spec    sources.Spec
	users   userFlags
	rejects string
	asJSON  bool
}

func (c *readCommand) register(fs *flag.FlagSet, name string) {
	c.name = name
	registerSourceFlags(fs, &c.spec)
	registerUserFlags(fs, &c.users, envKommoToken) // agents -> Kommo users (connect.go)
	fs.StringVar(&c.rejects, "rejects", "", "write the bad records to `FILE` for fixing: one JSON object a line\n"+
		"{file,line,field,reason,raw}, or CSV when FILE ends in .csv")
	fs.BoolVar(&c.asJSON, "json", false, "print the counts as one JSON object")
}

// run reads the source to the end: every bad record goes to report (and
// --rejects), every valid one to each (when not nil), and then the counts to
// counts. A source with bad records ends in ExitIncomplete.
func (c *readCommand) run(ctx context.Context, env Env, sig <-chan os.Signal, report, counts io.Writer, each func(*sources.Record) error) error {
	spec := c.spec
	if err := spec.Check(); err != nil {
		return usageError(fmt.Errorf("%s: %w", c.name, err))
	}
	if err := checkKind(spec); err != nil {
		return err
	}
	spec.Stdin = env.Stdin
	userMap, err := loadUserMap(ctx, env, c.users) // connect.go
	if err != nil {
		return err
	}
	spec.Users = userMap

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sig:
			cancel()
		case <-ctx.Done():
		}
	}()

	r, err := openSource(ctx, spec)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	defer r.Close()

	var rejects *rejectWriter
	if c.rejects != "" {
		if rejects, err = createRejects(c.rejects, r.CSVSeparator()); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		defer rejects.close()
	}
	var agents agentRejects
	for {
		rec, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		var le *sources.LineError
		if errors.As(err, &le) {
			if errors.Is(le, sources.ErrUnmatchedAgent) {
				agents.add(le) // one line per agent below, not one per record
			} else {
				fmt.Fprintln(report, le.Error())
			}
			if rejects != nil {
				if err := rejects.write(le); err != nil {
					return fmt.Errorf("%s: write rejects: %w", c.name, err)
				}
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return withHint(ExitInterrupted, fmt.Errorf("%s: interrupted", c.name), "run "+c.name+" again; it reads from the start")
			}
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if each != nil {
			if err := each(&rec); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
	}
	agents.print(report)
	if rejects != nil {
		if err := rejects.close(); err != nil {
			return fmt.Errorf("%s: write rejects: %w", c.name, err)
		}
	}
	st := r.Stats()
	unmatched := r.UnmatchedAgents() // empty without a user map
	if err := printCounts(counts, r.Name(), spec.Filter.Describe(spec.Location), st, unmatched, orDefault(spec.MediaMissing, sources.MediaMissingReject), c.asJSON); err != nil {
		return err
	}
	printUnknownFields(report, st.UnknownFields)
	if !c.asJSON {
		printUnmatched(counts, unmatched, c.users.BotID) // connect.go
	}
	if st.Rejected > 0 {
		hint := "fix the records listed above and " + c.name + " again"
		if c.rejects != "" {
			hint = "fix the records in " + c.rejects + " and " + c.name + " again"
		}
		return withHint(ExitIncomplete, fmt.Errorf("%s: %d of %d records are invalid", c.name, st.Rejected, st.Total()), hint)
	}
	return nil
}

// agentRejects groups the records rejected because their agent matches no
// Kommo user: an agent with 159 messages is one line with its count and
// first lines, not 159 lines that say the same.
type agentRejects struct {
	order  []string
	groups map[string]*agentGroup
}

type agentGroup struct {
	text  string // file, field and reason, without the line
	n     int64
	lines []int64 // the first maxAgentLines
}

// maxAgentLines is how many line numbers an agent's line lists.
const maxAgentLines = 5

func (a *agentRejects) add(le *sources.LineError) {
	text := le.File
	if text != "" {
		text += ": "
	}
	if le.Field != "" {
		text += le.Field + ": "
	}
	text += le.Err.Error()
	if a.groups == nil {
		a.groups = map[string]*agentGroup{}
	}
	g, ok := a.groups[text]
	if !ok {
		g = &agentGroup{text: text}
		a.groups[text] = g
		a.order = append(a.order, text)
	}
	g.n++
	if len(g.lines) < maxAgentLines {
		g.lines = append(g.lines, le.Line)
	}
}

// print writes one line per agent, in the order they were first met.
func (a *agentRejects) print(w io.Writer) {
	for _, k := range a.order {
		g := a.groups[k]
		lines := make([]string, len(g.lines))
		for i, l := range g.lines {
			lines[i] = strconv.FormatInt(l, 10)
		}
		at := "line " + lines[0]
		if len(lines) > 1 {
			at = "lines " + strings.Join(lines, ", ")
		}
		if more := g.n - int64(len(g.lines)); more > 0 {
			at += fmt.Sprintf(" and %s more", count(more))
		}
		fmt.Fprintf(w, "%s (%s rejected: %s)\n", g.text, nouns(g.n, "record", "records"), at)
	}
}

// validateCounts is the --json report.
type validateCounts struct {
	Source        string `json:"source"`
	Records       int64  `json:"records"`
	Valid         int64  `json:"valid"`
	Rejected      int64  `json:"rejected"`
	Duplicates    int64  `json:"duplicates"`
	Conversations int64  `json:"conversations"`
	BytesRead     int64  `json:"bytes_read"`
	// UnmatchedAgents: agents whose outgoing messages matched no Kommo user
	// (--users, --kommo-domain); as_bot when --bot-id sent them as the bot.
	UnmatchedAgents []sources.UnmatchedAgent `json:"unmatched_agents,omitempty"`
	// UnknownFields: JSON path -> records carrying that field, which is not
	// part of the Chats API payload and is not sent (at most 100 paths).
	UnknownFields map[string]int64 `json:"unknown_fields,omitempty"`
	// Skipped: what the input held that is not imported as it stands, by
	// reason (group chat, service message, media without a file, ...).
	Skipped map[string]int64 `json:"skipped,omitempty"`
	// Subset is the subset asked for (--conversation, --since, ...) in
	// words; Filtered the records outside it, skipped unchecked.
	Subset   string `json:"subset,omitempty"`
	Filtered int64  `json:"filtered,omitempty"`
}

// printCounts prints what validate (or convert) read. mediaMissing is the
// --media-missing setting, to say what became of media without a file.
func printCounts(w io.Writer, name, subset string, st sources.Stats, unmatched []sources.UnmatchedAgent, mediaMissing string, asJSON bool) error {
	c := validateCounts{
		Source: name, Records: st.Total(), Valid: st.Records, Rejected: st.Rejected,
		Duplicates: st.Duplicates, Conversations: st.Conversations, BytesRead: st.BytesRead,
		UnmatchedAgents: unmatched, UnknownFields: st.UnknownFields, Skipped: st.Skipped,
		Subset: subset, Filtered: st.Filtered,
	}
	if asJSON {
		return json.NewEncoder(w).Encode(c)
	}
	if subset != "" {
		name += " [only " + subset + "]"
	}
	_, err := fmt.Fprintf(w, "%s\n  records        %s\n  valid          %s\n  rejected       %s\n  duplicates     %s (skipped)\n  conversations  %s\n",
		name, count(c.Records), count(c.Valid), count(c.Rejected), count(c.Duplicates), count(c.Conversations))
	if err == nil && subset != "" {
		_, err = fmt.Fprintf(w, "  outside        %s (not in the subset: skipped, not checked)\n", count(c.Filtered))
	}
	if err != nil || len(st.Skipped) == 0 {
		return err
	}
	fmt.Fprintln(w, "  not imported as it stands:")
	for _, l := range skippedLines(st.Skipped, mediaMissing) {
		fmt.Fprintln(w, "    "+l)
	}
	return nil
}

// printUnknownFields lists the fields that are not sent, most records first.
func printUnknownFields(w io.Writer, fields map[string]int64) {
	if len(fields) == 0 {
		return
	}
	for _, l := range unknownFieldLines(fields) {
		fmt.Fprintln(w, l)
	}
	if len(fields) >= sources.MaxUnknownFields {
		fmt.Fprintf(w, "(the first %d such fields; there may be more)\n", sources.MaxUnknownFields)
	}
	fmt.Fprintln(w, "(a typo? fix the export; --strict rejects such records)")
}

// rejectWriter writes bad records as JSONL or CSV.
type rejectWriter struct {
	f   *os.File
	buf *bufio.Writer
	csv *csv.Writer
}

// createRejects creates the rejects file: JSONL, or CSV when path ends in
// .csv, separated by sep (the source's, so Excel opens it as it opened the
// source) or ',' when sep is 0.
func createRejects(path string, sep rune) (*rejectWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	w := &rejectWriter{f: f, buf: bufio.NewWriter(f)}
	if strings.HasSuffix(strings.ToLower(path), ".csv") {
		w.csv = csv.NewWriter(w.buf)
		if sep != 0 {
			w.csv.Comma = sep
		}
		if err := w.csv.Write([]string{"file", "line", "field", "reason", "raw"}); err != nil {
			f.Close()
			return nil, err
		}
	}
	return w, nil
}

// rejectLine is one line of a JSONL rejects file.
type rejectLine struct {
	File   string `json:"file"`
	Line   int64  `json:"line"`
	Field  string `json:"field"`
	Reason string `json:"reason"`
	Raw    string `json:"raw"`
}

func (w *rejectWriter) write(le *sources.LineError) error {
	reason := ""
	if le.Err != nil {
		reason = le.Err.Error()
	}
	// The record as read, without the line break that ended it.
	raw := strings.TrimSuffix(strings.TrimSuffix(string(le.Raw), "\n"), "\r")
	if w.csv != nil {
		return w.csv.Write([]string{le.File, strconv.FormatInt(le.Line, 10), le.Field, reason, raw})
	}
	b, err := json.Marshal(rejectLine{File: le.File, Line: le.Line, Field: le.Field, Reason: reason, Raw: raw})
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.buf.Write(b)
	return err
}

// close flushes and closes; safe to call twice.
func (w *rejectWriter) close() error {
	if w.f == nil {
		return nil
	}
	if w.csv != nil {
		w.csv.Flush()
	}
	err := errors.Join(w.buf.Flush(), w.f.Close())
	w.f = nil
	return err
}
