package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/importer"
	"github.com/kommo-import/kommo-import/media"
	"github.com/kommo-import/kommo-import/sources"
)

// mediaFlags say where local media files go so that Kommo can fetch them:
// an S3-compatible store or the operator's web server. They are run's and
// retry's (registered with the send flags), one to one with media.Config;
// credentials stay where the AWS tools read them (the AWS_* environment,
// the shared config and credentials files), never in a flag.
type mediaFlags struct {
	store, endpoint, addressing, region, profile, publicBase, baseURL string
	ttl                                                               time.Duration
	uploads                                                           int
	// maxSize is retry's --media-max-size; run's is the source flag
	// (sources.Spec.MediaMaxSize), which the same name registers first.
	maxSize int64
}

func (m *mediaFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&m.store, "media-store", "", "put local media files (an export's photos, voice notes, videos, files, stickers) in this S3-compatible store,\n"+
		"`s3://BUCKET/PREFIX`, and send presigned URLs: AWS S3, R2, MinIO, SeaweedFS, Ceph (--media-endpoint);\n"+
		"credentials as the AWS tools find them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws). Without it\n"+
		"or --media-base-url, local files go out as text naming them")
	fs.StringVar(&m.endpoint, "media-endpoint", "", "the S3 API's `URL` for a store that is not AWS (http://127.0.0.1:9000); default: AWS, or AWS_ENDPOINT_URL_S3")
	fs.StringVar(&m.addressing, "media-addressing", "", "`STYLE` of bucket addressing: path (https://endpoint/bucket/key; the default with --media-endpoint)\n"+
		"or virtual (https://bucket.endpoint/key; the default on AWS)")
	fs.StringVar(&m.region, "media-region", "", "the store's `REGION` (signs the requests); default: AWS_REGION or the profile's, else us-east-1")
	fs.StringVar(&m.profile, "media-profile", "", "the `PROFILE` of ~/.aws/config and ~/.aws/credentials to use; default: AWS_PROFILE, else default")
	fs.StringVar(&m.publicBase, "media-public-base", "", "send plain `URL`/KEY links instead of presigned ones, for a bucket or CDN you made public at URL")
	fs.StringVar(&m.baseURL, "media-base-url", "", "upload nothing: your web server publishes the export's folder at `URL`, and a file goes out as\n"+
		"URL/<its path under the folder>, once a HEAD of that URL answers 200 with the file's size (instead of --media-store;\n"+
		"https, or plain http to this machine unless --insecure-allow-plain-http)")
	durationVar(fs, &m.ttl, "media-url-ttl", media.DefaultURLTTL, time.Minute, media.MaxURLTTL, false,
		"how long (`DURATION`) a presigned URL stays valid from the moment its message is sent (S3 allows at most 7 days)")
	intVar(fs, &m.uploads, "media-uploads", media.DefaultConcurrency, 1, 256, "`N` uploads at once, ahead of the sending (they never hold a rate slot)")
	if fs.Lookup("media-max-size") == nil {
		fs.Func("media-max-size", "largest local media `SIZE` put (e.g. 10MB; MB = 1024*1024 bytes; default 50MB): a larger file's message fails", func(v string) error {
			n, err := media.ParseSize(v)
			if err != nil {
				return err
			}
			m.maxSize = n
			return nil
		})
	}
}

// enabled reports whether local files are to be hosted.
func (m *mediaFlags) enabled() bool { return m.store != "" || m.baseURL != "" }

// config is the media.Config of the flags; root is the export's folder
// (--media-base-url maps files under it).
func (m *mediaFlags) config(root string, maxSize int64, allowPlainHTTP bool, log *slog.Logger) media.Config {
	return media.Config{
		Store: m.store, Endpoint: m.endpoint, Addressing: m.addressing, Region: m.region, Profile: m.profile,
		PublicBase: m.publicBase, BaseURL: m.baseURL, Root: root,
		URLTTL: m.ttl, MaxSize: maxSize, Concurrency: m.uploads,
		AllowPlainHTTP: allowPlainHTTP, Logger: log,
	}
}

// check refuses media flags that cannot work, before anything is opened.
// kind and path are the run's source.
func (m *mediaFlags) check(kind, path string, allowPlainHTTP bool) error {
	if !m.enabled() {
		for name, v := range map[string]string{"media-endpoint": m.endpoint, "media-addressing": m.addressing, "media-region": m.region,
			"media-profile": m.profile, "media-public-base": m.publicBase} {
			if v != "" {
				return withHint(ExitUsage, fmt.Errorf("--%s is a setting of --media-store, which is not given", name),
					"give --media-store s3://BUCKET/PREFIX too, or leave --"+name+" out")
			}
		}
		return nil
	}
	if m.baseURL != "" && kind == sources.KindWhatsApp && strings.EqualFold(filepath.Ext(path), ".zip") {
		return withHint(ExitUsage, fmt.Errorf("--media-base-url cannot serve the media inside %s: a web server publishes files, not a zip's entries", path),
			"unzip the export, publish its folder and give that folder as the source; or give --media-store, which reads the zip in place")
	}
	root, _ := mediaRoot(kind, path)
	if err := m.config(root, 0, allowPlainHTTP, nil).Check(); err != nil {
		return usageError(err)
	}
	return nil
}

// mediaRoot is the folder of a source that --media-base-url publishes: a
// folder export itself, the folder of a file (a CSV, a JSONL, Telegram's
// result.json, a WhatsApp .txt); "" for a source without one.
func mediaRoot(kind, path string) (string, error) {
	if path == "" || path == "-" || kind == sources.KindPostgres {
		return "", nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.IsDir() {
		return path, nil
	}
	return filepath.Dir(path), nil
}

// openMedia opens the store of the flags into cfg (no request yet: the
// importer's preflight probes it before anything is written). kind and
// path are the run's source; missingText is --media-missing text.
func (m *mediaFlags) openMedia(ctx context.Context, cfg *importer.Config, kind, path string, maxSize int64, missingText, allowPlainHTTP bool, log *slog.Logger) error {
	if !m.enabled() {
		return nil
	}
	if maxSize == 0 {
		maxSize = m.maxSize
	}
	root, err := mediaRoot(kind, path)
	if err != nil && m.baseURL != "" {
		return usageError(fmt.Errorf("--media-base-url: the export's folder: %w", err))
	}
	st, err := media.Open(ctx, m.config(root, maxSize, allowPlainHTTP, log))
	if err != nil {
		var me *media.Error
		if errors.As(err, &me) {
			// A profile that does not exist, a config file that does not parse.
			return withHint(ExitUsage, err, "check --media-profile (or AWS_PROFILE) and the files AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE name (~/.aws/config, ~/.aws/credentials)")
		}
		return usageError(err)
	}
	cfg.Media, cfg.MediaWeb, cfg.MediaUploads, cfg.MediaMissingText = st, m.baseURL != "", m.uploads, missingText
	return nil
}

// sourceKindPath splits a run's source label (kind:path, maybe with a
// subset's description) into its kind and path.
func sourceKindPath(label string) (kind, path string) {
	kind, _, _ = strings.Cut(label, ":")
	return kind, sourceName(label)
}

// mediaOutcome puts a media error in words: the exit code, the message and
// what to try.
func mediaOutcome(e *importer.MediaError, inv invocationFacts) outcome {
	o := outcome{code: ExitOperator, msg: oneLine(e.Error(), 0)}
	web := strings.HasPrefix(e.Where, "media URL") || strings.HasPrefix(e.Where, "media base URL")
	var me *media.Error
	errors.As(e.Err, &me)
	switch {
	case e.Attempts > 0:
		o.code = ExitInterrupted
		o.hints = []string{"the store at " + e.Where + " kept failing (see above); wait for it to recover, or raise --max-attempts to be more patient"}
	case !e.Refused():
		o.code = ExitInterrupted
		if web {
			o.hints = []string{"nothing answered at --media-base-url: check the URL, that the web server runs and the network"}
		} else {
			o.hints = []string{"nothing answered at the store: check --media-endpoint (or AWS_ENDPOINT_URL_S3), the network and the proxy"}
		}
	case web:
		o.hints = []string{"check --media-base-url: the web server must publish the export's folder, so that a HEAD of URL/<path under the folder> answers 200 with the file's size"}
	default:
		o.hints = []string{"check --media-store, --media-endpoint and --media-region, and the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --media-profile): " +
			"the bucket must exist, the policy allow s3:PutObject and s3:GetObject on the prefix, and presigned GETs be allowed (or --media-public-base be public)"}
	}
	if e.Preflight {
		o.hints[0] += "; nothing was sent"
	}
	o.hints = append(o.hints, inv.resumeHints("then resume with: ")...)
	return o
}

// mediaLines says what became of a run's local media files: nil when its
// messages name none.
func mediaLines(st *importer.MediaStatus, now *importer.MediaNow) []string {
	if st == nil {
		return nil
	}
	l := []string{fmt.Sprintf("%s with a local file: %s sent as media, %s as text (the file could not be used), %s failed for it",
		nouns(st.Messages, "message", "messages"), count(st.SentAsMedia), count(st.Placeholders), count(st.Failed))}
	if st.Files > 0 {
		l = append(l, fmt.Sprintf("%s hosted (%s): %s uploaded by the run, %s found there already", nouns(st.Files, "file", "files"), media.FormatSize(st.Bytes), count(st.Uploaded), count(st.Reused)))
	}
	if now != nil && now.AtTurn > 0 {
		l = append(l, fmt.Sprintf("%s taken at their message's turn: the uploader had not come to them", nouns(now.AtTurn, "file", "files")))
	}
	return l
}
