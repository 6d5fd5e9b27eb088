package chatexport

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ZipURL is the URL of a file inside a zip archive, as a payload's
// message.media holds a media file of a zipped export (WhatsApp's
// "Export chat" zip) until it is hosted: "zip:///abs/chat.zip?entry=NAME".
// The file is read in place when it is needed (OpenLocal), so an export is
// never unpacked whole, and every process of a run that can read the zip
// can read its media.
func ZipURL(zipPath, entry string) string {
	return (&url.URL{Scheme: "zip", Path: filepath.ToSlash(zipPath), RawQuery: url.Values{"entry": {entry}}.Encode()}).String()
}

// IsLocal reports whether a message.media URL names a file of the export on
// this machine (file: or zip:), which Kommo cannot fetch: it must be hosted
// first or sent as text.
func IsLocal(media string) bool {
	return strings.HasPrefix(media, "file:") || strings.HasPrefix(media, "zip:")
}

// OpenLocal opens the local media file a file: or zip: URL names and
// returns its size in bytes. The caller closes it.
func OpenLocal(media string) (io.ReadCloser, int64, error) {
	u, err := url.Parse(media)
	if err != nil {
		return nil, 0, fmt.Errorf("media %q: %w", media, err)
	}
	switch u.Scheme {
	case "file":
		f, err := os.Open(filepath.FromSlash(u.Path))
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	case "zip":
		entry := u.Query().Get("entry")
		if entry == "" {
			return nil, 0, fmt.Errorf("media %q: no entry", media)
		}
		zr, err := zip.OpenReader(filepath.FromSlash(u.Path))
		if err != nil {
			return nil, 0, err
		}
		for _, f := range zr.File {
			if f.Name != entry {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				zr.Close()
				return nil, 0, fmt.Errorf("%s in %s: %w", entry, u.Path, err)
			}
			return &zipEntry{ReadCloser: rc, zr: zr}, int64(f.UncompressedSize64), nil
		}
		zr.Close()
		return nil, 0, fmt.Errorf("%s in %s: %w", entry, u.Path, os.ErrNotExist)
	}
	return nil, 0, fmt.Errorf("media %q: not a local file (file: or zip:)", media)
}

// zipEntry closes its archive with it.
type zipEntry struct {
	io.ReadCloser
	zr *zip.ReadCloser
}

func (z *zipEntry) Close() error { return errors.Join(z.ReadCloser.Close(), z.zr.Close()) }
