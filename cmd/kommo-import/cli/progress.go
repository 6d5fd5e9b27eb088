package cli

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kommo-import/kommo-import/importer"
)

// What a run is doing, as the bar and the progress log lines name it.
const (
	stateStaging = "staging"
	stateSending = "sending"
	statePaused  = "paused"               // a 429 pause is in force
	stateDBWait  = "waiting_for_database" // sending waits for the database
	stateWaiting = "waiting"              // nothing to send now although work remains (Progress.Waiting says why)
)

// progressView is one snapshot of a run's progress with the numbers derived
// from it: what the bar and the log lines show.
// Other phases (starting, planning, done) go by their own names.
type progressView struct {
	importer.Progress
	state   string
	percent float64       // 0 to 100
	eta     time.Duration // from the throughput achieved; valid when etaKnown
	// etaKnown is false while nothing has been delivered in the last minute.
	etaKnown    bool
	pausedLeft  time.Duration
	sendingView bool
}

func viewOf(p importer.Progress, now time.Time) progressView {
	v := progressView{Progress: p, state: string(p.Phase)}
	switch p.Phase {
	case importer.PhaseStaging:
		v.state = stateStaging
		return v
	case importer.PhaseSending:
	default:
		return v
	}
	v.sendingView = true
	v.state = stateSending
	if p.Total > 0 {
		v.percent = math.Min(100, math.Max(0, 100*float64(p.Done)/float64(p.Total)))
	}
	if !p.PausedUntil.IsZero() && p.PausedUntil.After(now) {
		v.pausedLeft = p.PausedUntil.Sub(now)
	}
	switch {
	case p.DBDown:
		v.state = stateDBWait
	case v.pausedLeft > 0:
		v.state = statePaused
	case p.Waiting != "":
		v.state = stateWaiting
	}
	left := p.Total - p.Done
	switch {
	case left <= 0:
		v.etaKnown = true
	case p.Throughput > 0:
		v.eta = time.Duration(float64(left)/p.Throughput*float64(time.Second)) + v.pausedLeft
		v.etaKnown = true
	}
	return v
}

// describe is the text beside the bar.
func (v progressView) describe() string {
	if !v.sendingView {
		if v.state == stateStaging {
			return "staging: " + count(v.Read) + " records read"
		}
		return v.state
	}
	s := fmt.Sprintf("%s/%s  %.1f msg/s  ETA %s", count(v.Done), count(v.Total), v.Throughput, v.etaText())
	switch v.state {
	case statePaused:
		s += fmt.Sprintf("  PAUSED (429): %s left", v.pausedLeft.Round(time.Second))
	case stateDBWait:
		s += "  WAITING FOR THE DATABASE"
	case stateWaiting:
		// The bar is one line: the reason's start, the log and status have it whole.
		s += "  WAITING: " + cutRunes(v.Waiting, 64)
	}
	return s
}

// cutRunes is s cut to at most n runes, with an ellipsis when cut.
func cutRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (v progressView) etaText() string {
	if !v.etaKnown {
		return "?"
	}
	return v.eta.Round(time.Second).String()
}

// showBar draws the run's progress on w until stop is closed: a spinner
// with the records read while staging, then a 0-100% bar of the messages
// done, with the throughput achieved, the ETA from it and the state.
func showBar(progress func() importer.Progress, g *lineGuard, stop <-chan struct{}) {
	w := g.barWriter()
	b := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionShowDescriptionAtLineEnd(),
	)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var max int64 = -1 // spinner until the total is known
	for {
		v := viewOf(progress(), time.Now())
		if v.sendingView && v.Total > 0 {
			if v.Total != max {
				if max == -1 {
					b.Reset() // forget the spinner's count
				}
				max = v.Total
				b.ChangeMax64(max)
			}
			_ = b.Set64(min(v.Done, max))
		}
		b.Describe(v.describe())
		select {
		case <-stop:
			_ = b.Exit()
			fmt.Fprintln(w)
			g.done()
			return
		case <-t.C:
		}
	}
}

// logProgress logs the run's progress every interval until stop is closed,
// with the numbers of the bar.
func logProgress(progress func() importer.Progress, log *slog.Logger, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		log.Info("progress", progressAttrs(viewOf(progress(), time.Now()))...)
	}
}

func progressAttrs(v progressView) []any {
	attrs := []any{"phase", v.Phase, "state", v.state}
	if !v.sendingView {
		return append(attrs, "records_read", v.Read)
	}
	attrs = append(attrs, "done", v.Done, "total", v.Total, "percent", math.Round(v.percent*10)/10,
		"throughput", math.Round(v.Throughput*100)/100, "sent_now", v.SentNow, "rate", v.Rate, "processes", v.Processes)
	if v.etaKnown {
		attrs = append(attrs, "eta_seconds", math.Round(v.eta.Seconds()))
	}
	switch v.state {
	case statePaused:
		attrs = append(attrs, "paused_seconds_left", math.Round(v.pausedLeft.Seconds()))
	case stateWaiting:
		attrs = append(attrs, "waiting", v.Waiting)
	}
	return attrs
}

// nouns is n with thousands separators and the noun in the number n
// takes: "1 conversation", "1,204 conversations".
func nouns(n int64, one, many string) string {
	if n == 1 || n == -1 {
		return count(n) + " " + one
	}
	return count(n) + " " + many
}

// count prints n with thousands separators: 1,204.
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}
