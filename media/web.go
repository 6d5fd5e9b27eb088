package media

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// webStore is the --media-base-url backend: the operator's web server
// publishes the export folder, nothing is uploaded.
type webStore struct {
	cfg  Config
	base *url.URL
	root string // the export folder, absolute, symlinks resolved
	http *http.Client
}

func openWeb(c Config, hc *http.Client) (*webStore, error) {
	base, err := c.checkURL("--media-base-url", c.BaseURL)
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(c.Root)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, fmt.Errorf("--media-base-url: the export folder %s: %w", c.Root, err)
	}
	return &webStore{cfg: c, base: base, root: root, http: hc}, nil
}

func (w *webStore) where(u string) string { return "media URL " + u }

// rel is path relative to the export root, with forward slashes; a path
// outside it (after symlinks) has no URL.
func (w *webStore) rel(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", fileErr(path, err)
	}
	rel, err := filepath.Rel(w.root, abs)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", &FileError{Path: path, Reason: ErrOutside, Err: fmt.Errorf("the export folder is %s", w.root)}
	}
	return filepath.ToSlash(rel), nil
}

func (w *webStore) put(ctx context.Context, localPath string) (Object, error) {
	if archive, _, ok := zipRef(localPath); ok {
		return Object{}, &FileError{Path: localPath, Reason: ErrInArchive,
			Err: fmt.Errorf("a web server cannot publish the entries of %s: unzip the export and give its folder as the source", archive)}
	}
	size, err := statFile(localPath, w.cfg.MaxSize)
	if err != nil {
		return Object{}, err
	}
	rel, err := w.rel(localPath)
	if err != nil {
		return Object{}, err
	}
	obj := Object{Key: rel, Size: size}
	return obj, w.check(ctx, obj)
}

func (w *webStore) url(obj Object) string { return joinURL(w.base, obj.Key) }

// check asks the web server for the file's URL with a HEAD (a ranged GET of
// one byte where HEAD is not allowed) and wants 200 (or 206) with the
// file's size. A 404, another size or a refusal is Unpublished: the
// message fails and may be retried once the file is published; no answer
// or a 5xx is Transient.
func (w *webStore) check(ctx context.Context, obj Object) error {
	u := w.url(obj)
	got, status, err := w.size(ctx, http.MethodHead, u)
	if err == nil && (status == http.StatusMethodNotAllowed || status == http.StatusNotImplemented) {
		got, status, err = w.size(ctx, http.MethodGet, u)
	}
	if err != nil {
		return err
	}
	e := &Error{Kind: Unpublished, Op: "check url", Where: w.where(u), Key: obj.Key, Status: status}
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		e.Kind, e.Err = Transient, errors.New("the web server failed")
		return e
	case status != http.StatusOK && status != http.StatusPartialContent:
		e.Err = errors.New("the file is not published there (--media-base-url must serve the export folder)")
		return e
	case got < 0:
		e.Err = errors.New("the answer does not say the size (no Content-Length), so Kommo's copy could not be checked")
		return e
	case got != obj.Size:
		e.Err = fmt.Errorf("%w: it serves %d bytes, the file has %d (an older copy?)", ErrSizeMismatch, got, obj.Size)
		return e
	}
	return nil
}

// size makes one request and returns the size the answer says the file has:
// Content-Length of a 200, the total of Content-Range of a 206; -1 when it
// does not say.
func (w *webStore) size(ctx context.Context, method, u string) (int64, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, 0, &Error{Kind: Permanent, Op: "check url", Where: w.where(u), Err: err}
	}
	if method == http.MethodGet {
		req.Header.Set("Range", "bytes=0-0")
	}
	// Ask for the bytes as stored: a server that compresses on the fly
	// would answer with another length.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := w.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		return 0, 0, &Error{Kind: Transient, Op: "check url", Where: w.where(u), Err: redactURLError(err), noAnswer: true}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusPartialContent:
		// Content-Range: bytes 0-0/12345
		cr := resp.Header.Get("Content-Range")
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if n, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				return n, resp.StatusCode, nil
			}
		}
		return -1, resp.StatusCode, nil
	case http.StatusOK:
		if method == http.MethodHead {
			if n, err := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64); err == nil {
				return n, resp.StatusCode, nil
			}
			return -1, resp.StatusCode, nil
		}
		return resp.ContentLength, resp.StatusCode, nil
	}
	return -1, resp.StatusCode, nil
}

func (w *webStore) probe(ctx context.Context, sample string) error {
	if sample == "" {
		return nil
	}
	if _, err := w.put(ctx, sample); err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			return err // the sample itself is bad: the caller picks another
		}
		return permanent(err)
	}
	return nil
}
