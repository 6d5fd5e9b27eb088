package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/kommo-import/kommo-import/importer/internal/store"
	"github.com/kommo-import/kommo-import/media"
	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/wire"
)

// Local media. A message whose message.media names a local file (a file:
// URL, or the zip: URL of a file inside a zipped export) carries its
// reference in media_path from staging on. With a media store
// (Config.Media), every such file is put where Kommo can fetch it ahead of
// its message's turn, by the uploader: goroutines started with the send
// phase that walk the run's upcoming local files in send order, at most
// Config.MediaAhead messages ahead of the sending, put them (at most
// Config.MediaUploads at once, never inside a rate slot) and record each in
// the uploads table. At the message's turn, prepareMedia reads that record
// (or puts the file itself when the uploader has not come to it) and names
// the file by a URL made right then (a presigned GET valid for the store's
// TTL from that moment): the URL is never stored nor logged. A crash between
// upload and send costs a presign; the content-addressed key makes even an
// upload whose record was lost a HEAD, not a second upload.
//
// What a failure does: a file that cannot be used (missing, unreadable,
// empty, too large, not publishable) goes out as its text placeholder with
// Config.MediaMissingText, else its message fails with the reason (retry
// sends it once the file is there); a URL of --media-base-url that does not
// serve the file fails its message; a store that fails for a while parks
// the conversation with backoff, and one that refuses the run (credentials,
// bucket, policy) stops it, naming the store.

// MediaStore puts local files where Kommo can fetch them. *media.Store is one.
type MediaStore interface {
	// Put makes the file ref names (media.LocalRef) available, once.
	Put(ctx context.Context, ref string) (media.Object, error)
	// URL names obj for message.media, made now.
	URL(ctx context.Context, obj media.Object) (string, error)
	// Probe is the preflight; sample is a local file of the run
	// (--media-base-url checks its URL), "" for none.
	Probe(ctx context.Context, sample string) error
	// Describe names the store (never a credential): the uploads table's
	// store column.
	Describe() string
}

// DefaultMediaAhead is how many media messages the uploader may run ahead
// of the sending: two minutes of a 7/s run of which 30% are media.
const DefaultMediaAhead = 256

// mediaState is an invocation's media machinery.
type mediaState struct {
	up atomic.Pointer[uploader]
	// This invocation's counts.
	uploaded, found, atTurn, placeholders atomic.Int64
}

// MediaNow is what one invocation did with local files.
type MediaNow struct {
	Uploaded int64 `json:"uploaded"` // files put
	Reused   int64 `json:"reused"`   // files the store had already (or, with --media-base-url, found published)
	// AtTurn counts the files put at their message's turn, because the
	// uploader had not come to them (or could not put them): each held its
	// worker, not a rate slot, for the upload's time. Few, when the
	// uploader keeps ahead.
	AtTurn       int64 `json:"at_turn"`
	Placeholders int64 `json:"placeholders"` // messages sent as text: their file could not be used
}

func (im *Importer) mediaNow() *MediaNow {
	n := &MediaNow{Uploaded: im.media.uploaded.Load(), Reused: im.media.found.Load(), AtTurn: im.media.atTurn.Load(), Placeholders: im.media.placeholders.Load()}
	if *n == (MediaNow{}) {
		return nil
	}
	return n
}

// mediaWhere names the store: the uploads table's store column, and the
// store in errors.
func (im *Importer) mediaWhere() string { return im.cfg.Media.Describe() }

// localMediaPath is the media_path a payload is staged with: the local
// file its message names, "" for none.
func localMediaPath(p *wire.Payload) string {
	if p.Message == nil {
		return ""
	}
	ref, _ := media.LocalRef(p.Message.Media)
	return ref
}

// MediaError is a media store or URL that stopped the run: at the preflight
// (before anything was sent), or while sending, when the store refused a
// file or kept failing at one. Nothing was sent for the message it stopped
// at.
type MediaError struct {
	Where     string // the store or URL (media.Store.Describe); never a credential
	Preflight bool   // found by the preflight
	// Attempts, when above 0: the store failed this many times in a row at
	// one file (network, 5xx, SlowDown) and the run gave up for now.
	Attempts int
	Err      error // a *media.Error
}

func (e *MediaError) Error() string {
	switch {
	case e.Preflight:
		return "media preflight: " + e.Err.Error()
	case e.Attempts > 0:
		return fmt.Sprintf("the media store kept failing (%d attempts in a row at one file): %v", e.Attempts, e.Err)
	}
	return "the media store refused a file: " + e.Err.Error()
}

func (e *MediaError) Unwrap() error { return e.Err }

// Refused reports a refusal the operator must fix (credentials, bucket,
// policy, base URL): false when nothing answered, or the failures may pass,
// and the same command resumes.
func (e *MediaError) Refused() bool {
	var me *media.Error
	if e.Attempts > 0 || !errors.As(e.Err, &me) {
		return false
	}
	return me.Kind != media.Transient && !me.NoAnswer()
}

// Is makes errors.Is(err, ErrInterrupted) true when the run may simply be
// resumed.
func (e *MediaError) Is(target error) bool { return target == ErrInterrupted && !e.Refused() }

// MediaNeededError: the run holds messages naming local files and no media
// store was given: without one they cannot be sent as media, and a local
// path must never reach Kommo.
type MediaNeededError struct {
	Run      string
	Messages int64 // unsent messages naming a local file
}

func (e *MediaNeededError) Error() string {
	return fmt.Sprintf("run %s holds %d unsent messages whose media are local files, and no media store is given", e.Run, e.Messages)
}

// preflightMedia runs before anything of the run is written: a run that
// staged local files needs a store, and a store must work (a probe object
// written, fetched as Kommo would and deleted; --media-base-url is checked
// after staging, against a file of the run). It also says when a store is
// given to a run that staged its local files as text.
func (im *Importer) preflightMedia(ctx context.Context) error {
	var left, asText int64
	err := im.withDB(ctx, "media preflight", func(ctx context.Context) (err error) {
		if left, err = im.q.LocalMediaLeft(ctx, im.cfg.Run); err != nil {
			return err
		}
		asText, err = im.q.StagedAsText(ctx, im.cfg.Run, sources.SkipMediaNotHosted)
		return err
	})
	if err != nil {
		return fmt.Errorf("media preflight: %w", err)
	}
	if im.cfg.Media == nil {
		if left > 0 {
			return &MediaNeededError{Run: im.cfg.Run, Messages: left}
		}
		return nil
	}
	if asText > 0 {
		im.log.Warn("this run staged its local media as text before (no media store then): those messages go out as text whatever the media flags now, "+
			"and the ones already sent stay as they are; to send the unsent ones as media, abandon this run and start a new one with the store (another --run name): it takes them over",
			"run", im.cfg.Run, "staged_as_text", asText)
	}
	if im.cfg.MediaWeb {
		return nil // checked against a file of the run once it is staged
	}
	if err := im.cfg.Media.Probe(ctx, ""); err != nil {
		return mediaPreflightError(ctx, im.mediaWhere(), err)
	}
	im.log.Info("media store checked: a probe object written, fetched without credentials and deleted", "store", im.mediaWhere())
	return nil
}

// preflightMediaWeb checks --media-base-url before any send, once the run
// is staged: the URL of a file of the run must serve it with its size. Up
// to five files are tried: a file that is itself bad (missing, outside the
// export) is left to its message, and one the server does not publish
// fails its message, unless none is published at all (the base URL is
// wrong); a server that does not answer stops the run at once.
func (im *Importer) preflightMediaWeb(ctx context.Context) error {
	if im.cfg.Media == nil || !im.cfg.MediaWeb {
		return nil
	}
	var samples []string
	err := im.withDB(ctx, "media preflight", func(ctx context.Context) (err error) {
		samples, err = im.q.MediaSamples(ctx, im.cfg.Run, 5)
		return err
	})
	if err != nil {
		return fmt.Errorf("media preflight: %w", err)
	}
	var first error
	for _, s := range samples {
		err := im.cfg.Media.Probe(ctx, s)
		var fe *media.FileError
		var me *media.Error
		switch {
		case err == nil:
			im.log.Info("media base URL checked: it serves a file of the run with its size", "where", im.mediaWhere())
			return nil
		case errors.As(err, &fe):
			continue
		case ctx.Err() != nil || errors.As(err, &me) && me.NoAnswer():
			return mediaPreflightError(ctx, im.mediaWhere(), err)
		case first == nil:
			first = err
		}
	}
	if first != nil {
		return mediaPreflightError(ctx, im.mediaWhere(), first)
	}
	return nil
}

func mediaPreflightError(ctx context.Context, where string, err error) error {
	if ctx.Err() != nil {
		return interrupted(CauseSignal, "", err)
	}
	return &MediaError{Where: where, Preflight: true, Err: err}
}

// prepareMedia runs before a message's request: a local file (message.media
// a file: or zip: URL) is taken from its upload record (or put now, when
// the uploader has not come to it), and p names it by a URL made now, with
// the size it was put with. A non-zero step leaves the conversation for
// later (a store failing for a while parks it) or the message failed (its
// file cannot be used, without --media-missing text); a file that cannot be
// used goes out as its text placeholder with --media-missing text. Without
// a media store it does nothing (the sources turned such files into text,
// and preflightMedia stopped a run that holds some).
func (im *Importer) prepareMedia(ctx context.Context, conv *conversation, m *pendingMessage, p *wire.Payload, halt <-chan struct{}) (step, error) {
	msg := p.Message
	if msg == nil {
		return 0, nil
	}
	ref, ok := media.LocalRef(msg.Media)
	if !ok {
		return 0, nil
	}
	if im.cfg.Media == nil {
		// preflightMedia refused such a run; this one came by a takeover.
		return 0, &MediaNeededError{Run: im.cfg.Run, Messages: 1}
	}
	if up := im.media.up.Load(); up != nil {
		up.consumed()
	}
	obj, err := im.mediaObject(ctx, ref, m.MsgID)
	if err == nil {
		var u string
		if u, err = im.cfg.Media.URL(ctx, obj); err == nil {
			msg.Media, msg.FileSize = u, obj.Size
			if msg.FileName == "" {
				msg.FileName = media.RefName(ref)
			}
			return 0, nil
		}
	}
	return im.mediaFailed(ctx, conv, m, msg, ref, err)
}

// mediaObject is the stored object of ref: from its record, else put now
// and recorded.
func (im *Importer) mediaObject(ctx context.Context, ref, msgid string) (media.Object, error) {
	u := store.MediaUpload{Run: im.cfg.Run, Store: im.mediaWhere(), Path: ref}
	var found bool
	err := im.withDB(ctx, "media record", func(ctx context.Context) (err error) {
		found, err = im.q.LoadMediaUpload(ctx, &u, im.cfg.ScopeID, msgid)
		return err
	})
	if err != nil {
		return media.Object{}, fmt.Errorf("media record: %w", err)
	}
	if found {
		return media.Object{Key: u.Key, Size: u.Size, SHA256: u.SHA256}, nil
	}
	im.media.atTurn.Add(1)
	obj, err := im.cfg.Media.Put(ctx, ref)
	if err != nil {
		return obj, err
	}
	return obj, im.recordUpload(ctx, ref, obj, msgid)
}

// recordUpload records a file put for the run (msgid: the message whose
// turn it is, "" from the uploader).
func (im *Importer) recordUpload(ctx context.Context, ref string, obj media.Object, msgid string) error {
	u := store.MediaUpload{Run: im.cfg.Run, Store: im.mediaWhere(), Path: ref, Key: obj.Key, Size: obj.Size, SHA256: obj.SHA256, Uploaded: obj.Uploaded}
	var rec store.Recorded
	err := im.withDB(ctx, "media record", func(ctx context.Context) (err error) {
		rec, err = im.q.RecordMediaUpload(ctx, u, im.cfg.ScopeID, msgid)
		return err
	})
	if err != nil {
		return fmt.Errorf("media record: %w", err)
	}
	// A Put shared by the uploader and a worker (or two processes) is
	// recorded, and counted, once.
	switch {
	case rec == store.RecordedUploaded:
		// The row said found (this process's, or another's): uploaded now.
		if im.media.found.Load() > 0 {
			im.media.found.Add(-1)
		}
		im.media.uploaded.Add(1)
	case rec == store.RecordedNothing:
	case obj.Uploaded:
		im.media.uploaded.Add(1)
	default:
		im.media.found.Add(1)
	}
	return nil
}

// mediaFailed acts on a message's media that could not be made ready.
func (im *Importer) mediaFailed(ctx context.Context, conv *conversation, m *pendingMessage, msg *wire.Message, ref string, err error) (step, error) {
	if ctx.Err() != nil {
		return 0, interrupted(CauseSignal, "", err)
	}
	var fe *media.FileError
	var me *media.Error
	switch {
	case errors.As(err, &fe):
		reason := fe.Error()
		if err := im.setMediaProblem(ctx, conv, m, reason); err != nil {
			return 0, err
		}
		if im.cfg.MediaMissingText {
			im.media.placeholders.Add(1)
			im.log.Info("media file cannot be sent: the message goes out as its text placeholder (--media-missing text)", "msgid", m.MsgID, "err", reason)
			sources.MediaToText(msg)
			return 0, nil
		}
		return im.failMedia(ctx, conv, m, reason)
	case errors.As(err, &me) && me.Kind == media.Unpublished:
		if err := im.setMediaProblem(ctx, conv, m, me.Error()); err != nil {
			return 0, err
		}
		return im.failMedia(ctx, conv, m, me.Error())
	case errors.As(err, &me) && me.Kind == media.Transient:
		im.stats.retries.Add(1)
		conv.failures++
		if conv.failures >= im.cfg.MaxAttempts {
			return 0, &MediaError{Where: im.mediaWhere(), Attempts: conv.failures, Err: err}
		}
		wait := im.att.policy.backoff(conv.failures)
		im.log.Info("media store failed: parking the conversation, retrying later", "msgid", m.MsgID, "attempt", conv.failures+1, "in", wait.Round(time.Millisecond), "err", err)
		return stepParked, im.park(ctx, conv, wait, "")
	case errors.As(err, &me):
		return 0, &MediaError{Where: im.mediaWhere(), Err: err}
	}
	return 0, fmt.Errorf("media %s: %w", ref, err)
}

func (im *Importer) setMediaProblem(ctx context.Context, conv *conversation, m *pendingMessage, reason string) error {
	return im.checkpoint(ctx, func(ctx context.Context, q *store.Queries) error {
		return q.SetMediaProblem(ctx, im.lease(conv), m.MsgID, cleanText(reason))
	})
}

// failMedia fails a message whose file cannot go out, as fail does for a
// message the API refused: retry sends it once the file is there.
func (im *Importer) failMedia(ctx context.Context, conv *conversation, m *pendingMessage, reason string) (step, error) {
	im.stats.failed.Add(1)
	conv.failures = 0
	im.log.Warn("media file cannot be sent: the message fails (kommo-import retry sends it once the file is there, or --media-missing text sends its text)",
		"msgid", m.MsgID, "conversation_id", conv.id, "err", reason)
	if err := im.markFailed(ctx, conv, m.MsgID, "media: "+reason); err != nil {
		return 0, err
	}
	if im.cfg.OnFailure == OnFailureContinue {
		return stepDone, nil
	}
	return stepHeld, nil
}

// The uploader.

// uploaderAttempts is how often the uploader tries a file the store fails
// for a moment before it leaves the file to its message's turn.
const uploaderAttempts = 3

// uploaderTurn is how many media messages of one conversation the walk
// takes before it turns to the next conversation of its window.
const uploaderTurn = 4

// uploader puts the run's local files ahead of the sending.
type uploader struct {
	im     *Importer
	credit chan struct{}   // one token per media message walked ahead of the sending
	work   chan string     // files to put
	queued map[string]bool // files handed to the putters lately
	// cancel stops the walk and the putters (a store refusal: the message
	// whose file it was meets the refusal itself, and stops the run).
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startUploader starts the uploader when the run has local files and a
// store, and returns what stops it (and waits for it). A stop of the run
// (soft, or halt) stops it too: uploads are work for messages still to
// start.
func (im *Importer) startUploader(ctx context.Context, soft, halt <-chan struct{}) (stop func()) {
	if im.cfg.Media == nil || stopped(soft) || stopped(halt) {
		return func() {}
	}
	var left int64
	err := im.withDB(ctx, "media", func(ctx context.Context) (err error) {
		left, err = im.q.LocalMediaLeft(ctx, im.cfg.Run)
		return err
	})
	if err != nil || left == 0 {
		return func() {}
	}
	uctx, cancel := context.WithCancel(ctx)
	u := &uploader{im: im, credit: make(chan struct{}, im.cfg.MediaAhead), work: make(chan string), queued: map[string]bool{}, cancel: cancel}
	im.media.up.Store(u)
	u.wg.Go(func() {
		select {
		case <-soft:
		case <-halt:
		case <-uctx.Done():
		}
		cancel()
	})
	u.wg.Go(func() { u.walk(uctx) })
	for range im.cfg.MediaUploads {
		u.wg.Go(func() { u.put(uctx, ctx) })
	}
	return func() {
		cancel()
		u.wg.Wait()
		im.media.up.Store(nil)
	}
}

// consumed gives back the token of a media message whose turn came.
func (u *uploader) consumed() {
	select {
	case <-u.credit:
	default:
	}
}

// walkConv is a conversation of the walk's window and how far it got.
type walkConv struct {
	id        string
	msec, seq int64
}

// walk goes through the run's unsent media messages in send order: a
// window of as many conversations as the process has workers now, in the
// order they are claimed (the largest first), taking uploaderTurn messages
// of each in turn, as the workers send them side by side; a conversation
// done leaves the window for the next. Each message takes a token of
// credit (at most MediaAhead ahead of the sending), and its file goes to
// the putters unless it is recorded already.
func (u *uploader) walk(ctx context.Context) {
	defer close(u.work)
	im := u.im
	var window []*walkConv
	after, exhausted := store.FirstMediaConv, false
	for {
		// As wide as the pool the workers are now (it sizes itself to the
		// rate), so that the walk goes where they go.
		width := int(max(im.stats.workers.Load(), 1))
		if need := width - len(window); need > 0 && !exhausted {
			var convs []store.MediaConv
			err := im.withDB(ctx, "media walk", func(ctx context.Context) (err error) {
				convs, err = im.q.MediaConversations(ctx, im.cfg.Run, after, need)
				return err
			})
			if err != nil {
				u.stopWalk(ctx, err)
				return
			}
			exhausted = len(convs) < need
			for _, c := range convs {
				window = append(window, &walkConv{id: c.ID, msec: -1 << 63, seq: -1 << 63})
				after = c
			}
		}
		if len(window) == 0 {
			im.log.Debug("media uploader: every local file of the run is walked")
			return
		}
		kept := window[:0]
		for _, wc := range window {
			var page []store.MediaItem
			err := im.withDB(ctx, "media walk", func(ctx context.Context) (err error) {
				page, err = im.q.MediaPage(ctx, im.cfg.Run, im.mediaWhere(), wc.id, wc.msec, wc.seq, uploaderTurn)
				return err
			})
			if err != nil {
				u.stopWalk(ctx, err)
				return
			}
			for _, it := range page {
				select {
				case u.credit <- struct{}{}:
				case <-ctx.Done():
					return
				}
				wc.msec, wc.seq = it.Msec, it.Seq
				if it.Recorded || u.queued[it.Path] {
					continue
				}
				if len(u.queued) >= 4096 {
					clear(u.queued) // a sticker repeated later costs a HEAD
				}
				u.queued[it.Path] = true
				select {
				case u.work <- it.Path:
				case <-ctx.Done():
					return
				}
			}
			if len(page) == uploaderTurn {
				kept = append(kept, wc)
			}
		}
		window = kept
	}
}

func (u *uploader) stopWalk(ctx context.Context, err error) {
	if ctx.Err() == nil {
		u.im.log.Warn("media uploader stopped: files are put at their message's turn instead", "err", err)
	}
}

// put puts the files the walk hands it and records each. A file that cannot
// be put is left to its message's turn (which tries again and acts on the
// failure); a store that refuses the run stops the uploader. ctx is the
// uploader's (its stop ends the Puts), runCtx the run's (the records).
func (u *uploader) put(ctx, runCtx context.Context) {
	im := u.im
	for ref := range u.work {
		var obj media.Object
		var err error
		for attempt := 1; ; attempt++ {
			obj, err = im.cfg.Media.Put(ctx, ref)
			var me *media.Error
			if attempt == uploaderAttempts || !errors.As(err, &me) || me.Kind != media.Transient {
				break
			}
			// A store's hiccup (a 503, SlowDown, a reset) is retried here,
			// ahead of the turn, before it is left to the message.
			select {
			case <-ctx.Done():
			case <-time.After(im.att.policy.backoff(attempt)):
			}
		}
		if err == nil {
			// Recorded under the run's context, not the uploader's: the
			// sending may end (and stop the uploader) between a Put that
			// uploaded and its record, which would then say "found" for
			// bytes this run did upload (TestE2EExportsWithMediaArriveAsMedia
			// counted 6 of 7 uploaded so under -race).
			err = im.recordUpload(runCtx, ref, obj, "")
		}
		if err == nil || ctx.Err() != nil {
			continue
		}
		var me *media.Error
		if errors.As(err, &me) && me.Kind == media.Permanent {
			im.log.Warn("media uploader stopped: the store refused a file (the run stops when its message's turn comes)", "err", err)
			u.cancel()
			continue
		}
		im.log.Debug("media uploader: a file is left to its message's turn", "err", err)
	}
}

// MediaStatus is what a run did with the local files its messages name.
type MediaStatus struct {
	Messages    int64 `json:"messages"`      // messages whose media is a local file
	SentAsMedia int64 `json:"sent_as_media"` // of them, sent with their file
	// Placeholders went out as their text placeholder (--media-missing
	// text): the file could not be used when their turn came.
	Placeholders int64 `json:"placeholders"`
	Failed       int64 `json:"failed"` // failed for their file (report says why; retry)
	Files        int64 `json:"files"`  // distinct files the store holds for the run
	Uploaded     int64 `json:"uploaded"`
	// Reused were in the store already (another run, a process killed
	// before it recorded them) or, with --media-base-url, found published.
	Reused int64 `json:"reused"`
	Bytes  int64 `json:"bytes"` // the files' size
}

// mediaStatus reads the run's media counts; nil when its messages name no
// local file.
func mediaStatus(ctx context.Context, q *store.Queries, run string) (*MediaStatus, error) {
	c, err := q.MediaCounts(ctx, run)
	if err != nil || c.Messages == 0 && c.Files == 0 {
		return nil, err
	}
	return &MediaStatus{Messages: c.Messages, SentAsMedia: c.SentAsMedia, Placeholders: c.Placeholders, Failed: c.Failed,
		Files: c.Files, Uploaded: c.Uploaded, Reused: c.Files - c.Uploaded, Bytes: c.Bytes}, nil
}

// MediaPlaceholder is a message that went out as its text placeholder
// because its local file could not be used when its turn came.
type MediaPlaceholder struct {
	MsgID          string `json:"msgid"`
	ConversationID string `json:"conversation_id"`
	Line           int64  `json:"line"`
	Reason         string `json:"reason"`
}

// EachMediaPlaceholder calls fn for each message of run that went out as
// its text placeholder, in source order, streaming (m is reused).
func EachMediaPlaceholder(ctx context.Context, pool *pgxpool.Pool, run string, fn func(m *MediaPlaceholder) error) error {
	q := store.New(pool)
	if err := checkRun(ctx, q, run); err != nil {
		return err
	}
	var m MediaPlaceholder
	err := q.EachMediaPlaceholder(ctx, run, func(r *store.MediaProblemRow) error {
		m = MediaPlaceholder{MsgID: r.MsgID, ConversationID: r.ConversationID, Line: r.Line, Reason: r.Problem}
		return fn(&m)
	})
	if err != nil {
		return fmt.Errorf("media placeholders of %s: %w", run, err)
	}
	return nil
}
