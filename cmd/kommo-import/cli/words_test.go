package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/importer"
)

// oneThenPlural finds "1 conversations" and its kind.
var oneThenPlural = regexp.MustCompile(`\b1 (\w+ )?(messages|conversations|records|retries|replies|copies|requests)\b`)

// TestCountsReadInTheirNumber: every count the summary, status, runs,
// report, verify and the exit lines print takes its noun in the number it
// is ("1 conversation"), and every one has thousands separators
// ("sent: 11,720", not "sent: 11720").
func TestCountsReadInTheirNumber(t *testing.T) {
	ones := importer.RunStatus{
		Name: "r", State: importer.RunIncomplete, Records: 1, Rejected: 1, Duplicates: 1, KnownSent: 1, KnownOther: 1,
		TakenOver: 1, Staged: 1, Sent: 1, Pending: 1, Sending: 1, Failed: 1, Parked: 1, QuotesDropped: 1, Reconciled: 1,
		UnknownFields: map[string]int64{"payload.mood": 1},
	}
	var out bytes.Buffer
	sum := &importer.Summary{RunStatus: ones, SentNow: 1, Retries: 1, Requests: 1, InDoubt: 1, InDoubtFound: 1}
	require.NoError(t, printSummary(&out, sum, false, nil, subsetInfo{}))
	require.NoError(t, printStatus(&out, &ones, time.Now()))
	out.WriteString((&incompleteError{run: "r", failed: 1, rejected: 1}).Error() + "\n")
	require.NoError(t, (&textReport{w: &out}).finish(1, 1))
	require.NoError(t, printVerify(&out, &importer.VerifyReport{Run: "r", Conversations: 1, ConversationsTotal: 1, Checked: 1, Found: 1,
		DuplicatedCount: 1, Duplicated: []importer.VerifyIssue{{MsgID: "m", ConversationID: "c", Count: 1}}}))
	require.NotRegexp(t, oneThenPlural, out.String())
	for _, want := range []string{"1 conversation waiting", "1 message from runs", "1 reply or forward", "1 retry,",
		"1 failed message and 1 rejected record", "field `payload.mood` on 1 record "} {
		require.Contains(t, out.String(), want)
	}

	big := importer.RunStatus{Name: "r", Sent: 11720, Staged: 11720, Pending: 1204, Failed: 1001, Sending: 1500}
	out.Reset()
	require.NoError(t, printSummary(&out, &importer.Summary{RunStatus: big, SentNow: 11720}, false, nil, subsetInfo{}))
	require.Contains(t, out.String(), "sent:                11,720 (11,720 now), failed 1,001, pending 1,204, in doubt 1,500")
	require.NotRegexp(t, `\d{4}`, strings.ReplaceAll(out.String(), "0.000", ""))
}

// TestReportOfARecordWithoutAField: a record that did not parse has no field;
// its line reads "line 4  invalid JSON", not "line 4  : invalid JSON".
func TestReportOfARecordWithoutAField(t *testing.T) {
	var b bytes.Buffer
	r := &textReport{w: &b}
	require.NoError(t, r.rejected(&importer.Reject{Line: 4, Reason: "invalid JSON at byte 7", Raw: []byte("{oops\n")}))
	require.NoError(t, r.rejected(&importer.Reject{Line: 5, Field: "msgid", Reason: "required", Raw: []byte("{}")}))
	require.Contains(t, b.String(), "  line 4  invalid JSON at byte 7\n")
	require.Contains(t, b.String(), "  line 5  msgid: required\n")
	require.NotContains(t, b.String(), " : ")
}

// TestOverlapSaysWhichRunIsLive: the summary's other runs are named with
// what becomes of their msgids; a live run is not one to "resume".
func TestOverlapSaysWhichRunIsLive(t *testing.T) {
	s := &importer.Summary{RunStatus: importer.RunStatus{Name: "b", KnownOther: 7, OtherRuns: []string{"a", "old"}}}
	var out bytes.Buffer
	require.NoError(t, printSummary(&out, s, false, map[string]bool{"a": true}, subsetInfo{}))
	require.Contains(t, out.String(), "other runs holding them: a (being worked now: it sends them), old (no process works it: resume it to send them)")
	require.NotContains(t, out.String(), "resume those")
}
