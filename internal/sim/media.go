package sim

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of MediaFetch's zero values.
const (
	DefaultMediaTimeout     = 30 * time.Second
	DefaultMediaMaxSize     = 100 << 20
	DefaultMediaConcurrency = 4
)

// MediaFetch makes the simulator download the media of every accepted
// message as Kommo does: after accepting it, from the URL in message.media,
// with no credentials. The result goes into the message's ledger entry
// (Media), the counters (media_fetched, media_failed by reason) and, if set,
// the Ledger writer. A presigned URL that has expired, a 403, a 404 or a
// size other than message.file_size is a visible failure, as it would be a
// broken file in Kommo.
type MediaFetch struct {
	// Client makes the downloads; nil means a plain client. Timeout bounds
	// each download either way.
	Client *http.Client
	// Timeout bounds one download, body included; 0 means DefaultMediaTimeout.
	Timeout time.Duration
	// MaxSize is the most bytes read of one file; a larger one fails
	// ("too_large"). 0 means DefaultMediaMaxSize.
	MaxSize int64
	// Concurrency bounds the downloads at once; 0 means DefaultMediaConcurrency.
	Concurrency int
	// Ledger, if set, receives one JSON line (a MediaResult) per download.
	Ledger io.Writer
}

// Media fetch failure reasons, the keys of Stats.MediaFailed.
const (
	MediaNotHTTP      = "not_http"      // file:, a path, another scheme: Kommo cannot fetch it
	MediaBadURL       = "bad_url"       // not a URL
	MediaForbidden    = "forbidden"     // 401 or 403: an expired or wrongly signed URL, a private bucket
	MediaNotFound     = "not_found"     // 404 (410)
	MediaBadStatus    = "bad_status"    // any other status than 200
	MediaSizeMismatch = "size_mismatch" // the body's size is not message.file_size
	MediaTooLarge     = "too_large"     // over MaxSize
	MediaEmpty        = "empty"         // a 200 with no bytes
	MediaTimeout      = "timeout"       // no answer, or the body did not arrive, within Timeout
	MediaNetwork      = "network"       // refused, reset, DNS
)

// MediaResult is one media download.
type MediaResult struct {
	Seq   int64  `json:"seq"`   // the ledger entry's
	MsgID string `json:"msgid"` // the message's
	// URL is message.media without its query (a presigned URL's query is a
	// credential while it lasts).
	URL       string    `json:"url"`
	FetchedAt time.Time `json:"fetched_at"`
	OK        bool      `json:"ok"`
	Status    int       `json:"status,omitempty"` // HTTP status; 0 without an answer
	Bytes     int64     `json:"bytes"`            // bytes received
	WantSize  int64     `json:"want_size,omitempty"`
	Reason    string    `json:"reason,omitempty"` // a Media* reason when not OK
	Detail    string    `json:"detail,omitempty"` // what went wrong, in words (S3's error code and message)
	Skipped   bool      `json:"skipped,omitempty"`
}

// mediaTypes are the message types whose media Kommo downloads.
var mediaTypes = map[string]bool{"picture": true, "video": true, "file": true, "voice": true, "audio": true, "sticker": true}

// fetcher runs the downloads.
type fetcher struct {
	opts    MediaFetch
	client  *http.Client
	sem     chan struct{}
	pending sync.WaitGroup
	ledgMu  sync.Mutex
}

func newFetcher(o MediaFetch) *fetcher {
	if o.Timeout <= 0 {
		o.Timeout = DefaultMediaTimeout
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMediaMaxSize
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultMediaConcurrency
	}
	c := o.Client
	if c == nil {
		c = &http.Client{}
	}
	return &fetcher{opts: o, client: c, sem: make(chan struct{}, o.Concurrency)}
}

// fetchMedia starts the download of an accepted message's media, if it has
// any. Callers do not hold s.mu.
func (s *Server) fetchMedia(m *newMessage, seq int64) {
	f := s.fetch
	if f == nil {
		return
	}
	typ, _ := m.message["type"].(string)
	raw, _ := m.message["media"].(string)
	if !mediaTypes[typ] || strings.TrimSpace(raw) == "" {
		return
	}
	var want int64
	if n, ok := m.message["file_size"].(json.Number); ok {
		want, _ = n.Int64()
	}
	res := MediaResult{Seq: seq, MsgID: m.msgID, URL: stripQuery(raw), WantSize: want}
	s.count(func(st *Stats) { st.MediaPending++ })
	f.pending.Add(1)
	go func() {
		defer f.pending.Done()
		f.sem <- struct{}{}
		f.get(raw, &res)
		<-f.sem
		res.FetchedAt = s.now()
		s.recordMedia(res)
	}()
}

// get downloads u into res.
func (f *fetcher) get(u string, res *MediaResult) {
	fail := func(reason, detail string) {
		res.OK, res.Reason, res.Detail = false, reason, detail
	}
	pu, err := url.Parse(strings.TrimSpace(u))
	if err != nil {
		fail(MediaBadURL, err.Error())
		return
	}
	if pu.Scheme != "http" && pu.Scheme != "https" {
		fail(MediaNotHTTP, fmt.Sprintf("%q is not an http(s) URL: Kommo cannot download it (a local file must be hosted first: --media-store or --media-base-url)", stripQuery(u)))
		return
	}
	if reservedHost(pu.Hostname()) {
		// A documentation domain (RFC 2606) never holds a file: the samples
		// use them, and no request should leave the machine for them.
		res.Skipped, res.Reason, res.Detail = true, "", "reserved example domain: not fetched"
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pu.String(), nil)
	if err != nil {
		fail(MediaBadURL, err.Error())
		return
	}
	req.Header.Set("User-Agent", "kommo-sim media fetch")
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			fail(MediaTimeout, fmt.Sprintf("no answer within %s", f.opts.Timeout))
			return
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL and its query
		}
		fail(MediaNetwork, err.Error())
		return
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		detail := resp.Status
		if s3 := s3Error(resp.Body); s3 != "" {
			detail += ": " + s3
		}
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			fail(MediaForbidden, detail)
		case http.StatusNotFound, http.StatusGone:
			fail(MediaNotFound, detail)
		default:
			fail(MediaBadStatus, detail)
		}
		return
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, f.opts.MaxSize+1))
	res.Bytes = n
	switch {
	case err != nil && (ctx.Err() != nil || isTimeout(err)):
		fail(MediaTimeout, fmt.Sprintf("the body did not arrive within %s (%d bytes)", f.opts.Timeout, n))
	case err != nil:
		fail(MediaNetwork, err.Error())
	case n > f.opts.MaxSize:
		fail(MediaTooLarge, fmt.Sprintf("more than %d bytes", f.opts.MaxSize))
	case n == 0:
		fail(MediaEmpty, "the URL serves no bytes")
	case res.WantSize > 0 && n != res.WantSize:
		fail(MediaSizeMismatch, fmt.Sprintf("%d bytes, message.file_size says %d", n, res.WantSize))
	default:
		res.OK = true
	}
}

// recordMedia puts a download's result into the ledger entry, the counters
// and the media ledger.
func (s *Server) recordMedia(res MediaResult) {
	s.mu.Lock()
	s.stats.MediaPending--
	switch {
	case res.Skipped:
		s.stats.MediaSkipped++
	case res.OK:
		s.stats.MediaFetched++
		s.stats.MediaBytes += res.Bytes
	default:
		s.stats.MediaFailed[res.Reason]++
	}
	if i := res.Seq - 1; i >= 0 && i < int64(len(s.ledger)) && s.ledger[i].Seq == res.Seq {
		r := res
		s.ledger[i].Media = &r
	}
	s.mu.Unlock()
	if !res.OK && !res.Skipped {
		s.log.Warn("media fetch failed", "msgid", res.MsgID, "url", res.URL, "reason", res.Reason, "detail", res.Detail)
	}
	if w := s.fetch.opts.Ledger; w != nil {
		line, err := json.Marshal(res)
		if err == nil {
			s.fetch.ledgMu.Lock()
			_, err = w.Write(append(line, '\n'))
			if fl, ok := w.(interface{ Flush() error }); ok && err == nil {
				err = fl.Flush()
			}
			s.fetch.ledgMu.Unlock()
		}
		if err != nil {
			s.log.Error("media ledger write", "err", err)
		}
	}
}

// WaitMedia waits until every download started so far has ended, or ctx
// ends. Without MediaFetch it returns at once.
func (s *Server) WaitMedia(ctx context.Context) error {
	if s.fetch == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		s.fetch.pending.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// s3Error is the Code and Message of an S3 error body ("AccessDenied:
// Request has expired"), "" for any other body.
func s3Error(body io.Reader) string {
	var e struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	b, _ := io.ReadAll(io.LimitReader(body, 8<<10))
	if xml.Unmarshal(b, &e) != nil || e.Code == "" {
		return ""
	}
	if e.Message == "" {
		return e.Code
	}
	return e.Code + ": " + e.Message
}

func stripQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

// reservedHost reports a host under a domain reserved for documentation
// and tests (RFC 2606, RFC 6761): example.com, .net, .org, .example, .test,
// .invalid.
func reservedHost(h string) bool {
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	for _, d := range []string{"example.com", "example.net", "example.org", "example", "test", "invalid"} {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
