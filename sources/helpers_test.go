package sources

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kommo-import/kommo-import/wire"
	"github.com/stretchr/testify/require"
)

// testNow is the clock of every test: after the samples, before their future.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func nowFunc() time.Time { return testNow }

// result is everything a Reader yielded.
type result struct {
	records []Record
	errs    []*LineError
	stats   Stats
}

func (r result) payloads() []wire.Payload {
	out := make([]wire.Payload, len(r.records))
	for i, rec := range r.records {
		out[i] = rec.Payload
	}
	return out
}

func (r result) msgids() []string {
	out := []string{}
	for _, rec := range r.records {
		out = append(out, rec.Payload.MsgID)
	}
	return out
}

// errAt is a LineError reduced to what tests compare.
type errAt struct {
	Line  int64
	Field string
}

func (r result) errAts() []errAt {
	out := []errAt{}
	for _, e := range r.errs {
		out = append(out, errAt{e.Line, e.Field})
	}
	return out
}

func readAll(t testing.TB, spec Spec) result {
	t.Helper()
	res, err := tryReadAll(spec)
	require.NoError(t, err)
	return res
}

// tryReadAll opens spec and reads it to the end; a fatal error stops it.
func tryReadAll(spec Spec) (result, error) {
	if spec.Now == nil {
		spec.Now = func() time.Time { return testNow }
	}
	ctx := context.Background()
	r, err := Open(ctx, spec)
	if err != nil {
		return result{}, err
	}
	defer r.Close()
	var res result
	for {
		rec, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		var le *LineError
		if errors.As(err, &le) {
			res.errs = append(res.errs, le)
			continue
		}
		if err != nil {
			return res, err
		}
		res.records = append(res.records, rec)
	}
	res.stats = r.Stats()
	return res, r.Close()
}

// writeFile writes content into a temp dir and returns its path.
func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

// wantSample is the sample data set as payloads, normalised.
func wantSample(t testing.TB) []wire.Payload {
	t.Helper()
	b, err := os.ReadFile("testdata/want-messages.json")
	require.NoError(t, err)
	var want []wire.Payload
	require.NoError(t, json.Unmarshal(b, &want))
	return want
}
