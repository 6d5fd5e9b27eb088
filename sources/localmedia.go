package sources

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/kommo-import/kommo-import/wire"
)

// DefaultMediaMaxSize is the largest local media file taken when
// Spec.MediaMaxSize is 0: 50 MiB (media.DefaultMaxSize, the same number).
const DefaultMediaMaxSize = 50 << 20

// ErrMediaFile: a record's local media file cannot be sent (missing,
// unreadable, not a regular file, empty, over --media-max-size). With
// --media-missing text the record goes out as its text placeholder instead
// of being rejected.
var ErrMediaFile = errors.New("media file unusable")

// ErrMediaOutside: a record's local media path leads out of the export
// folder (through .. or a symlink). It is always rejected, never turned into
// a placeholder: it names a file the export does not hold.
var ErrMediaOutside = errors.New("outside the export folder")

// MediaRoot resolves the local media paths of an export whose files live
// under one folder: the CSV or JSONL file's folder, the folder holding a
// Telegram result.json. A path is taken relative to it; a path or symlink
// leading out of it is refused.
type MediaRoot struct {
	dir     string // absolute, cleaned
	realDir string // dir with symlinks resolved
	maxSize int64
}

// NewMediaRoot returns the MediaRoot of dir; maxSize 0 means
// DefaultMediaMaxSize.
func NewMediaRoot(dir string, maxSize int64) (*MediaRoot, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("media folder %s: %w", dir, err)
	}
	if maxSize <= 0 {
		maxSize = DefaultMediaMaxSize
	}
	return &MediaRoot{dir: abs, realDir: real, maxSize: maxSize}, nil
}

// Dir is the export folder, absolute.
func (m *MediaRoot) Dir() string { return m.dir }

// Resolve finds the file a media reference names: a path relative to the
// root, an absolute path inside it, or a file: URL of either. It returns the
// file's absolute path (inside the root as written, symlinks kept) and its
// size. The error wraps ErrMediaOutside for a path that leads out of the
// root (lexically or through a symlink), ErrMediaFile for a file that
// cannot be sent.
func (m *MediaRoot) Resolve(ref string) (string, int64, error) {
	p, err := refPath(ref)
	if err != nil {
		return "", 0, err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(m.dir, p)
	}
	p = filepath.Clean(p)
	if !within(m.dir, p) {
		return "", 0, fmt.Errorf("%w: %s is not under %s", ErrMediaOutside, p, m.dir)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", 0, fmt.Errorf("%w: %s does not exist", ErrMediaFile, p)
		}
		return "", 0, fmt.Errorf("%w: %s: %v", ErrMediaFile, p, unwrapPath(err))
	}
	if !within(m.realDir, real) {
		return "", 0, fmt.Errorf("%w: %s is a symlink to %s, not under %s", ErrMediaOutside, p, real, m.realDir)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s: %v", ErrMediaFile, p, unwrapPath(err))
	}
	switch {
	case !st.Mode().IsRegular():
		return "", 0, fmt.Errorf("%w: %s is not a regular file", ErrMediaFile, p)
	case st.Size() == 0:
		return "", 0, fmt.Errorf("%w: %s is empty", ErrMediaFile, p)
	case st.Size() > m.maxSize:
		return "", 0, fmt.Errorf("%w: %s holds %d bytes, over --media-max-size (%d)", ErrMediaFile, p, st.Size(), m.maxSize)
	}
	f, err := os.Open(real)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s: %v", ErrMediaFile, p, unwrapPath(err))
	}
	f.Close()
	return p, st.Size(), nil
}

// refPath is the local path of a reference: a file: URL's path, or the
// reference itself.
func refPath(ref string) (string, error) {
	if !strings.HasPrefix(strings.ToLower(ref), "file:") {
		return filepath.FromSlash(ref), nil
	}
	u, err := url.Parse(ref)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not a file: URL: %v", ErrMediaFile, ref, err)
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("%w: %q names host %q: a file: URL must name a file of this machine", ErrMediaOutside, ref, u.Host)
	}
	if u.Opaque != "" { // file:photo.jpg, relative
		p, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrMediaFile, ref, err)
		}
		return filepath.FromSlash(p), nil
	}
	if u.Path == "" {
		return "", fmt.Errorf("%w: %q names no file", ErrMediaFile, ref)
	}
	return filepath.FromSlash(u.Path), nil
}

// within reports whether p is dir or under it; both are clean and absolute.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// unwrapPath drops the *fs.PathError's repetition of the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// localMedia is the Reader's hook for CSV and JSONL files: message.media
// that is not an http(s) URL names a local file beside the source.
type localMedia struct {
	root *MediaRoot // nil: the source has no folder (stdin), or it cannot be read
	err  error      // why root is nil
}

// newLocalMedia makes the hook for a source file at path; "-" is stdin.
func newLocalMedia(path string, maxSize int64) *localMedia {
	if path == "-" {
		return &localMedia{err: errors.New("stdin has no folder to find files in: read the file with --source csv:PATH or jsonl:PATH")}
	}
	root, err := NewMediaRoot(filepath.Dir(path), maxSize)
	return &localMedia{root: root, err: err}
}

// resolve rewrites a media message whose media is a local path or file: URL
// to the file: URL of the file's absolute path, with file_size from the
// file, file_name from the path when the record has none, and the type from
// the extension when the record has none. http(s) URLs, and messages whose
// type carries no media, are left alone. A file that cannot be sent is a
// *LineError wrapping ErrMediaFile unless placeholder is set, in which case
// the message becomes its text placeholder (counted in stats); a path out
// of the folder is a *LineError wrapping ErrMediaOutside either way.
func (h *localMedia) resolve(m *wire.Message, placeholder bool, stats *Stats) *LineError {
	if m == nil || isBlank(m.Media) || !(m.Type == "" || mediaTypes[m.Type]) {
		return nil
	}
	ref := strings.TrimSpace(m.Media)
	if scheme, ok := urlScheme(ref); ok {
		switch scheme {
		case "http", "https":
			return nil
		case "file":
		default:
			return fieldErr("message.media", "%q: a %s: URL Kommo cannot fetch; give an http(s) URL, a file: URL or a path to a file beside the source", ref, scheme)
		}
	}
	if h.root == nil {
		return fieldErr("message.media", "%w: %q is a local file, but %v", ErrMediaFile, ref, h.err)
	}
	path, size, err := h.root.Resolve(ref)
	if err != nil {
		if errors.Is(err, ErrMediaFile) && placeholder {
			if m.Type == "" {
				m.Type = typeFromExt(ref)
			}
			if isBlank(m.FileName) {
				m.FileName = filepath.Base(filepath.FromSlash(ref))
			}
			mediaToText(m)
			stats.MediaPlaceholders++
			return nil
		}
		return fieldErr("message.media", "%w", err)
	}
	m.Media = fileURL(path)
	m.FileSize = size
	if isBlank(m.FileName) {
		m.FileName = filepath.Base(path)
	}
	if m.Type == "" {
		m.Type = typeFromExt(path)
	}
	stats.MediaFiles++
	return nil
}

// urlScheme returns the scheme of ref, lower case, when it starts with one
// ("https:", "file:"); a Windows drive ("C:\...") is a path, not a scheme.
func urlScheme(ref string) (string, bool) {
	i := strings.IndexByte(ref, ':')
	if i < 2 {
		return "", false
	}
	for j := 0; j < i; j++ {
		c := ref[j]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if !letter && (j == 0 || !(c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return "", false
		}
	}
	return strings.ToLower(ref[:i]), true
}

// fileURL is chatexport.FileURL (which imports this package).
func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// typeFromExt is the Kommo message type of a file by its extension, for
// records that do not say: pictures, videos, voice notes (the formats
// messengers record them in), audio, stickers, and any other file.
func typeFromExt(name string) string {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".heic", ".heif", ".webp":
		return wire.TypePicture
	case ".tgs": // Telegram's animated stickers
		return wire.TypeSticker
	case ".mp4", ".mov", ".m4v", ".webm", ".3gp", ".mkv", ".avi":
		return wire.TypeVideo
	case ".ogg", ".oga", ".opus":
		return wire.TypeVoice
	case ".mp3", ".m4a", ".aac", ".wav", ".flac", ".amr":
		return wire.TypeAudio
	}
	return wire.TypeFile
}
