package sources

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

// fuzzRead reads input as kind through stdin and fails on a panic (by not
// catching it), on an error that is not a *LineError with a line, and on
// positions that go backwards. The corpus under testdata/fuzz holds the
// sample files and the tricky cases of the table tests.
func fuzzRead(t *testing.T, kind string, input []byte, max uint16) {
	spec := Spec{Kind: kind, Path: "-", Stdin: bytes.NewReader(input), Now: nowFunc, MaxRecordBytes: int(max) + 1,
		Strict: max%2 == 1} // the cap's low bits also pick the options
	if max%3 == 0 {
		spec.MediaMissing = MediaMissingText
	}
	r, err := Open(t.Context(), spec)
	if err != nil {
		return // a CSV header can be unusable; that is an error, not a panic
	}
	defer r.Close()
	var lastLine, lastOffset int64
	for n := 0; ; n++ {
		rec, err := r.Next(t.Context())
		if err == io.EOF {
			break
		}
		var le *LineError
		if errors.As(err, &le) {
			if le.Line < 1 || le.Line <= lastLine && kind == KindCSV {
				t.Fatalf("error at line %d after line %d: %v", le.Line, lastLine, le)
			}
			if len(le.Raw) > MaxRawBytes {
				t.Fatalf("raw of %d bytes", len(le.Raw))
			}
			lastLine = le.Line
			continue
		}
		if err != nil {
			if errors.Is(err, ErrSecondHeader) {
				return // a second header with other columns: nothing after it can be read
			}
			if bytes.HasPrefix(input, []byte{0x1f, 0x8b}) {
				return // a corrupt gzip stream is an I/O error: fatal, and rightly so
			}
			t.Fatalf("not a *LineError: %v", err)
		}
		if rec.Line <= lastLine || rec.Offset < lastOffset || rec.Offset >= int64(len(input)) {
			t.Fatalf("record at line %d offset %d after line %d offset %d", rec.Line, rec.Offset, lastLine, lastOffset)
		}
		lastLine, lastOffset = rec.Line, rec.Offset
		if n > len(input) {
			t.Fatal("more records than bytes")
		}
	}
	st := r.Stats()
	if st.BytesRead != int64(len(input)) {
		t.Fatalf("read %d of %d bytes", st.BytesRead, len(input))
	}
}

func addFileSeed(f *testing.F, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, uint16(65535))
	f.Add(b, uint16(200))
}

func FuzzCSV(f *testing.F) {
	addFileSeed(f, "../testdata/messages.csv")
	addFileSeed(f, "../testdata/messages-messy.csv")
	f.Fuzz(func(t *testing.T, input []byte, max uint16) {
		fuzzRead(t, KindCSV, input, max)
	})
}

func FuzzJSONL(f *testing.F) {
	addFileSeed(f, "../testdata/messages.jsonl")
	addFileSeed(f, "../testdata/messages-messy.jsonl")
	f.Fuzz(func(t *testing.T, input []byte, max uint16) {
		fuzzRead(t, KindJSONL, input, max)
	})
}
