package chatexport

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOpenLocalReadsFilesAndZipEntriesInPlace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "exports & co")
	require.NoError(t, os.Mkdir(dir, 0o700))
	plain := filepath.Join(dir, "IMG 1#?.jpg")
	require.NoError(t, os.WriteFile(plain, []byte("jpeg bytes"), 0o600))

	zpath := filepath.Join(dir, "WhatsApp Chat - Anna?.zip")
	f, err := os.Create(zpath)
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	for name, body := range map[string]string{"_chat.txt": "chat", "00000006-Catalog Winter&Sommer.pdf": "pdf bytes", "sub/x=1.jpg": "nested"} {
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = io.WriteString(w, body)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())

	for url, want := range map[string]string{
		FileURL(plain): "jpeg bytes",
		ZipURL(zpath, "00000006-Catalog Winter&Sommer.pdf"): "pdf bytes",
		ZipURL(zpath, "sub/x=1.jpg"):                        "nested",
	} {
		require.True(t, IsLocal(url), url)
		rc, size, err := OpenLocal(url)
		require.NoError(t, err, url)
		b, err := io.ReadAll(rc)
		require.NoError(t, err)
		require.NoError(t, rc.Close())
		require.Equal(t, want, string(b), url)
		require.EqualValues(t, len(want), size)
	}

	_, _, err = OpenLocal(ZipURL(zpath, "missing.jpg"))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, _, err = OpenLocal(FileURL(filepath.Join(dir, "missing.jpg")))
	require.ErrorIs(t, err, os.ErrNotExist)
	_, _, err = OpenLocal("https://example.com/a.jpg")
	require.ErrorContains(t, err, "not a local file")
	require.False(t, IsLocal("https://example.com/a.jpg"))
}
