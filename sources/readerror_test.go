package sources

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// gzipBytes compresses b.
func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, err := zw.Write(b)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// TestTruncatedGzip: a .gz cut short is a fatal read error that names the
// file and says it is truncated, after every record before the cut came
// through; it must not look like a lost connection (io.ErrUnexpectedEOF),
// which the importer waits out as a database outage.
func TestTruncatedGzip(t *testing.T) {
	t.Parallel()
	const n = 10000
	var jsonl, csvData bytes.Buffer
	require.NoError(t, writeBenchJSONL(&jsonl, n))
	require.NoError(t, writeBenchCSV(&csvData, n))
	tests := []struct {
		kind, name string
		data       []byte
	}{
		{KindJSONL, "export.jsonl.gz", jsonl.Bytes()},
		{KindCSV, "export.csv.gz", csvData.Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			gz := gzipBytes(t, tt.data)
			cut := len(gz) / 2
			path := filepath.Join(t.TempDir(), tt.name)
			require.NoError(t, os.WriteFile(path, gz[:cut], 0o644))
			ctx := context.Background()
			r, err := Open(ctx, Spec{Kind: tt.kind, Path: path, Now: nowFunc})
			require.NoError(t, err)
			defer r.Close()
			var records int64
			var lastLine int64
			for {
				rec, err := r.Next(ctx)
				if err == nil {
					records++
					require.Greater(t, rec.Line, lastLine)
					lastLine = rec.Line
					continue
				}
				require.NotErrorIs(t, err, io.EOF, "a cut file must not end cleanly")
				var le *LineError
				require.False(t, errors.As(err, &le), "a truncated file is not a bad record: %v", err)
				require.NotErrorIs(t, err, io.ErrUnexpectedEOF, "the importer would take it for a lost database")
				var ne net.Error
				require.False(t, errors.As(err, &ne))
				require.ErrorIs(t, err, ErrTruncated)
				var re *ReadError
				require.True(t, errors.As(err, &re), "want a *ReadError, got %T: %v", err, err)
				require.Equal(t, path, re.Name)
				require.Contains(t, err.Error(), path+": truncated: the gzip stream ends early after ")
				break
			}
			// Everything before the cut came through: the cut is in the
			// middle, so thousands of records, and none invented.
			require.Greater(t, records, int64(n/4))
			require.Less(t, records, int64(n))
			require.Equal(t, records, r.Stats().Records)
		})
	}

	t.Run("cut in the gzip header", func(t *testing.T) {
		t.Parallel()
		gz := gzipBytes(t, []byte(jl("a")+"\n"))
		path := filepath.Join(t.TempDir(), "x.jsonl.gz")
		require.NoError(t, os.WriteFile(path, gz[:5], 0o644))
		_, err := Open(context.Background(), Spec{Kind: KindJSONL, Path: path})
		require.Error(t, err)
		require.NotErrorIs(t, err, io.ErrUnexpectedEOF)
		require.ErrorIs(t, err, ErrTruncated)
		require.Contains(t, err.Error(), path+": truncated")
	})
	t.Run("gzipped stdin cut short", func(t *testing.T) {
		t.Parallel()
		gz := gzipBytes(t, jsonl.Bytes())
		_, err := tryReadAll(Spec{Kind: KindJSONL, Path: "-", Stdin: bytes.NewReader(gz[:len(gz)-20])})
		require.ErrorIs(t, err, ErrTruncated)
		require.NotErrorIs(t, err, io.ErrUnexpectedEOF)
		require.Contains(t, err.Error(), "stdin: truncated")
	})
	t.Run("corrupt gzip data", func(t *testing.T) {
		t.Parallel()
		gz := gzipBytes(t, jsonl.Bytes())
		for i := len(gz) / 2; i < len(gz)/2+64; i++ {
			gz[i] ^= 0x5a
		}
		_, err := tryReadAll(Spec{Kind: KindJSONL, Path: "-", Stdin: bytes.NewReader(gz)})
		var re *ReadError
		require.True(t, errors.As(err, &re), "got %T: %v", err, err)
		require.Equal(t, "stdin", re.Name)
		require.NotErrorIs(t, err, io.ErrUnexpectedEOF)
	})
}
