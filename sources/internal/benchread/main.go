// Command benchread reads a source through sources.Open/Next the way the
// importer does and prints the counts, the speed and the peak memory
// (VmHWM), so scripts/bench-sources.sh can show that memory stays flat
// however big the file. With -generate it writes a test file instead.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

func main() {
	generate := flag.Int("generate", 0, "write `N` ~1 KB JSONL records to -o instead of reading")
	out := flag.String("o", "", "output `file` for -generate")
	flag.Parse()
	var err error
	if *generate > 0 {
		err = generateJSONL(*out, *generate)
	} else if flag.NArg() != 1 {
		err = errors.New("usage: benchread SOURCE | benchread -generate N -o FILE")
	} else {
		err = read(flag.Arg(0))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchread:", err)
		os.Exit(1)
	}
}

func read(source string) error {
	spec := sources.Spec{Kind: sources.KindJSONL, Path: source}
	if name := strings.ToLower(strings.TrimSuffix(source, ".gz")); strings.HasSuffix(name, ".csv") {
		spec.Kind = sources.KindCSV
	}
	ctx := context.Background()
	start := time.Now()
	r, err := sources.Open(ctx, spec)
	if err != nil {
		return err
	}
	defer r.Close()
	var bad int
	for {
		_, err := r.Next(ctx)
		if err == io.EOF {
			break
		}
		var le *sources.LineError
		if errors.As(err, &le) {
			if bad++; bad <= 5 {
				fmt.Fprintln(os.Stderr, le)
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	st := r.Stats()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Printf("records %d valid %d rejected %d duplicates %d conversations %d\n",
		st.Total(), st.Records, st.Rejected, st.Duplicates, st.Conversations)
	fmt.Printf("read %.1f MB in %s: %.0f records/s, %.1f MB/s\n", float64(st.BytesRead)/1e6, elapsed.Round(time.Millisecond),
		float64(st.Total())/elapsed.Seconds(), float64(st.BytesRead)/1e6/elapsed.Seconds())
	fmt.Printf("peak RSS %s, Go heap in use at the end %.1f MB\n", vmHWM(), float64(ms.HeapInuse)/1e6)
	return nil
}

// vmHWM is the process's peak resident set size from /proc (Linux).
func vmHWM() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func generateJSONL(path string, n int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	words := []string{"order", "delivery", "спасибо", "when", "price", "размер", "tomorrow", "👍", "address", "invoice"}
	for i := 0; i < n; i++ {
		var text strings.Builder
		for j := 0; text.Len() < 700; j++ {
			text.WriteString(words[(i+j*7)%len(words)])
			text.WriteByte(' ')
		}
		p := wire.Payload{
			Timestamp: 1709284502 + int64(i%10_000_000), MsgID: fmt.Sprintf("msg-%012d", i), ConversationID: fmt.Sprintf("conv-%06d", i%50000),
			Sender:  &wire.Participant{ID: fmt.Sprintf("client-%06d", i%50000), Name: "Anna Petrova", Avatar: "https://cdn.example.com/avatars/100245.jpg"},
			Message: &wire.Message{Type: "text", Text: text.String()},
		}
		if err := enc.Encode(wire.Event{EventType: wire.EventNewMessage, Payload: p}); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
