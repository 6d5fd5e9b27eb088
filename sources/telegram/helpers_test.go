package telegram

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// testNow is after every sample and before their future.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// result is everything a Reader yielded.
type result struct {
	records []sources.Record
	errs    []*sources.LineError
	fatal   error
	stats   sources.Stats
}

func (r result) msgids() []string {
	out := []string{}
	for _, rec := range r.records {
		out = append(out, rec.Payload.MsgID)
	}
	return out
}

func (r result) byID(t *testing.T, msgid string) wire.Payload {
	t.Helper()
	for _, rec := range r.records {
		if rec.Payload.MsgID == msgid {
			return rec.Payload
		}
	}
	t.Fatalf("no record %s among %v", msgid, r.msgids())
	return wire.Payload{}
}

func (r result) errTexts() []string {
	out := []string{}
	for _, e := range r.errs {
		out = append(out, e.Error())
	}
	return out
}

// read reads spec to the end with a read buffer of bufSize bytes (0: the
// real one), checking what every reader promises on the way: lines only
// grow, every bad record names the file and a line.
func read(t testing.TB, spec sources.Spec, bufSize int) result {
	t.Helper()
	res, err := tryRead(spec, bufSize)
	require.NoError(t, err)
	return res
}

func tryRead(spec sources.Spec, bufSize int) (result, error) {
	if spec.Kind == "" {
		spec.Kind = sources.KindTelegram
	}
	if spec.Now == nil {
		spec.Now = func() time.Time { return testNow }
	}
	if bufSize == 0 {
		bufSize = minBuf
	}
	ctx := context.Background()
	r, err := open(ctx, spec, bufSize)
	if err != nil {
		return result{}, err
	}
	defer r.Close()
	var res result
	var last int64
	for {
		rec, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		var le *sources.LineError
		switch {
		case errors.As(err, &le):
			if le.File != r.Name() || le.Line <= last {
				return res, fmt.Errorf("bad record %q: want file %s and a line after %d", le, r.Name(), last)
			}
			last = le.Line
			res.errs = append(res.errs, le)
			continue
		case err != nil:
			res.fatal = err
			res.stats = r.Stats()
			return res, nil
		}
		if rec.Line <= last {
			return res, fmt.Errorf("record %s at line %d after line %d", rec.Payload.MsgID, rec.Line, last)
		}
		last = rec.Line
		res.records = append(res.records, rec)
	}
	res.stats = r.Stats()
	return res, r.Close()
}

// export writes a result.json (and files beside it) in a new folder and
// returns the folder.
func export(t testing.TB, resultJSON string, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, ResultFile), []byte(resultJSON), 0o644))
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte("content of "+f), 0o644))
	}
	return dir
}

// oneChat is a one-chat export of a personal chat with Anna (id 42) holding
// messages (JSON objects, written as they are).
func oneChat(messages ...string) string {
	return `{
 "name": "Anna Client",
 "type": "personal_chat",
 "id": 42,
 "messages": [
  ` + strings.Join(messages, ",\n  ") + `
 ]
}
`
}

// tgMsg is a message of Anna's chat: id, unix time, author (a for Anna,
// o for the exporting account, user 7) and the rest of the object.
func tgMsg(id int, unix int64, author byte, rest string) string {
	from := `"from": "Anna Client", "from_id": "user42"`
	if author == 'o' {
		from = `"from": "Olga Agent", "from_id": "user7"`
	}
	if rest != "" {
		rest = ", " + rest
	}
	return fmt.Sprintf(`{"id": %d, "type": "message", "date": "2024-03-14T18:00:00", "date_unixtime": "%d", %s%s}`, id, unix, from, rest)
}

func text(s string) string {
	return fmt.Sprintf(`"text": %q, "text_entities": [{"type": "plain", "text": %q}]`, s, s)
}
