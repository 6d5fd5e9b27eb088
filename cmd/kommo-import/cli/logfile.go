package cli

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
)

// openLogFile opens --log-file for appending, creating it 0600 (the log
// names runs, hosts and files). Every log record is one write on an
// O_APPEND descriptor, so two processes of a run may share the file
// without tearing each other's lines.
func openLogFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, usageError(fmt.Errorf("--log-file: %w", err))
	}
	return f, nil
}

// logSinks are where a command's log goes: stderr (through the bar's
// guard when a bar is drawn) and, with --log-file, a file that gets every
// record at --log-level, the summary and the exit lines too: what
// "2>&1 | tee FILE" would have kept, without a pipe that Ctrl-C closes.
type logSinks struct {
	json  bool
	file  *os.File     // nil without --log-file
	fileL *slog.Logger // logs to the file only; nil without --log-file
	guard *lineGuard   // nil without a bar
	mu    sync.Mutex   // serialises the summary's lines with the log's
}

func (l *logFlags) handler(w io.Writer, lv slog.Level) slog.Handler {
	if l.format == "json" {
		return slog.NewJSONHandler(w, logOptions(lv))
	}
	return slog.NewTextHandler(w, logOptions(lv))
}

// writeSummary puts the summary in the log file: the text block as stdout
// has it, or one JSON record "summary" holding it.
func (s *logSinks) writeSummary(text []byte, v any) {
	if s == nil || s.file == nil {
		return
	}
	if s.json {
		s.fileL.Info("summary", "summary", v)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.file.Write(text)
}

// close closes the log file; safe on nil and twice.
func (s *logSinks) close() {
	if s == nil || s.file == nil {
		return
	}
	_ = s.file.Close()
}

// lineGuard keeps log lines and a progress bar on one terminal apart. The
// bar redraws its one line in place ("\r..."); a log line written into it
// would start after the bar's text and be overwritten by its next frame. A
// log line through the guard first clears the bar's line, then is written,
// then the bar's last frame is drawn again below it.
type lineGuard struct {
	mu    sync.Mutex
	w     io.Writer
	frame []byte // the bar's last frame; nil once the bar is done
	live  bool
}

func newLineGuard(w io.Writer) *lineGuard { return &lineGuard{w: w} }

// clearLine returns the cursor to the start of the line and erases it.
const clearLine = "\r\x1b[K"

// barWriter is what the bar writes to.
func (g *lineGuard) barWriter() io.Writer { return guardBar{g} }

// logWriter is what the log writes to.
func (g *lineGuard) logWriter() io.Writer { return guardLog{g} }

// done says the bar has drawn its last frame (and its line break).
func (g *lineGuard) done() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.live, g.frame = false, nil
}

type guardBar struct{ g *lineGuard }

func (b guardBar) Write(p []byte) (int, error) {
	g := b.g
	g.mu.Lock()
	defer g.mu.Unlock()
	// A frame is "\r" and the bar's text; a clear is "\r", spaces, "\r".
	if len(bytes.TrimSpace(bytes.ReplaceAll(p, []byte("\r"), nil))) > 0 {
		g.frame = append(g.frame[:0], p...)
		g.live = true
	}
	return g.w.Write(p)
}

type guardLog struct{ g *lineGuard }

func (l guardLog) Write(p []byte) (int, error) {
	g := l.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.live {
		return g.w.Write(p)
	}
	buf := make([]byte, 0, len(clearLine)+len(p)+len(g.frame))
	buf = append(buf, clearLine...)
	buf = append(buf, p...)
	buf = append(buf, g.frame...)
	if _, err := g.w.Write(buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
