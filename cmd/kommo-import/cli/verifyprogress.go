package cli

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kommo-import/kommo-import/importer"
)

// showVerifyProgress runs verify (fn) with its progress on stderr, as run
// shows its own: a bar on a terminal, log lines otherwise, or nothing
// (--progress none).
func showVerifyProgress(sess *session, sf *sendFlags, v *importer.Verifier, fn func() (*importer.VerifyReport, error)) (*importer.VerifyReport, error) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		switch {
		case sf.progress == "none":
			<-stop
		case sess.bar:
			if sess.sinks.file != nil {
				go logVerifyProgress(v.Progress, sess.sinks.fileL, sf.interval, stop)
			}
			showVerifyBar(v.Progress, sess.sinks.guard, stop)
		default:
			logVerifyProgress(v.Progress, sess.log, sf.interval, stop)
		}
	}()
	rep, err := fn()
	close(stop)
	<-done
	return rep, err
}

// verifyView is a verification's progress with the numbers derived from it.
type verifyView struct {
	importer.VerifyProgress
	percent    float64
	perSecond  float64 // conversations checked per second by this verify
	eta        time.Duration
	etaKnown   bool
	pausedLeft time.Duration
}

func verifyViewOf(p importer.VerifyProgress, now time.Time) verifyView {
	v := verifyView{VerifyProgress: p}
	if p.Total > 0 {
		v.percent = math.Min(100, 100*float64(p.Conversations)/float64(p.Total))
	}
	if s := p.Elapsed.Seconds(); s >= 1 {
		v.perSecond = float64(p.Conversations-p.Resumed) / s
	}
	if left := p.Total - p.Conversations; left <= 0 {
		v.etaKnown = true
	} else if v.perSecond > 0 {
		v.eta, v.etaKnown = time.Duration(float64(left)/v.perSecond*float64(time.Second)), true
	}
	if !p.PausedUntil.IsZero() && p.PausedUntil.After(now) {
		v.pausedLeft = p.PausedUntil.Sub(now)
	}
	return v
}

func (v verifyView) describe() string {
	if v.Total == 0 && v.Conversations == 0 {
		return "verify: reading the run's conversations"
	}
	eta := "?"
	if v.etaKnown {
		eta = v.eta.Round(time.Second).String()
	}
	reqs := 0.0
	if s := v.Elapsed.Seconds(); s > 0 {
		reqs = float64(v.Requests) / s
	}
	s := fmt.Sprintf("verify: %s/%s conversations  %.1f req/s  %s found  ETA %s", count(v.Conversations), count(v.Total), reqs,
		nouns(v.Issues, "issue", "issues"), eta)
	if v.pausedLeft > 0 {
		s += fmt.Sprintf("  PAUSED (429): %s left", v.pausedLeft.Round(time.Second))
	}
	return s
}

// showVerifyBar draws the verification's progress until stop is closed.
func showVerifyBar(progress func() importer.VerifyProgress, g *lineGuard, stop <-chan struct{}) {
	w := g.barWriter()
	b := progressbar.NewOptions64(1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSetElapsedTime(false),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionShowDescriptionAtLineEnd(),
	)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var max int64 = 1
	for {
		p := progress()
		if p.Total > 0 && p.Total != max {
			max = p.Total
			b.ChangeMax64(max)
		}
		_ = b.Set64(min(p.Conversations, max))
		b.Describe(verifyViewOf(p, time.Now()).describe())
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

// logVerifyProgress logs the verification's progress every interval until
// stop is closed.
func logVerifyProgress(progress func() importer.VerifyProgress, log *slog.Logger, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		v := verifyViewOf(progress(), time.Now())
		attrs := []any{"conversations", v.Conversations, "total", v.Total, "percent", math.Round(v.percent*10) / 10,
			"requests", v.Requests, "issues", v.Issues}
		if v.etaKnown {
			attrs = append(attrs, "eta_seconds", math.Round(v.eta.Seconds()))
		}
		if v.pausedLeft > 0 {
			attrs = append(attrs, "paused_seconds_left", math.Round(v.pausedLeft.Seconds()))
		}
		log.Info("verify progress", attrs...)
	}
}
