package contacts

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kommo-import/kommo-import/kommoapi"
)

// Row is one conversation of a plan with its match, or the error that kept
// it from one.
type Row struct {
	Conversation Conversation
	Match        Match
	Err          error
}

// Summary counts a plan's conversations by outcome.
type Summary struct {
	Conversations int `json:"conversations"`
	Link          int `json:"link"`
	Mapped        int `json:"mapped"` // of Link and Unlinked: by the map
	Create        int `json:"create"`
	Unlinked      int `json:"unlinked"`
	Ambiguous     int `json:"ambiguous"`
	NoContactInfo int `json:"no_contact_info"`
	Errors        int `json:"errors"`
	// Clients is the number of distinct phone/e-mail keys searched for.
	Clients int `json:"clients"`
	// Searches is the number of search requests made (pages).
	Searches int64 `json:"searches"`
	// NeedsRegion counts conversations whose client's phone has no country
	// code and was not used for want of --default-region.
	NeedsRegion int `json:"phones_without_country_code"`
}

// Fatal reports an error that ends a plan (or a run's linking) rather than
// one conversation's match: the token refused (401), not allowed (403), the
// account not paid (402), the API unreachable or rate limited past the
// Attempt's tries, or the context's end. Anything else (a 400 for one query,
// a search too broad) is the conversation's alone.
func Fatal(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	e, ok := kommoapi.AsError(err)
	if !ok {
		return false
	}
	return e.Unauthorized() || e.Forbidden() || e.PaymentRequired() || e.Retryable()
}

// Plan matches every conversation (in order; searches cached), reading the
// account and writing nothing to it. progress, if set, is told after each
// conversation. A Fatal error ends it, with the rows so far.
func (m *Matcher) Plan(ctx context.Context, convs []Conversation, progress func(done int)) ([]Row, Summary, error) {
	rows := make([]Row, 0, len(convs))
	var sum Summary
	keys := map[Key]bool{}
	for i, conv := range convs {
		match, err := m.Match(ctx, conv.ID, conv.Client)
		if Fatal(err) {
			sum.Searches = m.Searches()
			return rows, sum, err
		}
		rows = append(rows, Row{Conversation: conv, Match: match, Err: err})
		sum.Conversations++
		if !match.Key.Empty() && match.Method != MethodMap {
			keys[match.Key] = true
		}
		switch {
		case err != nil:
			sum.Errors++
		case match.Outcome == OutcomeLink:
			sum.Link++
		case match.Outcome == OutcomeCreate:
			sum.Create++
		case match.Outcome == OutcomeUnlinked:
			sum.Unlinked++
		case match.Outcome == OutcomeAmbiguous:
			sum.Ambiguous++
		case match.Outcome == OutcomeNoContactInfo:
			sum.NoContactInfo++
		}
		if err == nil && match.Method == MethodMap {
			sum.Mapped++
		}
		if match.NeedsRegion {
			sum.NeedsRegion++
		}
		if progress != nil {
			progress(i + 1)
		}
	}
	sum.Clients = len(keys)
	sum.Searches = m.Searches()
	return rows, sum, nil
}

// PlanColumns are the plan CSV's columns. With contact_id filled in for the
// ambiguous rows (one of their candidates, or "none"), the file is a
// --contacts-map.
var PlanColumns = []string{"conversation_id", "client_id", "client_name", "phone", "email",
	"outcome", "method", "contact_id", "contact_name", "candidates", "messages", "note"}

// WritePlanCSV writes rows as CSV with a header (PlanColumns). candidates
// reads "ID NAME (by); ...". A row whose match failed has outcome "error"
// and the error in note.
func WritePlanCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(PlanColumns); err != nil {
		return err
	}
	for _, r := range rows {
		m := r.Match
		outcome, note := string(m.Outcome), m.Note
		if r.Err != nil {
			outcome, note = "error", r.Err.Error()
		}
		contactID := ""
		if m.Outcome == OutcomeLink && m.Contact.ID > 0 {
			contactID = strconv.FormatInt(m.Contact.ID, 10)
		}
		var cands []string
		for _, c := range m.Candidates {
			cands = append(cands, fmt.Sprintf("%d %s (%s)", c.ID, c.Name, c.By))
		}
		phone, email := r.Conversation.Client.Phone, r.Conversation.Client.Email
		if m.Key.Phone.E164 != "" {
			phone = m.Key.Phone.E164
		}
		if m.Key.Email != "" {
			email = m.Key.Email
		}
		if err := cw.Write([]string{
			r.Conversation.ID, r.Conversation.Client.ID, r.Conversation.Client.Name, phone, email,
			outcome, string(m.Method), contactID, m.Contact.Name, strings.Join(cands, "; "),
			strconv.Itoa(r.Conversation.Messages), note,
		}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
