package media

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"golang.org/x/sync/singleflight"
)

// Store puts local files where Kommo can fetch them and names their URLs.
// It is safe for concurrent use; at most Config.Concurrency Puts run at
// once, the others wait their turn (or for their context).
type Store struct {
	cfg  Config
	s3   *s3Store  // --media-store
	web  *webStore // --media-base-url
	sem  chan struct{}
	same singleflight.Group // one Put per path at a time: a sticker in many messages
}

// Open checks cfg and returns a Store. It reads the AWS configuration
// (environment, shared files) but makes no request: Probe does.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient(cfg.Concurrency)
	}
	s := &Store{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency)}
	if cfg.BaseURL != "" {
		s.web, err = openWeb(cfg, hc)
	} else {
		s.s3, err = openS3(ctx, cfg, hc)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// defaultHTTPClient fails fast where nothing answers (a dial or a TLS
// handshake bounded at 10 s, response headers at 60 s after the body was
// sent) and keeps enough idle connections for the Puts that run at once.
// It has no overall timeout: a 50 MB upload on a slow link takes its time,
// and the caller's context bounds it.
func defaultHTTPClient(concurrency int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 10 * time.Second
	tr.ResponseHeaderTimeout = 60 * time.Second
	tr.MaxIdleConnsPerHost = max(concurrency, 2)
	tr.DisableCompression = true // sizes are compared as stored
	return &http.Client{
		Transport: tr,
		// A presigned URL or the operator's server may redirect (a CDN);
		// Kommo follows them too.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return fmt.Errorf("stopped after %d redirects", len(via))
			}
			return nil
		},
	}
}

// Describe names the store for logs and errors: s3://bucket/prefix (at the
// endpoint) or the base URL. It never holds a credential.
func (s *Store) Describe() string {
	if s.web != nil {
		return "media base URL " + s.cfg.BaseURL
	}
	return s.s3.where
}

// Put makes the local file at path available, idempotently. path is a
// reference as LocalRef returns it: a file's path, or the zip: URL of a
// file inside a zipped export, read from the archive in place.
//
// With a store it reads the file once to hash it, HEADs the content-
// addressed key and uploads (streaming the file, signed with that hash)
// only when the object is not there: a second Put of the same content, from
// this process or any other, uploads nothing. With --media-base-url it
// checks that the file's URL serves it with its size (a file inside a zip
// cannot be published so: a *FileError with ErrInArchive).
//
// Object.Uploaded says whether this Put sent the bytes.
//
// A *FileError says the file cannot be used (missing, unreadable, empty,
// over Config.MaxSize, outside the export root); an *Error is Transient,
// Permanent or Unpublished (see Kind); a context error is the caller's.
func (s *Store) Put(ctx context.Context, path string) (Object, error) {
	v, err, _ := s.same.Do(path, func() (any, error) {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			return Object{}, ctx.Err()
		}
		defer func() { <-s.sem }()
		if s.web != nil {
			return s.web.put(ctx, path)
		}
		return s.s3.put(ctx, path)
	})
	return v.(Object), err
}

// URL is the URL to send in message.media for obj, made now: a presigned
// GET valid for Config.URLTTL from this moment, PublicBase/KEY, or the base
// URL's mapping of the file. It makes no request.
func (s *Store) URL(ctx context.Context, obj Object) (string, error) {
	if s.web != nil {
		return s.web.url(obj), nil
	}
	return s.s3.url(ctx, obj)
}

// Probe is the preflight, bounded by Config.ProbeTimeout. With a store it
// writes a small object, makes its URL (presigned or public), downloads it
// as Kommo would (no credentials) and deletes it. With --media-base-url it
// checks the URL of sample, a local file the source holds (nothing when
// sample is ""). A wrong endpoint, credentials, bucket, bucket policy or
// base URL is a Permanent *Error naming the store or URL; a bad sample is
// its *FileError.
func (s *Store) Probe(ctx context.Context, sample string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProbeTimeout)
	defer cancel()
	var err error
	if s.web != nil {
		err = s.web.probe(ctx, sample)
	} else {
		err = s.s3.probe(ctx)
	}
	if err != nil && ctx.Err() == context.DeadlineExceeded {
		return &Error{Kind: Permanent, Op: "probe", Where: s.Describe(), noAnswer: true,
			Err: fmt.Errorf("no answer within %s (%w): is the endpoint right and reachable?", s.cfg.ProbeTimeout, err)}
	}
	return err
}
