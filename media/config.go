package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kommo-import/kommo-import/internal/baseurl"
)

// Defaults for the zero values of Config.
const (
	// DefaultURLTTL is how long a presigned URL stays valid: Kommo fetches
	// the file soon after the message arrives, but a queue on its side or a
	// retry of ours may take hours.
	DefaultURLTTL = 24 * time.Hour
	// MaxURLTTL is S3's limit for a presigned URL (SigV4: 7 days).
	MaxURLTTL = 7 * 24 * time.Hour
	// DefaultMaxSize is the largest file put (50 MiB). Channels may take
	// less: WhatsApp, for one, about 16 MB of media and 100 MB of documents.
	DefaultMaxSize = 50 << 20
	// DefaultConcurrency is how many Puts run at once; see the README's
	// measurements (on two cores more only adds contention).
	DefaultConcurrency = 4
	// DefaultProbeTimeout bounds the whole preflight.
	DefaultProbeTimeout = 15 * time.Second
	// DefaultRegion is the SigV4 region when neither Config.Region nor the
	// AWS configuration names one: S3-compatible servers accept it.
	DefaultRegion = "us-east-1"
)

// Addressing styles of Config.Addressing.
const (
	AddressAuto    = ""        // path-style with Config.Endpoint, virtual-hosted on AWS
	AddressPath    = "path"    // https://endpoint/bucket/key
	AddressVirtual = "virtual" // https://bucket.endpoint/key
)

// Config says where local files go. Exactly one of Store and BaseURL is set.
type Config struct {
	// Store is s3://BUCKET or s3://BUCKET/PREFIX (--media-store).
	Store string
	// Endpoint is the S3 API's base URL for a store that is not AWS
	// (--media-endpoint: MinIO, SeaweedFS, Ceph, R2, ...). "" is AWS (or
	// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, as the SDK reads them).
	Endpoint string
	// Addressing is AddressAuto, AddressPath or AddressVirtual (--media-addressing).
	Addressing string
	// Region signs the requests (--media-region); "" takes AWS_REGION or the
	// profile's region, else DefaultRegion.
	Region string
	// Profile is the shared-config profile (--media-profile); "" takes
	// AWS_PROFILE, else "default".
	Profile string
	// SharedConfigFiles and SharedCredentialsFiles replace the default
	// ~/.aws/config and ~/.aws/credentials (and AWS_CONFIG_FILE,
	// AWS_SHARED_CREDENTIALS_FILE) when set.
	SharedConfigFiles, SharedCredentialsFiles []string
	// PublicBase, with Store, sends plain URLs PublicBase/KEY instead of
	// presigned ones, for a bucket or CDN the operator made public
	// (--media-public-base).
	PublicBase string

	// BaseURL is the operator's web server publishing the export folder
	// (--media-base-url): a file maps to BaseURL/<path relative to Root>.
	BaseURL string
	// Root is the export's folder: a file's URL under BaseURL is its path
	// relative to Root, and a file outside Root is refused. Required with
	// BaseURL.
	Root string

	// URLTTL is how long a presigned URL is valid (--media-url-ttl); 0 means
	// DefaultURLTTL, at most MaxURLTTL.
	URLTTL time.Duration
	// MaxSize is the largest file put (--media-max-size); 0 means DefaultMaxSize.
	MaxSize int64
	// Concurrency bounds the Puts running at once (--media-uploads); 0 means
	// DefaultConcurrency.
	Concurrency int
	// ProbeTimeout bounds Probe; 0 means DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// AllowPlainHTTP lets BaseURL and PublicBase be plain http to a host that
	// is not this machine (--insecure-allow-plain-http). Endpoint may always
	// be http: presigned requests carry no secret, and local servers rarely
	// have TLS.
	AllowPlainHTTP bool
	// HTTPClient makes every request (store and URL checks); nil means one
	// with sane dial and header timeouts.
	HTTPClient *http.Client
	// Logger gets a warning when the probe object cannot be deleted; nil discards.
	Logger *slog.Logger
	// Now is the clock presigned URLs are dated by; nil means time.Now.
	Now func() time.Time
}

// Enabled reports whether local files are to be hosted at all.
func (c Config) Enabled() bool { return c.Store != "" || c.BaseURL != "" }

// withDefaults returns c with its zero values filled and checks it.
func (c Config) withDefaults() (Config, error) {
	if c.URLTTL == 0 {
		c.URLTTL = DefaultURLTTL
	}
	if c.MaxSize == 0 {
		c.MaxSize = DefaultMaxSize
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ProbeTimeout == 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, c.Check()
}

// Check reports a configuration that cannot work, naming the flag.
func (c Config) Check() error {
	switch {
	case c.Store != "" && c.BaseURL != "":
		return errors.New("--media-store and --media-base-url: give one, not both")
	case c.Store == "" && c.BaseURL == "":
		return errors.New("media: neither --media-store nor --media-base-url is given")
	case c.URLTTL < 0 || c.URLTTL > MaxURLTTL:
		return fmt.Errorf("--media-url-ttl %s: want more than 0 and at most %s (S3's limit for a presigned URL)", c.URLTTL, "168h (7 days)")
	case c.URLTTL > 0 && c.URLTTL < time.Minute:
		return fmt.Errorf("--media-url-ttl %s: want at least 1m (Kommo fetches the file after the message arrives)", c.URLTTL)
	case c.MaxSize < 0:
		return fmt.Errorf("--media-max-size %d: want more than 0", c.MaxSize)
	case c.Concurrency < 0 || c.Concurrency > 256:
		return fmt.Errorf("--media-uploads %d: want 1 to 256", c.Concurrency)
	}
	switch c.Addressing {
	case AddressAuto, AddressPath, AddressVirtual:
	default:
		return fmt.Errorf("--media-addressing %q: want path or virtual", c.Addressing)
	}
	if c.BaseURL != "" {
		if c.Endpoint != "" || c.PublicBase != "" || c.Region != "" || c.Profile != "" {
			return errors.New("--media-endpoint, --media-public-base, --media-region and --media-profile go with --media-store, not --media-base-url")
		}
		if c.Root == "" {
			return errors.New("--media-base-url: the export's folder is not known (a file source is needed, not stdin or postgres)")
		}
		if _, err := c.checkURL("--media-base-url", c.BaseURL); err != nil {
			return err
		}
		return nil
	}
	if _, _, err := ParseStore(c.Store); err != nil {
		return err
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("--media-endpoint %q: want http(s)://host[:port]", c.Endpoint)
		}
		if u.User != nil {
			return errors.New("--media-endpoint: credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile")
		}
	}
	if c.PublicBase != "" {
		if _, err := c.checkURL("--media-public-base", c.PublicBase); err != nil {
			return err
		}
	}
	return nil
}

// checkURL applies the project's base-URL rule (https; plain http only to
// this machine unless AllowPlainHTTP) to a URL Kommo will fetch from.
func (c Config) checkURL(flag, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s %q: want http(s)://host/path", flag, raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s: want a plain base URL, without credentials, query or fragment", flag)
	}
	// Nothing secret travels to these URLs, but the customers' files do, and
	// the project keeps one rule for what may be plain http.
	if u.Scheme == "http" && !c.AllowPlainHTTP && !baseurl.IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%s %q: plain http to a host that is not this machine (the customers' files would travel unencrypted; use https, or --insecure-allow-plain-http)", flag, raw)
	}
	return u, nil
}

// ParseStore splits s3://BUCKET/PREFIX into the bucket and the prefix (no
// leading or trailing slash; "" for none).
func ParseStore(s string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return "", "", fmt.Errorf("--media-store %q: want s3://BUCKET/PREFIX", s)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if !validBucket(bucket) {
		return "", "", fmt.Errorf("--media-store %q: %q is not a bucket name (3 to 63 lower-case letters, digits, dots and hyphens)", s, bucket)
	}
	if strings.Contains(prefix, "//") || strings.ContainsAny(prefix, "?#\\") {
		return "", "", fmt.Errorf("--media-store %q: the prefix holds an empty segment, ?, # or a backslash", s)
	}
	return bucket, prefix, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}
