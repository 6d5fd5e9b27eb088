package meta

import (
	"errors"
	"io"
	"testing"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/meta/internal/metagen"
)

// BenchmarkMeta reads a generated export of 300 threads (about 90,000
// messages, three threads of 10,000 over two files) through the Reader, as
// the importer does. For the figure in the README, a bigger export and the
// peak memory: sources/meta/internal/benchmeta.
func BenchmarkMeta(b *testing.B) {
	dir := b.TempDir()
	n, err := metagen.Write(dir, 300, 200)
	if err != nil {
		b.Fatal(err)
	}
	users := sources.NewUserMap()
	if err := users.AddAgent(metagen.Owner, "amojo-owner"); err != nil {
		b.Fatal(err)
	}
	spec := sources.Spec{Kind: KindMessenger, Path: dir, Users: users, MediaMissing: sources.MediaMissingText}
	b.ReportAllocs()
	var records int64
	for b.Loop() {
		r, err := Open(b.Context(), spec)
		if err != nil {
			b.Fatal(err)
		}
		for {
			_, err := r.Next(b.Context())
			if err == io.EOF {
				break
			}
			var le *sources.LineError
			if err != nil && !errors.As(err, &le) {
				b.Fatal(err)
			}
		}
		st := r.Stats()
		if st.Rejected > 0 || st.Records < int64(n)*9/10 {
			b.Fatalf("%+v of %d", st, n)
		}
		records += st.Records
		r.Close()
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}
