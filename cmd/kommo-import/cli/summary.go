package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/sources"
)

// printSummary prints what a run (or retry) did: as text for people, or the
// whole Summary as JSON.
func printSummary(w io.Writer, s *importer.Summary, asJSON bool) error {
	if asJSON {
		return writeJSON(w, s)
	}
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-20s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "run %s (scope %s): %s\n", s.Name, s.ScopeID, s.Outcome)
	if s.StopReason != "" {
		p("stopped because", "%s", s.StopReason)
	}
	p("source", "%s", s.Source)
	p("records read", "%s valid in %s conversations, %s rejected; repeated records skipped: %s", count(s.Records), count(s.Conversations), count(s.Rejected), count(s.Duplicates))
	for i, l := range skippedLines(s.Skipped, "") {
		label := ""
		if i == 0 {
			label = "not imported:"
		}
		fmt.Fprintf(w, "  %-20s %s\n", label, l)
	}
	p("already in scope", "%s sent before (skipped), %s held by other runs (skipped)", count(s.KnownSent), count(s.KnownOther))
	if len(s.OtherRuns) > 0 {
		fmt.Fprintf(w, "  %-20s other runs holding them: %s (resume those to send them)\n", "", strings.Join(s.OtherRuns, ", "))
	}
	if s.TakenOver > 0 {
		p("taken over", "%s messages from runs no process works any more (in-doubt ones are looked up first)", count(s.TakenOver))
	}
	p("staged", "%s messages", count(s.Staged))
	p("sent", "%d (%d now), failed %d, pending %d, in doubt %d", s.Sent, s.SentNow, s.Failed, s.Pending, s.Sending)
	if s.Parked > 0 {
		p("parked", "%s conversations waiting for a retry or for their in-doubt message to be looked up", count(s.Parked))
	}
	p("in-doubt reconciled", "%s looked up, %s found already delivered", count(s.InDoubt), count(s.InDoubtFound))
	if s.QuotesDropped > 0 {
		p("quotes dropped", "%s replies or forwards sent without their quote: the export does not hold the quoted message", count(s.QuotesDropped))
	}
	for i, l := range unknownFieldLines(s.UnknownFields) {
		label := ""
		if i == 0 {
			label = "unknown fields:"
		}
		fmt.Fprintf(w, "  %-20s %s\n", label, l)
	}
	p("HTTP requests", "%s (%.3f per delivered message), %s retries, %s rate-limited", count(s.Requests), s.RequestsPerMessage, count(s.Retries), count(s.RateLimited))
	if s.SlotsGivenUp > 0 {
		p("slots given up", "%s (missed by more than a few ms: a loaded machine or a slow database; each is rate lost)", count(s.SlotsGivenUp))
	}
	p("elapsed", "%.1f s, %.2f messages/s", s.ElapsedSeconds, s.EffectiveRate)
	return nil
}

// unknownFieldLines says, most frequent first, which input fields are not
// part of the Chats API payload (and so were not sent).
func unknownFieldLines(fields map[string]int64) []string {
	names := make([]string, 0, len(fields))
	for f := range fields {
		names = append(names, f)
	}
	sort.Slice(names, func(i, j int) bool {
		if fields[names[i]] != fields[names[j]] {
			return fields[names[i]] > fields[names[j]]
		}
		return names[i] < names[j]
	})
	lines := make([]string, len(names))
	for i, f := range names {
		records := "records"
		if fields[f] == 1 {
			records = "record"
		}
		lines[i] = fmt.Sprintf("field `%s` on %s %s is not part of the Chats API payload and is not sent", f, count(fields[f]), records)
	}
	return lines
}

// skippedLines says, most first, what an input held that was not imported
// as it stands (sources.Stats.Skipped): "service message   15". mediaMissing
// (--media-missing: reject or text; "" when unknown) says what became of
// media without a file.
func skippedLines(skipped map[string]int64, mediaMissing string) []string {
	reasons := make([]string, 0, len(skipped))
	width := 0
	for r := range skipped {
		reasons = append(reasons, r)
		width = max(width, len(r))
	}
	sort.Slice(reasons, func(i, j int) bool {
		if skipped[reasons[i]] != skipped[reasons[j]] {
			return skipped[reasons[i]] > skipped[reasons[j]]
		}
		return reasons[i] < reasons[j]
	})
	lines := make([]string, len(reasons))
	for i, r := range reasons {
		l := fmt.Sprintf("%-*s %s", width, r, count(skipped[r]))
		if r == sources.SkipMediaWithoutFile {
			switch mediaMissing {
			case sources.MediaMissingText:
				l += " (sent as text: --media-missing text)"
			case sources.MediaMissingReject:
				l += " (rejected; --media-missing text sends them as text)"
			}
		}
		lines[i] = l
	}
	return lines
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
