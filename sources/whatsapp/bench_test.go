package whatsapp

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kommo-import/kommo-import/sources"
)

// writeLargeChat writes an Android export of n messages over about two
// years: 12-hour clock with U+202F, both sides, a multi-line message every
// 10th, "<Media omitted>" every 25th, a notice every 1,000th. It returns the
// path and the bytes written.
func writeLargeChat(tb testing.TB, n int) (string, int64) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "WhatsApp Chat with Anna Schmidt.txt")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	at := time.Date(2023, 1, 1, 9, 0, 0, 0, time.UTC)
	step := 2 * 365 * 24 * time.Hour / time.Duration(n)
	for i := range n {
		at = at.Add(step)
		h := at.Hour() % 12
		if h == 0 {
			h = 12
		}
		ampm := "AM"
		if at.Hour() >= 12 {
			ampm = "PM"
		}
		head := fmt.Sprintf("%d/%d/%02d, %d:%02d\u202f%s - ", int(at.Month()), at.Day(), at.Year()%100, h, at.Minute(), ampm)
		who := "Anna Schmidt"
		if i%3 == 1 {
			who = "Acme Support"
		}
		switch {
		case i%1000 == 999:
			fmt.Fprintf(w, "%sYour security code with Anna Schmidt changed. Tap to learn more.\n", head)
		case i%25 == 24:
			fmt.Fprintf(w, "%s%s: <Media omitted>\n", head, who)
		case i%10 == 9:
			fmt.Fprintf(w, "%s%s: Order %d: the sofa in blue, two seats\nDelivery to the second floor, please call before\nThanks!\n", head, who, i)
		default:
			fmt.Fprintf(w, "%s%s: Message number %d about the order, is it still available? 😊\n", head, who, i)
		}
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path, fi.Size()
}

// BenchmarkWhatsApp reads a generated 200,000-message chat through the
// whole Reader (both readings, validation, ids, duplicates):
//
//	go test -run '^$' -bench BenchmarkWhatsApp -benchtime 3x -cpu 1 ./sources/whatsapp/
func BenchmarkWhatsApp(b *testing.B) {
	const n = 200_000
	path, size := writeLargeChat(b, n)
	users := sources.NewUserMap()
	users.SetBotID("bot")
	spec := sources.Spec{Kind: Kind, Path: path, Location: time.UTC, Users: users, MediaMissing: sources.MediaMissingText}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	var records int64
	for b.Loop() {
		r, err := Open(b.Context(), spec)
		if err != nil {
			b.Fatal(err)
		}
		records = 0
		for {
			_, err := r.Next(b.Context())
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			records++
		}
		r.Close()
	}
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if records < n*9/10 {
		b.Fatalf("%d records of %d messages", records, n)
	}
}
