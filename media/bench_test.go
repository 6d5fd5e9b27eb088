package media

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kommo-import/kommo-import/internal/s3test"
)

// BenchmarkPut measures uploads into the test S3 server (a local SeaweedFS)
// by concurrency (Config.Concurrency, the Store's bound, with as many
// callers as that) and file size: photos of 200 KB and videos of 5 MB, all
// of distinct content, so every Put hashes, HEADs and uploads. One
// iteration is a batch (40 photos or 8 videos); MB/s (decimal) and files/s
// are reported per configuration:
//
//	make bench-media     (or scripts/with-s3.sh go test -run '^$' -bench '^BenchmarkPut$' -benchtime 3x ./media/)
func BenchmarkPut(b *testing.B) {
	srv := s3test.Get(b)
	for _, kind := range []struct {
		name  string
		size  int
		batch int
	}{{"photo200KB", 200 << 10, 40}, {"video5MB", 5 << 20, 8}} {
		for _, conc := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/concurrency=%d", kind.name, conc), func(b *testing.B) {
				bucket := srv.Bucket(b)
				conf, creds := s3test.Profile(b, "bench", srv.AccessKey, srv.SecretKey)
				s := open(b, Config{Store: "s3://" + bucket + "/bench", Endpoint: srv.Endpoint, Region: srv.Region,
					Profile: "bench", SharedConfigFiles: []string{conf}, SharedCredentialsFiles: []string{creds}, Concurrency: conc})
				dir := b.TempDir()
				rng := rand.NewChaCha8([32]byte{byte(conc), byte(kind.size)})
				buf := make([]byte, kind.size)
				paths := make([]string, b.N*kind.batch)
				for i := range paths {
					rng.Read(buf)
					paths[i] = filepath.Join(dir, fmt.Sprintf("f%05d.bin", i))
					if err := os.WriteFile(paths[i], buf, 0o644); err != nil {
						b.Fatal(err)
					}
				}
				b.SetBytes(int64(kind.size * kind.batch))
				b.ResetTimer()
				start := time.Now()
				work := make(chan string)
				var wg sync.WaitGroup
				for range conc {
					wg.Go(func() {
						for p := range work {
							if _, err := s.Put(context.Background(), p); err != nil {
								b.Error(err)
							}
						}
					})
				}
				for _, p := range paths {
					work <- p
				}
				close(work)
				wg.Wait()
				b.StopTimer()
				secs := time.Since(start).Seconds()
				b.ReportMetric(float64(len(paths))/secs, "files/s") // MB/s: from SetBytes
			})
		}
	}
}
