// Command benchgen writes a synthetic JSONL export for benchmarks and memory
// checks: N messages spread over C conversations, in shuffled-by-block source
// order, each payload padded to about -size bytes. With -format telegram it
// writes a Telegram Desktop whole-account result.json instead (tgexport).
//
//	go run ./internal/benchgen -messages 1000000 -conversations 20000 > export.jsonl
//	go run ./internal/benchgen -format telegram -messages 1000000 -conversations 2000 > DataExport/result.json
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/internal/benchgen/tgexport"
	"github.com/kommo-import/kommo-import/wire"
)

func main() {
	n := flag.Int("messages", 100000, "messages to write")
	convs := flag.Int("conversations", 1000, "conversations to spread them over")
	size := flag.Int("size", 300, "approximate payload size in bytes")
	seed := flag.Uint64("seed", 1, "random seed")
	format := flag.String("format", "jsonl", "jsonl, or telegram: a Telegram Desktop result.json (-size is ignored)")
	prefix := flag.String("prefix", "bench", "what msgids and conversation ids start with (jsonl): two exports with other prefixes share nothing")
	flag.Parse()
	if *convs < 1 || *n < 1 {
		fmt.Fprintln(os.Stderr, "benchgen: -messages and -conversations must be at least 1")
		os.Exit(2)
	}
	r := rand.New(rand.NewPCG(*seed, 2))
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	switch *format {
	case "jsonl":
	case "telegram":
		if err := errors.Join(tgexport.Write(w, *seed, *n, *convs), w.Flush()); err != nil {
			fmt.Fprintln(os.Stderr, "benchgen:", err)
			os.Exit(1)
		}
		return
	default:
		fmt.Fprintf(os.Stderr, "benchgen: -format %q: want jsonl or telegram\n", *format)
		os.Exit(2)
	}
	enc := json.NewEncoder(w)
	base := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	pad := strings.Repeat("lorem ipsum dolor sit amet ", *size/27+1)[:max(*size-200, 1)]
	for i := range *n {
		c := i % *convs
		seq := i / *convs
		p := wire.Payload{
			MsecTimestamp:  base + int64(seq)*60_000 + int64(c) + int64(r.IntN(30_000)),
			MsgID:          fmt.Sprintf("%s-%d-%d", *prefix, c, seq),
			ConversationID: fmt.Sprintf("%s-conv-%d", *prefix, c),
			Sender:         &wire.Participant{ID: fmt.Sprintf("client-%d", c), Name: fmt.Sprintf("Client %d", c)},
			Message:        &wire.Message{Type: wire.TypeText, Text: pad},
		}
		p.Timestamp = p.MsecTimestamp / 1000
		if err := enc.Encode(&p); err != nil {
			fmt.Fprintln(os.Stderr, "benchgen:", err)
			os.Exit(1)
		}
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "benchgen:", err)
		os.Exit(1)
	}
}
