package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/sources"
)

// subsetInfo is what the command knows of a run's subset (--conversation,
// --since, --until, --limit-conversations).
type subsetInfo struct {
	Subset string `json:"subset,omitempty"` // the filter in words; "": the whole source
	// Filtered counts the records outside the subset, when this invocation
	// read the source (nil: it did not, staging was done before).
	Filtered *int64 `json:"filtered,omitempty"`
}

// printSummary prints what a run (or retry) did: as text for people, or the
// whole Summary as JSON. live says which of s.OtherRuns a process works now
// (nil: not known); sub is the subset the run read.
func printSummary(w io.Writer, s *importer.Summary, asJSON bool, live map[string]bool, sub subsetInfo) error {
	if asJSON {
		return writeJSON(w, struct {
			*importer.Summary
			subsetInfo
		}{s, sub})
	}
	p := func(label, format string, args ...any) {
		fmt.Fprintf(w, "  %-20s %s\n", label+":", fmt.Sprintf(format, args...))
	}
	fmt.Fprintf(w, "run %s (scope %s): %s\n", s.Name, s.ScopeID, s.Outcome)
	if s.StopReason != "" {
		p("stopped because", "%s", s.StopReason)
	}
	p("source", "%s", s.Source)
	if sub.Filtered != nil {
		p("outside the subset", "%s skipped (not checked, not staged)", nouns(*sub.Filtered, "record", "records"))
	}
	p("records read", "%s valid in %s conversations, %s rejected; repeated records skipped: %s", count(s.Records), count(s.Conversations), count(s.Rejected), count(s.Duplicates))
	if s.Rejected > 0 {
		p("rejected", "%s", rejectsText(&s.RunStatus))
	}
	for i, l := range skippedLines(s.Skipped, "") {
		label := ""
		if i == 0 {
			label = "not imported:"
		}
		fmt.Fprintf(w, "  %-20s %s\n", label, l)
	}
	p("already in scope", "%s sent before (skipped), %s held by other runs (skipped)", count(s.KnownSent), count(s.KnownOther))
	if len(s.OtherRuns) > 0 {
		fmt.Fprintf(w, "  %-20s other runs holding them: %s\n", "", otherRunsText(s.OtherRuns, live))
	}
	if s.TakenOver > 0 {
		p("taken over", "%s from runs no process works any more (in-doubt ones are looked up first)", nouns(s.TakenOver, "message", "messages"))
	}
	p("messages", "%s", breakdownText(s.Messages))
	if s.Older > 0 {
		p("older", "%s", olderText(&s.RunStatus))
	}
	p("sent", "%s (%s now), failed %s, pending %s, in doubt %s", count(s.Sent), count(s.SentNow), count(s.Failed), count(s.Pending), count(s.Sending))
	if s.Parked > 0 {
		p("parked", "%s waiting for a retry or for their in-doubt message to be looked up", nouns(s.Parked, "conversation", "conversations"))
	}
	p("in-doubt reconciled", "%s looked up, %s found already delivered", count(s.InDoubt), count(s.InDoubtFound))
	for i, l := range mediaLines(s.Media, s.MediaNow) {
		label := ""
		if i == 0 {
			label = "media:"
		}
		fmt.Fprintf(w, "  %-20s %s\n", label, l)
	}
	if s.Contacts != nil {
		p("contacts", "%s", contactsText(s.Contacts, s.Name))
	}
	if s.CRMRequests > 0 {
		p("main API", "%s (contact searches, creations, links), %s rate-limited", nouns(s.CRMRequests, "request", "requests"), count(s.CRMRateLimited))
	}
	if s.QuotesDropped > 0 {
		p("quotes dropped", "%s sent without their quote: the export does not hold the quoted message", nouns(s.QuotesDropped, "reply or forward", "replies or forwards"))
	}
	for i, l := range unknownFieldLines(s.UnknownFields) {
		label := ""
		if i == 0 {
			label = "unknown fields:"
		}
		fmt.Fprintf(w, "  %-20s %s\n", label, l)
	}
	p("HTTP requests", "%s (%.3f per delivered message), %s, %s rate-limited", count(s.Requests), s.RequestsPerMessage, nouns(s.Retries, "retry", "retries"), count(s.RateLimited))
	if s.SlotsGivenUp > 0 {
		p("slots given up", "%s (missed by more than a few ms: a loaded machine or a slow database; each is rate lost)", count(s.SlotsGivenUp))
	}
	if s.ScheduleMoves > 0 {
		p("schedule moved on", "%s (requests that reached the API late moved the shared schedule on: a few ms of rate each)", nouns(s.ScheduleMoves, "time", "times"))
	}
	p("elapsed", "%.1f s, %.2f messages/s", s.ElapsedSeconds, s.EffectiveRate)
	return nil
}

// contactsText says what became of a run's chats' links (--link-contacts).
func contactsText(c *importer.ContactLinks, run string) string {
	t := fmt.Sprintf("%s linked to existing contacts, %s linked to contacts created for them, %s ambiguous, %s unlinked",
		nouns(c.Linked, "chat", "chats"), count(c.Created), count(c.Ambiguous), count(c.Unlinked))
	if c.InDoubt > 0 {
		t += fmt.Sprintf(", %s in doubt (read back on resume)", count(c.InDoubt))
	}
	if c.Ambiguous > 0 {
		t += fmt.Sprintf(" (kommo-import report --run %s --contacts lists the ambiguous with their candidates)", shellQuote([]string{run}))
	}
	return t
}

// otherRunsText names the runs that hold msgids of this one, and what
// becomes of those: a live run sends them itself; one no process works sends
// them when resumed (or the next run to stage them takes them over).
func otherRunsText(names []string, live map[string]bool) string {
	if live == nil {
		return strings.Join(names, ", ") + " (a live one sends them; resume one that no process works)"
	}
	parts := make([]string, len(names))
	for i, n := range names {
		if live[n] {
			parts[i] = n + " (being worked now: it sends them)"
		} else {
			parts[i] = n + " (no process works it: resume it to send them)"
		}
	}
	return strings.Join(parts, ", ")
}

// liveRuns says which of names a live process works; a run it cannot read
// counts as not live.
func liveRuns(ctx context.Context, pool *pgxpool.Pool, names []string) map[string]bool {
	live := make(map[string]bool, len(names))
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, n := range names {
		if st, err := importer.Status(ctx, pool, n); err == nil {
			live[n] = st.Live
		}
	}
	return live
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
		lines[i] = fmt.Sprintf("field `%s` on %s is not part of the Chats API payload and is not sent", f, nouns(fields[f], "record", "records"))
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
