//go:build unix

package telegram

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kommo-import/kommo-import/internal/benchgen/tgexport"
	"github.com/kommo-import/kommo-import/sources"
)

// BenchmarkTelegram reads a generated whole-account export (about 530
// bytes a message, as Telegram Desktop lays it out) through the Reader, as
// run and convert do: msgs/s is the figure, and msgs/cpu-s the same per
// second of this process's CPU time (GC included), which a machine busy
// with other work changes less.
func BenchmarkTelegram(b *testing.B) {
	const n = 100000
	dir := b.TempDir()
	f, err := os.Create(filepath.Join(dir, ResultFile))
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	if err := tgexport.Write(w, 1, n, 200); err != nil {
		b.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	fi, _ := f.Stat()
	f.Close()
	users := sources.NewUserMap()
	users.SetBotID("BOT")
	spec := sources.Spec{Kind: sources.KindTelegram, Path: dir, Users: users, MediaMissing: sources.MediaMissingText}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	ctx := context.Background()
	var total int64
	cpu0 := cpuTime()
	for b.Loop() {
		r, err := Open(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := r.Next(ctx); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		total += r.Stats().Total()
		r.Close()
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(total)/(cpuTime()-cpu0).Seconds(), "msgs/cpu-s")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
