package media

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
)

// s3Store is the --media-store backend.
type s3Store struct {
	cfg     Config
	bucket  string
	prefix  string // "" or "a/b", no slashes at the ends
	where   string // for errors: s3://bucket/prefix and the endpoint
	client  *s3.Client
	presign *s3.PresignClient
	public  *url.URL // PublicBase, parsed; nil: presign
	http    *http.Client
}

func openS3(ctx context.Context, c Config, hc *http.Client) (*s3Store, error) {
	bucket, prefix, err := ParseStore(c.Store)
	if err != nil {
		return nil, err
	}
	where := "media store " + c.Store
	if c.Endpoint != "" {
		where += " at " + c.Endpoint
	}
	opts := []func(*config.LoadOptions) error{
		// The caller retries Transient errors with its own backoff (and
		// counts them); the SDK's retries would hide them and stretch a
		// preflight that must fail in seconds.
		config.WithRetryMaxAttempts(1),
		// Put sends the SHA-256 it computed itself (the content address):
		// no CRC on top, which some S3-compatible servers refuse.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if c.HTTPClient == nil {
		// The SDK's own client, so that AWS_CA_BUNDLE (a private CA) works,
		// with the same bounds as the plain one (defaultHTTPClient).
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().
			WithDialerOptions(func(d *net.Dialer) { d.Timeout = 10 * time.Second }).
			WithTransportOptions(func(tr *http.Transport) {
				tr.TLSHandshakeTimeout = 10 * time.Second
				tr.ResponseHeaderTimeout = 60 * time.Second
				tr.MaxIdleConnsPerHost = max(c.Concurrency, 2)
			})))
	}
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(c.Profile))
	}
	if len(c.SharedConfigFiles) > 0 {
		opts = append(opts, config.WithSharedConfigFiles(c.SharedConfigFiles))
	}
	if len(c.SharedCredentialsFiles) > 0 {
		opts = append(opts, config.WithSharedCredentialsFiles(c.SharedCredentialsFiles))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// A profile that does not exist, a malformed config file: the
		// operator's to fix.
		return nil, &Error{Kind: Permanent, Op: "load AWS configuration", Where: where, Err: err}
	}
	if awsCfg.Region == "" {
		awsCfg.Region = DefaultRegion
	}
	if awsCfg.Credentials != nil {
		awsCfg.Credentials = markedCredentials{awsCfg.Credentials}
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if c.HTTPClient != nil {
			o.HTTPClient = c.HTTPClient
		}
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(strings.TrimRight(c.Endpoint, "/"))
		}
		switch c.Addressing {
		case AddressPath:
			o.UsePathStyle = true
		case AddressVirtual:
			o.UsePathStyle = false
		default:
			o.UsePathStyle = c.Endpoint != ""
		}
	})
	st := &s3Store{cfg: c, bucket: bucket, prefix: prefix, where: where, client: client, http: hc}
	st.presign = s3.NewPresignClient(client, func(o *s3.PresignOptions) {
		o.Expires = c.URLTTL
		// The SDK's own S3 signer, dated by Config.Now (a test makes a URL
		// that has expired).
		o.Presigner = clockPresigner{v4.NewSigner(func(so *v4.SignerOptions) { so.DisableURIPathEscaping = true }), c.Now}
	})
	if c.PublicBase != "" {
		st.public, _ = url.Parse(strings.TrimRight(c.PublicBase, "/"))
	}
	return st, nil
}

// key is the object key of a file of this content and name.
func (s *s3Store) key(sum, name string) string {
	k := "sha256/" + sum + "/" + name
	if s.prefix != "" {
		k = s.prefix + "/" + k
	}
	return k
}

func (s *s3Store) put(ctx context.Context, ref string) (Object, error) {
	lf, err := openLocal(ref, s.cfg.MaxSize)
	if err != nil {
		return Object{}, err
	}
	defer lf.Close()
	sum, err := lf.hash()
	if err != nil {
		return Object{}, err
	}
	obj := Object{Key: s.key(sum, lf.name), Size: lf.size, SHA256: sum}
	found, err := s.head(ctx, obj)
	if err != nil || found {
		return obj, err
	}
	body, closeBody, err := lf.body()
	if err != nil {
		return obj, err
	}
	defer closeBody()
	in := &s3.PutObjectInput{
		Bucket:         aws.String(s.bucket),
		Key:            aws.String(obj.Key),
		Body:           body,
		ContentLength:  aws.Int64(lf.size),
		ChecksumSHA256: aws.String(base64SHA(sum)),
		// Nothing is overwritten: a second process that stored the same
		// content a moment ago makes this a 412, which is success.
		IfNoneMatch: aws.String("*"),
	}
	if ct := mime.TypeByExtension(strings.ToLower(filepath.Ext(lf.name))); ct != "" {
		in.ContentType = aws.String(ct)
	}
	_, err = s.client.PutObject(ctx, in, s3.WithAPIOptions(payloadHash(sum)))
	if err != nil {
		if statusOf(err) == http.StatusPreconditionFailed {
			if _, err := s.head(ctx, obj); err != nil {
				return obj, err
			}
			return obj, nil
		}
		return obj, classify(err, "put", s.where, obj.Key)
	}
	obj.Uploaded = true
	return obj, nil
}

// head reports whether the object is there with the size its content
// address promises. Another size under the same key is never overwritten:
// it is a Permanent error naming the key.
func (s *s3Store) head(ctx context.Context, obj Object) (bool, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(obj.Key)})
	if err != nil {
		if statusOf(err) == http.StatusNotFound && codeOf(err) != "NoSuchBucket" {
			return false, nil
		}
		return false, classify(err, "head", s.where, obj.Key)
	}
	if got := aws.ToInt64(out.ContentLength); got != obj.Size {
		return false, &Error{Kind: Permanent, Op: "head", Where: s.where, Key: obj.Key,
			Err: fmt.Errorf("%w: the object holds %d bytes, its content address says %d; it is left as it is (delete it to store the file again)", ErrSizeMismatch, got, obj.Size)}
	}
	return true, nil
}

func (s *s3Store) url(ctx context.Context, obj Object) (string, error) {
	if s.public != nil {
		return joinURL(s.public, obj.Key), nil
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(obj.Key)})
	if err != nil {
		return "", classify(err, "presign", s.where, obj.Key)
	}
	return req.URL, nil
}

// probe writes, presigns (or maps to PublicBase), downloads without
// credentials and deletes a small object.
func (s *s3Store) probe(ctx context.Context) error {
	if _, err := s.client.Options().Credentials.Retrieve(ctx); err != nil {
		return classify(err, "probe: credentials", s.where, "")
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	body := []byte("kommo-import media probe " + hex.EncodeToString(nonce[:]) + "\n")
	sum := sha256.Sum256(body)
	obj := Object{Key: ".kommo-import-probe/" + hex.EncodeToString(nonce[:]) + ".txt", Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:])}
	if s.prefix != "" {
		obj.Key = s.prefix + "/" + obj.Key
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(obj.Key), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(obj.Size), ContentType: aws.String("text/plain"),
		ChecksumSHA256: aws.String(base64SHA(obj.SHA256)),
	}, s3.WithAPIOptions(payloadHash(obj.SHA256)))
	if err != nil {
		return permanent(classify(err, "probe: write", s.where, obj.Key))
	}
	defer func() {
		// Deleting is not needed by a run (a policy without s3:DeleteObject
		// is a good one): a probe object left behind is only logged.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := s.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(obj.Key)}); err != nil {
			s.cfg.Logger.Warn("media probe: could not delete the probe object; delete it at leisure",
				"store", s.cfg.Store, "key", obj.Key, "err", classify(err, "delete", s.where, obj.Key))
		}
	}()
	u, err := s.url(ctx, obj)
	if err != nil {
		return permanent(err)
	}
	where := s.where
	if s.public != nil {
		where = "media public base " + s.cfg.PublicBase
	}
	if err := fetchCheck(ctx, s.http, u, body, where); err != nil {
		return err
	}
	return nil
}

// fetchCheck downloads u as Kommo would (no credentials) and compares it
// with want. Any failure is Permanent: the preflight stops the run.
func fetchCheck(ctx context.Context, hc *http.Client, u string, want []byte, where string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return &Error{Kind: Permanent, Op: "probe: download", Where: where, Err: err}
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &Error{Kind: Permanent, Op: "probe: download", Where: where, Err: redactURLError(err), noAnswer: true}
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, int64(len(want))+4096))
	if resp.StatusCode != http.StatusOK {
		return &Error{Kind: Permanent, Op: "probe: download", Where: where, Status: resp.StatusCode,
			Err: fmt.Errorf("the probe object's URL answers %s, so Kommo could not fetch media either (%s)", resp.Status, probeHint(resp.StatusCode, where))}
	}
	if err != nil {
		return &Error{Kind: Permanent, Op: "probe: download", Where: where, Err: err}
	}
	if !bytes.Equal(got, want) {
		return &Error{Kind: Permanent, Op: "probe: download", Where: where, Err: fmt.Errorf("the probe object's URL serves %d other bytes than were written", len(got))}
	}
	return nil
}

func probeHint(status int, where string) string {
	public := strings.HasPrefix(where, "media public base")
	switch {
	case public && (status == http.StatusForbidden || status == http.StatusUnauthorized):
		return "the bucket or CDN behind --media-public-base is not public"
	case public && status == http.StatusNotFound:
		return "--media-public-base does not map to the bucket and prefix of --media-store"
	case status == http.StatusForbidden:
		return "the bucket policy refuses presigned GETs, or this machine's clock is off"
	}
	return "check the store"
}

// redactURLError drops the URL from a *url.Error: a presigned URL's query
// is a credential for its lifetime and must not reach a log.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// permanent turns a preflight's *Error into a Permanent one: the preflight
// does not retry, nor fail a message, it tells the operator.
func permanent(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Kind != Permanent {
		c := *e
		c.Kind = Permanent
		return &c
	}
	return err
}

// joinURL appends an object key to a base URL, escaping each segment.
func joinURL(base *url.URL, key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return strings.TrimRight(base.String(), "/") + "/" + strings.Join(segs, "/")
}

func base64SHA(hexSum string) string {
	b, _ := hex.DecodeString(hexSum)
	return base64.StdEncoding.EncodeToString(b)
}

// payloadHash signs a PutObject with the SHA-256 Put computed already, so
// the SDK does not read the body a second time to hash it; the server
// checks the body against it (x-amz-content-sha256), so a file that
// changed between hashing and upload is refused, not stored under a wrong
// address.
func payloadHash(hexSum string) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("KommoImportPayloadHash",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				return next.HandleFinalize(v4.SetPayloadHash(ctx, hexSum), in)
			}), (*v4.ComputePayloadSHA256)(nil).ID(), middleware.Before)
	}
}

// clockPresigner dates presigned URLs by Config.Now.
type clockPresigner struct {
	signer *v4.Signer
	now    func() time.Time
}

func (p clockPresigner) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string,
	_ time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	return p.signer.PresignHTTP(ctx, creds, r, payloadHash, service, region, p.now(), optFns...)
}

// markedCredentials marks a failure to find credentials, which the SDK
// reports only in words, so classify can tell it from a network error.
type markedCredentials struct{ aws.CredentialsProvider }

type credentialsError struct{ err error }

func (e *credentialsError) Error() string { return e.err.Error() }
func (e *credentialsError) Unwrap() error { return e.err }

func (m markedCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := m.CredentialsProvider.Retrieve(ctx)
	if err != nil {
		return c, &credentialsError{err}
	}
	return c, nil
}

func statusOf(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func codeOf(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
