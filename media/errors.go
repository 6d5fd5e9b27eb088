package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Kind says what a caller does with a failed store or URL call.
type Kind int

const (
	// Transient: the network or the server failed (connection refused or
	// reset, timeout, 5xx, 429, SlowDown): retry with backoff.
	Transient Kind = iota + 1
	// Permanent: the store refuses us for reasons no retry mends (access
	// denied, bad credentials, no such bucket, wrong region, not an S3 API):
	// stop the run, naming the store.
	Permanent
	// Unpublished: with --media-base-url, this file's URL does not serve it
	// (404, another size, a refusal): fail this message, retryable once the
	// operator has published the file.
	Unpublished
)

func (k Kind) String() string {
	switch k {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Unpublished:
		return "unpublished"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a failed call to the store or to a file's URL.
type Error struct {
	Kind  Kind
	Op    string // "put", "head", "presign", "probe write", "probe download", "check url", ...
	Where string // the store (s3://bucket/prefix at its endpoint) or the URL; never a credential
	// Key is the object key, or the file's path relative to the export root
	// with --media-base-url; "" where there is none.
	Key string
	// Status is the HTTP status, 0 without a response.
	Status int
	// Code is the S3 error code (AccessDenied, NoSuchBucket,
	// InvalidAccessKeyId, SignatureDoesNotMatch, ...), "" without one.
	Code string
	Err  error

	noAnswer bool // the request got no response at all
}

// Error reads "media store s3://media/chats (http://127.0.0.1:8333): put
// sha256/ab../a.jpg: 403 InvalidAccessKeyId: ...".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Where)
	b.WriteString(": ")
	b.WriteString(e.Op)
	if e.Key != "" {
		b.WriteString(" ")
		b.WriteString(e.Key)
	}
	b.WriteString(": ")
	if e.Status != 0 {
		b.WriteString(strconv.Itoa(e.Status))
		b.WriteString(" ")
	}
	if e.Code != "" {
		b.WriteString(e.Code)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	if h := e.hint(); h != "" {
		b.WriteString(" (")
		b.WriteString(h)
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the same call may succeed later without the
// operator changing anything: Transient errors.
func (e *Error) Retryable() bool { return e.Kind == Transient }

// NoAnswer reports an error without any answer from the store or URL
// (nothing listening, a timeout, DNS): a preflight maps it to "interrupted,
// try again" (exit 4) where a refusal is the operator's to fix (exit 5).
func (e *Error) NoAnswer() bool { return e.noAnswer }

// hint names what to change for the common permanent errors.
func (e *Error) hint() string {
	switch e.Code {
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired":
		return "check the credentials: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or --media-profile"
	case "NoSuchBucket":
		return "the bucket does not exist at this endpoint: check the bucket in --media-store and --media-endpoint"
	case "AccessDenied", "AllAccessDisabled":
		return "the credentials may not do this: the policy needs s3:PutObject and s3:GetObject on the prefix"
	case "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException":
		return "the bucket is in another region: set --media-region or AWS_REGION"
	case "NoCredentials":
		return "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared credentials file"
	}
	return ""
}

// ErrNoCredentials is in the chain of an Error when no credentials were
// found (environment, shared files, profile, instance role).
var ErrNoCredentials = errors.New("no credentials found")

// ErrSizeMismatch is in the chain of an Unpublished Error when a file's URL
// serves another size than the file has (or an object holds another size
// than its content address promises).
var ErrSizeMismatch = errors.New("size mismatch")

// classify wraps an error of the S3 client or of a plain HTTP call into an
// *Error of the right Kind. A context error stays as it is: the caller
// cancelled or its deadline passed, which is no fault of the store.
func classify(err error, op, where, key string) error {
	if err == nil {
		return nil
	}
	var me *Error
	if errors.As(err, &me) {
		return me
	}
	e := &Error{Kind: Transient, Op: op, Where: where, Key: key, Err: err}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		e.Status = re.Response.StatusCode
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		e.Code = ae.ErrorCode()
		e.Err = errors.New(firstNonEmpty(ae.ErrorMessage(), ae.ErrorCode()))
		// Without an S3 error body the SDK makes a code of the status text
		// ("NotFound"): that is no S3 speaking.
		if e.Code == strings.ReplaceAll(http.StatusText(e.Status), " ", "") {
			e.Code = ""
		}
	}
	var ce *credentialsError
	if errors.As(err, &ce) {
		e.Kind, e.Code, e.Err = Permanent, "NoCredentials", fmt.Errorf("%w: %v", ErrNoCredentials, err)
		return e
	}
	if e.Status == 0 && e.Code == "" {
		if errors.Is(err, context.Canceled) {
			return err
		}
		// No answer: say what the network said, not the SDK's wrapping
		// ("operation error S3: PutObject, exceeded maximum number of
		// attempts, 1, https response error StatusCode: 0, ...").
		e.noAnswer = true
		var oe *net.OpError
		if errors.As(err, &oe) {
			e.Err = oe
		} else if errors.Is(err, context.DeadlineExceeded) {
			e.Err = context.DeadlineExceeded
		}
	}
	e.Kind = kindOf(e.Status, e.Code)
	if e.Status != 0 && e.Code == "" && e.Kind == Permanent {
		e.Err = errors.New(http.StatusText(e.Status) + " with no S3 error: is this an S3 API? (check --media-endpoint)")
	}
	return e
}

// kindOf decides a store call's Kind from its status, S3 code and error.
func kindOf(status int, code string) Kind {
	switch code {
	case "SlowDown", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable",
		"OperationAborted", "Throttling", "ThrottlingException", "RequestThrottled",
		// The body did not match the hash it was signed with: the file
		// changed between hashing and upload; the next Put hashes it anew.
		"XAmzContentSHA256Mismatch", "BadDigest":
		return Transient
	case "":
	default:
		if status >= 500 {
			return Transient
		}
		return Permanent
	}
	switch {
	case status == 0:
		return Transient // no answer: refused, reset, timed out, DNS
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return Transient
	}
	return Permanent
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// FileError is a local file that cannot be put anywhere: missing,
// unreadable, not a regular file, empty, larger than Config.MaxSize, or
// outside the export root (--media-base-url). The caller turns it into the
// --media-missing placeholder or a rejected record; no retry mends it.
type FileError struct {
	Path   string
	Reason error // one of the Err* file reasons below
	Err    error // the underlying error, if any
}

// File reasons, for errors.Is on a *FileError.
var (
	ErrMissing    = errors.New("missing")
	ErrUnreadable = errors.New("unreadable")
	ErrNotRegular = errors.New("not a regular file")
	ErrEmpty      = errors.New("empty")
	ErrTooLarge   = errors.New("too large")
	ErrOutside    = errors.New("outside the export folder")
)

func (e *FileError) Error() string {
	s := "media file " + e.Path + ": " + e.Reason.Error()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap gives both the reason (errors.Is(err, ErrMissing)) and the cause.
func (e *FileError) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}
