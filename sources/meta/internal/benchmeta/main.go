// Command benchmeta measures the Messenger reader (sources/meta) the way the
// importer drives it, on a generated export: records/s through
// Reader.Next (decoding, mojibake repair, sorting, validation, duplicate
// check) and the peak resident memory (VmHWM), which stays that of the
// largest thread however many threads there are.
//
//	go run ./sources/meta/internal/benchmeta -generate -threads 3000 -messages 200 -o /tmp/fb
//	go run ./sources/meta/internal/benchmeta /tmp/fb
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/meta"
	"github.com/kommo-import/kommo-import/sources/meta/internal/metagen"
)

func main() {
	generate := flag.Bool("generate", false, "write an export to -o instead of reading one")
	threads := flag.Int("threads", 3000, "`N` one-to-one threads to generate")
	messages := flag.Int("messages", 200, "`N` messages a thread on average (one thread in a hundred holds 50 times more, over several files)")
	out := flag.String("o", "", "the export `folder` -generate writes")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the read to `file`")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchmeta:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	var err error
	switch {
	case *generate:
		var n int
		n, err = metagen.Write(*out, *threads, *messages)
		if err == nil {
			fmt.Printf("wrote %d threads, %d messages to %s\n", *threads, n, *out)
		}
	case flag.NArg() == 1:
		err = read(flag.Arg(0))
	default:
		err = errors.New("usage: benchmeta EXPORT | benchmeta -generate [-threads N] [-messages N] -o EXPORT")
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "benchmeta:", err)
		os.Exit(1)
	}
}

func read(path string) error {
	users := sources.NewUserMap()
	if err := users.AddAgent(metagen.Owner, "amojo-owner"); err != nil {
		return err
	}
	spec := sources.Spec{Kind: meta.KindMessenger, Path: path, Users: users, MediaMissing: sources.MediaMissingText}
	ctx := context.Background()
	start := time.Now()
	r, err := meta.Open(ctx, spec)
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
	fmt.Printf("records %d valid %d rejected %d conversations %d\n", st.Total(), st.Records, st.Rejected, st.Conversations)
	fmt.Printf("read in %s: %.0f records/s\n", elapsed.Round(time.Millisecond), float64(st.Total())/elapsed.Seconds())
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
