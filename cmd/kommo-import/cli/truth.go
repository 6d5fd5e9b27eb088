package cli

import (
	"fmt"
	"time"

	"github.com/kommo-import/kommo-import/importer"
)

// breakdownText says where a run's messages are, in counts that add up:
// "290 staged + 0 taken over = 34 sent + 255 pending + 1 in doubt + 0 held
// + 0 failed + 0 given up + 0 handed over".
func breakdownText(m importer.MessageCounts) string {
	return fmt.Sprintf("%s staged + %s taken over = %s sent + %s pending + %s in doubt + %s held + %s failed + %s given up + %s handed over",
		count(m.Staged), count(m.TakenOver), count(m.Sent), count(m.Pending), count(m.InDoubt), count(m.Held), count(m.Failed),
		count(m.GivenUp), count(m.HandedOver))
}

// stopText is why the run's last invocation ended early, as far as the
// database knows: the reason it recorded, or, when a process died later
// without recording one (kill -9, a crash, a host cut off) and none works
// the run now, that. "" when neither.
func stopText(st *importer.RunStatus, now time.Time) string {
	if l := st.Lost; l != nil && !st.Live {
		return fmt.Sprintf("the last process (%s pid %d) ended without recording a stop: killed, crashed or cut off from the database (last heartbeat %s, %s)",
			l.Host, l.PID, ago(l.LastHeartbeat, now), l.LastHeartbeat.Local().Format(time.RFC3339))
	}
	return st.StopReason
}
