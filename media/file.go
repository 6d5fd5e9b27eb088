package media

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Object is a file as the store holds it: what the importer records after
// Put and gives to URL at send time.
type Object struct {
	// Key is the object key (PREFIX/sha256/<hex>/<name>), or with
	// --media-base-url the file's path relative to the export root, with
	// forward slashes.
	Key string
	// Size is the file's size in bytes as put: the file_size to send.
	Size int64
	// SHA256 is the content's hash in lower-case hex; "" with
	// --media-base-url, which reads no content.
	SHA256 string
	// Uploaded: this Put sent the bytes. False when the store had the
	// object already (a re-run, another process, the same file in another
	// message) and with --media-base-url, which uploads nothing.
	Uploaded bool
}

// LocalPath returns the local path of a payload's message.media when it is
// a file: URL (as sources/chatexport.FileURL and the CSV and JSONL readers
// write them), and false for anything else (an http(s) URL is sent as it is).
func LocalPath(media string) (string, bool) {
	if !strings.HasPrefix(media, "file:") {
		return "", false
	}
	u, err := url.Parse(media)
	if err != nil || u.Scheme != "file" || (u.Host != "" && u.Host != "localhost") || u.Path == "" {
		return "", false
	}
	return filepath.FromSlash(u.Path), true
}

// openFile opens path for reading after checking that it is a regular,
// non-empty file of at most maxSize bytes. The size returned is the open
// file's, so a file replaced after the check is still read consistently.
func openFile(path string, maxSize int64) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fileErr(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, &FileError{Path: path, Reason: ErrUnreadable, Err: err}
	}
	if err := checkInfo(path, st, maxSize); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// statFile is openFile without opening: for --media-base-url, where only
// the size matters.
func statFile(path string, maxSize int64) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, fileErr(path, err)
	}
	if err := checkInfo(path, st, maxSize); err != nil {
		return 0, err
	}
	// Unreadable files would be unreadable to the web server too, most
	// likely; what matters here is that the user learns of it.
	f, err := os.Open(path)
	if err != nil {
		return 0, fileErr(path, err)
	}
	f.Close()
	return st.Size(), nil
}

func checkInfo(path string, st fs.FileInfo, maxSize int64) error {
	switch {
	case !st.Mode().IsRegular():
		return &FileError{Path: path, Reason: ErrNotRegular, Err: fmt.Errorf("mode %s", st.Mode().Type())}
	case st.Size() == 0:
		return &FileError{Path: path, Reason: ErrEmpty}
	case st.Size() > maxSize:
		return &FileError{Path: path, Reason: ErrTooLarge, Err: fmt.Errorf("%d bytes (%s), over the limit of %d (%s, --media-max-size)",
			st.Size(), FormatSize(st.Size()), maxSize, FormatSize(maxSize))}
	}
	return nil
}

func fileErr(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &FileError{Path: path, Reason: ErrMissing}
	}
	return &FileError{Path: path, Reason: ErrUnreadable, Err: err}
}

// hashReader reads r to its end and returns the SHA-256 in hex and the
// number of bytes read.
func hashReader(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// keyName is the file name as it goes into an object key: the base name,
// valid UTF-8 without control characters, at most 200 bytes (keeping the
// extension), "file" when nothing is left. Kommo shows file_name, not the
// key, so this only keeps keys clean for the operator's tools.
func keyName(path string) string {
	name := filepath.Base(path)
	var b strings.Builder
	for i := 0; i < len(name); {
		r, n := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == utf8.RuneError && n == 1, unicode.IsControl(r), r == '\\':
			b.WriteByte('_')
		default:
			b.WriteString(name[i : i+n])
		}
		i += n
	}
	name = b.String()
	if name == "" || name == "." || name == ".." || name == string(filepath.Separator) {
		return "file"
	}
	const maxName = 200
	if len(name) > maxName {
		ext := filepath.Ext(name)
		if len(ext) > 20 {
			ext = ""
		}
		stem := name[:maxName-len(ext)]
		for !utf8.ValidString(stem) {
			stem = stem[:len(stem)-1]
		}
		name = stem + ext
	}
	return name
}

// FormatSize prints bytes as "50 MiB", "1.5 KiB", "12 bytes".
func FormatSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := fmt.Sprintf("%.1f", v)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + []string{"KiB", "MiB", "GiB", "TiB", "PiB"}[exp]
}

// ParseSize reads a size as --media-max-size takes it: bytes ("52428800"),
// or a number with KB, MB or GB (binary: 1 MB = 1024 × 1024 bytes; KiB, MiB,
// GiB and K, M, G mean the same), a space allowed between them.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToUpper(strings.TrimSpace(t[i:]))
	mult := map[string]float64{"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
		"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20, "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || v <= 0 || v*mult > 1<<40 || (unit == "" && v != float64(int64(v))) {
		return 0, fmt.Errorf("size %q: want bytes, or a number with KB, MB or GB (e.g. 50MB)", s)
	}
	return int64(v * mult), nil
}
