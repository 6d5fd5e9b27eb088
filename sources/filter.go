package sources

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Filter narrows a source to a subset, for a rehearsal on a few chats:
// records outside it are skipped and counted (Stats.Filtered), neither
// validated nor rejected. A record the decoder cannot read (broken CSV, bad
// JSON) has no conversation or time to judge it by: it is rejected as
// without a filter. Every Reader applies the Filter of its Spec, whatever
// the format.
type Filter struct {
	// Conversations keeps only these conversation ids (--conversation,
	// --conversations FILE); empty: every conversation.
	Conversations []string
	// ConversationsFrom names the file the ids came from, for the
	// description; "" when they were given one by one.
	ConversationsFrom string
	// Since and Until keep the messages whose own timestamp is at or after
	// Since and before Until: messages, not conversations, so a
	// conversation is cut to the window (its loud message is then the
	// newest in the window). A Bound that is a date is midnight in
	// Spec.Location (UTC without one); Until's date is the end of that day.
	Since, Until Bound
	// Limit keeps the first Limit conversations met (in the source's
	// order), among the records the other rules keep; 0: no limit.
	Limit int
}

// Bound is one end of a time window: an instant, or a calendar date whose
// instant depends on the zone (Spec.Location).
type Bound struct {
	T    time.Time // the instant; for a date, its year, month and day in UTC
	Date bool
}

// IsZero reports an open end.
func (b Bound) IsZero() bool { return b.T.IsZero() }

// ParseBound reads --since or --until: a date (2024-03-01) or an RFC 3339
// instant (2024-03-01T09:00:00+01:00).
func ParseBound(s string) (Bound, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return Bound{T: t, Date: true}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return Bound{T: t}, nil
	}
	return Bound{}, fmt.Errorf("want a date (2024-03-01) or an RFC 3339 time (2024-03-01T09:00:00+01:00), got %q", s)
}

// at is the bound's instant in loc; until moves a date to its end (the
// next midnight), so --until 2024-03-31 keeps the whole of the 31st.
func (b Bound) at(loc *time.Location, until bool) time.Time {
	if !b.Date {
		return b.T
	}
	if loc == nil {
		loc = time.UTC
	}
	d := 0
	if until {
		d = 1
	}
	return time.Date(b.T.Year(), b.T.Month(), b.T.Day()+d, 0, 0, 0, 0, loc)
}

func (b Bound) text(loc *time.Location) string {
	if !b.Date {
		return b.T.UTC().Format(time.RFC3339Nano)
	}
	zone := "UTC"
	if loc != nil {
		zone = loc.String()
	}
	return b.T.Format("2006-01-02") + " " + zone
}

// Active reports whether the filter keeps less than everything.
func (f *Filter) Active() bool {
	return f != nil && (len(f.Conversations) > 0 || !f.Since.IsZero() || !f.Until.IsZero() || f.Limit > 0)
}

// maxListedConversations is how many ids a description names; more are
// named by their count and a hash, which still tells two subsets apart.
const maxListedConversations = 5

// Describe is the filter in words, the same for the same subset whatever
// the order the ids were given in: it goes into the source's identity, so
// a rehearsal on a subset is a run of its own, and into status.
func (f *Filter) Describe(loc *time.Location) string {
	if !f.Active() {
		return ""
	}
	var parts []string
	if n := len(f.Conversations); n > 0 {
		ids := slices.Clone(f.Conversations)
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if len(ids) <= maxListedConversations && f.ConversationsFrom == "" {
			parts = append(parts, "conversations "+strings.Join(ids, ", "))
		} else {
			sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
			what := fmt.Sprintf("%d conversations", len(ids))
			if f.ConversationsFrom != "" {
				what += " from " + f.ConversationsFrom
			}
			parts = append(parts, what+" (ids sha256 "+hex.EncodeToString(sum[:4])+")")
		}
	}
	if !f.Since.IsZero() {
		parts = append(parts, "since "+f.Since.text(loc))
	}
	if !f.Until.IsZero() {
		until := "until " + f.Until.text(loc)
		if f.Until.Date {
			until += " (the whole day)"
		}
		parts = append(parts, until)
	}
	if f.Limit > 0 {
		parts = append(parts, fmt.Sprintf("the first %d conversations", f.Limit))
	}
	return strings.Join(parts, "; ")
}

// check reports a filter that keeps nothing by construction.
func (f *Filter) check(loc *time.Location) error {
	if !f.Active() || f.Since.IsZero() || f.Until.IsZero() {
		return nil
	}
	if !f.Since.at(loc, false).Before(f.Until.at(loc, true)) {
		return fmt.Errorf("--since %s is not before --until %s: the window is empty", f.Since.text(loc), f.Until.text(loc))
	}
	return nil
}

// recordFilter is a Filter compiled for a Reader.
type recordFilter struct {
	convs        map[string]struct{} // nil: all
	since, until int64               // unix ms; 0: open
	limit        int
	met          map[string]struct{} // conversations met, up to limit
}

func compileFilter(f *Filter, loc *time.Location) *recordFilter {
	if !f.Active() {
		return nil
	}
	rf := &recordFilter{limit: f.Limit}
	if len(f.Conversations) > 0 {
		rf.convs = make(map[string]struct{}, len(f.Conversations))
		for _, c := range f.Conversations {
			rf.convs[strings.TrimSpace(c)] = struct{}{}
		}
	}
	if !f.Since.IsZero() {
		rf.since = f.Since.at(loc, false).UnixMilli()
	}
	if !f.Until.IsZero() {
		rf.until = f.Until.at(loc, true).UnixMilli()
	}
	if rf.limit > 0 {
		rf.met = make(map[string]struct{}, rf.limit)
	}
	return rf
}

// keep reports whether a decoded record is in the subset. A record without
// a time passes the window (validation rejects it for that).
func (rf *recordFilter) keep(conv string, msec, sec int64) bool {
	conv = strings.TrimSpace(conv)
	if rf.convs != nil {
		if _, ok := rf.convs[conv]; !ok {
			return false
		}
	}
	if rf.since != 0 || rf.until != 0 {
		t := msec
		if t == 0 && sec != 0 {
			t = sec * 1000
		}
		if t != 0 && ((rf.since != 0 && t < rf.since) || (rf.until != 0 && t >= rf.until)) {
			return false
		}
	}
	if rf.limit > 0 {
		if _, ok := rf.met[conv]; !ok {
			if len(rf.met) >= rf.limit {
				return false
			}
			rf.met[conv] = struct{}{}
		}
	}
	return true
}
