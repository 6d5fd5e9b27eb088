package media

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// A local file reaches Put as a reference: the absolute path of a file on
// disk, or, for a file inside a zipped export (WhatsApp's "Export chat"
// zip, read in place), the zip: URL sources/chatexport.ZipURL writes,
// "zip:///abs/chat.zip?entry=NAME". LocalRef makes one of a payload's
// message.media; the importer records uploads by it.

// ErrInArchive is the reason of a *FileError for a file inside a zip
// archive with --media-base-url: a web server publishes files, not the
// entries of an archive (unzip the export and give its folder).
var ErrInArchive = errors.New("inside a zip archive")

// LocalRef returns the reference Put takes for a payload's message.media
// that names a local file: the path of a file: URL (as LocalPath), or a
// zip: URL as it stands. It returns false for anything else (an http(s)
// URL is sent as it is).
func LocalRef(media string) (string, bool) {
	if p, ok := LocalPath(media); ok {
		return p, true
	}
	if _, _, ok := zipRef(media); ok {
		return media, true
	}
	return "", false
}

// zipRef splits a zip: URL into the archive's path and the entry's name.
func zipRef(ref string) (archive, entry string, ok bool) {
	if !strings.HasPrefix(ref, "zip:") {
		return "", "", false
	}
	u, err := url.Parse(ref)
	if err != nil || u.Scheme != "zip" || u.Path == "" || (u.Host != "" && u.Host != "localhost") {
		return "", "", false
	}
	entry = u.Query().Get("entry")
	if entry == "" {
		return "", "", false
	}
	return filepath.FromSlash(u.Path), entry, true
}

// RefName is the file name of a reference: the base name of a path or of
// a zip entry. It is the file_name a message gets when its record has none.
func RefName(ref string) string {
	if _, entry, ok := zipRef(ref); ok {
		return path.Base(entry)
	}
	return filepath.Base(ref)
}

// localFile is a local file opened for a Put: read once to hash it, then
// again as the upload's body.
type localFile struct {
	ref  string // as Put was given it, for errors
	name string // the base name, for the key
	size int64
	f    *os.File // the file, or the archive holding the entry
	// data reads a plain file, or an entry stored without compression, in
	// place (seekable: the SDK may rewind it); nil for a compressed entry,
	// which zf opens afresh each time.
	data *io.SectionReader
	zf   *zip.File
}

// openLocal opens ref (a path or a zip: URL) after checking that it is a
// regular, non-empty file of at most maxSize bytes.
func openLocal(ref string, maxSize int64) (*localFile, error) {
	archive, entry, isZip := zipRef(ref)
	if !isZip {
		f, size, err := openFile(ref, maxSize)
		if err != nil {
			return nil, err
		}
		return &localFile{ref: ref, name: keyName(ref), size: size, f: f, data: io.NewSectionReader(f, 0, size)}, nil
	}
	f, err := os.Open(archive)
	if err != nil {
		return nil, fileErr(ref, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, &FileError{Path: ref, Reason: ErrUnreadable, Err: err}
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		f.Close()
		return nil, &FileError{Path: ref, Reason: ErrUnreadable, Err: fmt.Errorf("the archive %s: %w", archive, err)}
	}
	var zf *zip.File
	for _, e := range zr.File {
		if e.Name == entry {
			zf = e
			break
		}
	}
	lf := &localFile{ref: ref, name: keyName(path.Base(entry)), f: f, zf: zf}
	switch {
	case zf == nil:
		f.Close()
		return nil, &FileError{Path: ref, Reason: ErrMissing, Err: fmt.Errorf("no entry %q in %s", entry, archive)}
	case zf.Mode().IsDir() || !zf.Mode().IsRegular():
		f.Close()
		return nil, &FileError{Path: ref, Reason: ErrNotRegular, Err: fmt.Errorf("mode %s", zf.Mode().Type())}
	case zf.UncompressedSize64 == 0:
		f.Close()
		return nil, &FileError{Path: ref, Reason: ErrEmpty}
	case zf.UncompressedSize64 > uint64(maxSize):
		f.Close()
		return nil, &FileError{Path: ref, Reason: ErrTooLarge, Err: fmt.Errorf("%d bytes (%s), over the limit of %d (%s, --media-max-size)",
			zf.UncompressedSize64, FormatSize(int64(zf.UncompressedSize64)), maxSize, FormatSize(maxSize))}
	}
	lf.size = int64(zf.UncompressedSize64)
	if zf.Method == zip.Store && zf.CompressedSize64 == zf.UncompressedSize64 {
		if off, err := zf.DataOffset(); err == nil {
			lf.data = io.NewSectionReader(f, off, lf.size)
		}
	}
	return lf, nil
}

// open returns a reader of the whole content from its start. A compressed
// entry checks its CRC-32 as it reaches the end.
func (l *localFile) open() (io.ReadCloser, error) {
	if l.data != nil {
		return io.NopCloser(io.NewSectionReader(l.data, 0, l.size)), nil
	}
	rc, err := l.zf.Open()
	if err != nil {
		return nil, &FileError{Path: l.ref, Reason: ErrUnreadable, Err: err}
	}
	return rc, nil
}

// body is the upload's body: seekable where the bytes can be read in place.
func (l *localFile) body() (io.Reader, func() error, error) {
	if l.data != nil {
		return io.NewSectionReader(l.data, 0, l.size), func() error { return nil }, nil
	}
	rc, err := l.open()
	if err != nil {
		return nil, nil, err
	}
	return rc, rc.Close, nil
}

func (l *localFile) Close() error { return l.f.Close() }

// hash reads the content once and returns its SHA-256 in hex, checking
// that exactly size bytes were read: a file that grew or shrank while it
// was read is an error, not a wrong content address.
func (l *localFile) hash() (string, error) {
	var r io.Reader
	if l.zf == nil {
		// One byte past the size: a file that grew shows.
		r = io.NewSectionReader(l.f, 0, l.size+1)
	} else {
		rc, err := l.open()
		if err != nil {
			return "", err
		}
		defer rc.Close()
		r = io.LimitReader(rc, l.size+1)
	}
	sum, n, err := hashReader(r)
	if err != nil {
		return "", &FileError{Path: l.ref, Reason: ErrUnreadable, Err: err}
	}
	if n != l.size {
		return "", &FileError{Path: l.ref, Reason: ErrUnreadable, Err: fmt.Errorf("it changed while it was read (%d bytes, then %d)", l.size, n)}
	}
	return sum, nil
}
