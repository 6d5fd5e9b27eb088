package sources

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kommo-import/kommo-import/wire"
)

// benchPayload is a realistic message of about 1 KB once encoded.
func benchPayload(i int) wire.Payload {
	words := []string{"order", "delivery", "спасибо", "when", "price", "размер", "tomorrow", "👍", "address", "invoice"}
	var text strings.Builder
	for j := 0; text.Len() < 700; j++ {
		text.WriteString(words[(i+j*7)%len(words)])
		text.WriteByte(' ')
	}
	return wire.Payload{
		Timestamp: 1709284502 + int64(i), MsecTimestamp: (1709284502+int64(i))*1000 + int64(i%1000),
		MsgID: fmt.Sprintf("msg-%012d", i), ConversationID: fmt.Sprintf("conv-%06d", i%5000),
		Sender: &wire.Participant{ID: fmt.Sprintf("client-%06d", i%5000), Name: "Anna Petrova",
			Avatar: "https://cdn.example.com/avatars/100245.jpg", Profile: &wire.Profile{Phone: "+77011234567"}},
		Message: &wire.Message{Type: "text", Text: text.String()},
	}
}

// writeBenchJSONL writes n ~1 KB records as JSONL events.
func writeBenchJSONL(w io.Writer, n int) error { return writeBenchJSONLRange(w, 0, n) }

// writeBenchJSONLRange writes records from to to-1.
func writeBenchJSONLRange(w io.Writer, from, to int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := from; i < to; i++ {
		if err := enc.Encode(wire.Event{EventType: wire.EventNewMessage, Payload: benchPayload(i)}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func writeBenchCSV(w io.Writer, n int) error { return writeBenchCSVRange(w, 0, n) }

// writeBenchCSVRange writes the header and records from to to-1.
func writeBenchCSVRange(w io.Writer, from, to int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := csv.NewWriter(bw)
	cols := []string{"conversation_id", "msgid", "timestamp", "msec_timestamp", "sender_id", "sender_name", "sender_avatar", "sender_phone", "message_type", "message_text"}
	if err := cw.Write(cols); err != nil {
		return err
	}
	for i := from; i < to; i++ {
		p := benchPayload(i)
		if err := cw.Write([]string{p.ConversationID, p.MsgID, strconv.FormatInt(p.Timestamp, 10), strconv.FormatInt(p.MsecTimestamp, 10),
			p.Sender.ID, p.Sender.Name, p.Sender.Avatar, p.Sender.Profile.Phone, p.Message.Type, p.Message.Text}); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

func benchRead(b *testing.B, kind string, write func(io.Writer, int) error) {
	const n = 20000
	path := filepath.Join(b.TempDir(), "bench."+kind)
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := write(f, n); err != nil {
		b.Fatal(err)
	}
	size, _ := f.Seek(0, io.SeekCurrent)
	f.Close()
	now := func() time.Time { return testNow }
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		r, err := Open(b.Context(), Spec{Kind: kind, Path: path, Now: now})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Next(b.Context()); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		if st := r.Stats(); st.Records != n {
			b.Fatalf("read %+v", st)
		}
		r.Close()
	}
	b.ReportMetric(float64(n*b.N)/time.Since(start).Seconds(), "records/s")
	b.ReportMetric(float64(size)/n, "B/record")
}

func BenchmarkJSONL(b *testing.B) { benchRead(b, KindJSONL, writeBenchJSONL) }
func BenchmarkCSV(b *testing.B)   { benchRead(b, KindCSV, writeBenchCSV) }
