package media

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/internal/s3test"
	"github.com/kommo-import/kommo-import/sources/chatexport"
)

// zipURL is how the exports' readers name a file inside a zip archive.
var zipURL = chatexport.ZipURL

// writeZip writes an archive holding each of files (name -> content),
// compressed or stored as method says.
func writeZip(t *testing.T, path string, method uint16, files map[string][]byte) {
	t.Helper()
	f, err := os.Create(path)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	for name, b := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method})
		require.NoError(t, err)
		_, err = w.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
}

// TestPutZipEntry: a file inside a zipped export (WhatsApp's) is put from
// the archive in place, stored or deflated, under the content address of
// its bytes and its own name; the presigned URL serves exactly them. A
// missing entry, an empty one and one over MaxSize are *FileErrors naming
// the zip: URL; with --media-base-url an entry cannot be published.
func TestPutZipEntry(t *testing.T) {
	t.Parallel()
	srv := s3test.Get(t)
	cfg, _ := storeConfig(t, srv, "wa")
	cfg.MaxSize = 400_000
	cnt := newCounter()
	cfg.HTTPClient = &http.Client{Transport: cnt}
	s := open(t, cfg)
	dir := t.TempDir()
	for i, method := range []uint16{zip.Store, zip.Deflate, zip.Deflate} {
		// The third archive holds the second's bytes: found, not put again.
		seed := byte(min(i, 1))
		photo := mustRead(t, writeMedia(t, dir, "src.jpg", 300_000, 7+seed))
		voice := mustRead(t, writeMedia(t, dir, "src.opus", 12_345, 9+seed))
		archive := filepath.Join(dir, "WhatsApp Chat - Olivia "+string(rune('1'+i))+".zip")
		writeZip(t, archive, method, map[string][]byte{
			"IMG-20240301-WA0001.jpg": photo, "media/PTT-20240301-WA0002.opus": voice, "empty.txt": nil, "big.bin": make([]byte, 400_001),
		})
		for name, want := range map[string][]byte{"IMG-20240301-WA0001.jpg": photo, "media/PTT-20240301-WA0002.opus": voice} {
			ref, ok := LocalRef(zipURL(archive, name))
			require.True(t, ok)
			require.Equal(t, filepath.Base(name), RefName(ref))
			obj, err := s.Put(context.Background(), ref)
			require.NoError(t, err, "method %d, %s", method, name)
			sum := sha256.Sum256(want)
			require.Equal(t, "wa/sha256/"+hex.EncodeToString(sum[:])+"/"+filepath.Base(name), obj.Key)
			require.Equal(t, int64(len(want)), obj.Size)
			require.Equal(t, i < 2, obj.Uploaded, "archive %d", i)
			u, err := s.URL(context.Background(), obj)
			require.NoError(t, err)
			resp, err := http.Get(u)
			require.NoError(t, err)
			got, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, want, got)
		}
		for name, reason := range map[string]error{"nope.jpg": ErrMissing, "empty.txt": ErrEmpty, "big.bin": ErrTooLarge} {
			_, err := s.Put(context.Background(), zipURL(archive, name))
			var fe *FileError
			require.ErrorAs(t, err, &fe, name)
			require.ErrorIs(t, err, reason, name)
			require.Contains(t, fe.Error(), "zip://", "the error names the entry's URL")
		}
	}
	require.Equal(t, 4, cnt.take()["PUT"], "each content once")

	web := open(t, Config{BaseURL: "http://127.0.0.1:1/export", Root: dir})
	_, err := web.Put(context.Background(), zipURL(filepath.Join(dir, "x.zip"), "a.jpg"))
	require.ErrorIs(t, err, ErrInArchive)
}

func TestLocalRef(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"file:///exp/photos/a.jpg":                "/exp/photos/a.jpg",
		"zip:///exp/chat.zip?entry=IMG-1.jpg":     "zip:///exp/chat.zip?entry=IMG-1.jpg",
		"zip:///exp/chat.zip":                     "",
		"https://cdn.example.com/a.jpg":           "",
		"zip://host/exp/chat.zip?entry=IMG-1.jpg": "",
		"": "",
	} {
		got, ok := LocalRef(in)
		require.Equal(t, want != "", ok, in)
		require.Equal(t, want, got, in)
	}
}

// TestLocalRefsOfTheExports: the URLs the exports' readers write for a file
// on disk and for a zip entry (names with spaces, &, ?, #, =, a folder)
// come back as references openLocal reads byte for byte.
func TestLocalRefsOfTheExports(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "exports & co")
	require.NoError(t, os.Mkdir(dir, 0o700))
	plain := filepath.Join(dir, "IMG 1#?.jpg")
	require.NoError(t, os.WriteFile(plain, []byte("jpeg bytes"), 0o600))
	zpath := filepath.Join(dir, "WhatsApp Chat - Anna?.zip")
	writeZip(t, zpath, zip.Deflate, map[string][]byte{
		"_chat.txt": []byte("chat"), "00000006-Catalog Winter&Sommer.pdf": []byte("pdf bytes"), "sub/x=1.jpg": []byte("nested"),
	})
	for u, want := range map[string]string{
		chatexport.FileURL(plain):                           "jpeg bytes",
		zipURL(zpath, "00000006-Catalog Winter&Sommer.pdf"): "pdf bytes",
		zipURL(zpath, "sub/x=1.jpg"):                        "nested",
	} {
		ref, ok := LocalRef(u)
		require.True(t, ok, u)
		lf, err := openLocal(ref, 1<<20)
		require.NoError(t, err, u)
		rc, err := lf.open()
		require.NoError(t, err)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.NoError(t, lf.Close())
		require.Equal(t, want, string(b), u)
		require.EqualValues(t, len(want), lf.size)
	}
	_, err := openLocal(zipURL(zpath, "missing.jpg"), 1<<20)
	var fe *FileError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, ErrMissing, fe.Reason)
}
