// Package s3test gives tests a real S3-compatible server and a bucket of
// their own on it, as internal/pgtest gives them a database.
//
// The server comes from the environment that scripts/with-s3.sh (and so
// `make test`) exports: TEST_S3_ENDPOINT, TEST_S3_REGION, TEST_S3_ACCESS_KEY,
// TEST_S3_SECRET_KEY, TEST_S3_READONLY_ACCESS_KEY, TEST_S3_READONLY_SECRET_KEY.
// Without it the test fails, never skips. Every bucket is named kt-..., made
// for one test and emptied and removed when it ends.
package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
)

// Server is the test S3 server.
type Server struct {
	Endpoint, Region                     string
	AccessKey, SecretKey                 string // may do anything
	ReadOnlyAccessKey, ReadOnlySecretKey string // may read and list only
}

// Get returns the server from the environment, failing the test when there
// is none.
func Get(t testing.TB) Server {
	t.Helper()
	s := Server{
		Endpoint:          os.Getenv("TEST_S3_ENDPOINT"),
		Region:            os.Getenv("TEST_S3_REGION"),
		AccessKey:         os.Getenv("TEST_S3_ACCESS_KEY"),
		SecretKey:         os.Getenv("TEST_S3_SECRET_KEY"),
		ReadOnlyAccessKey: os.Getenv("TEST_S3_READONLY_ACCESS_KEY"),
		ReadOnlySecretKey: os.Getenv("TEST_S3_READONLY_SECRET_KEY"),
	}
	if s.Endpoint == "" || s.AccessKey == "" || s.SecretKey == "" {
		t.Fatal("no test S3 server: TEST_S3_ENDPOINT, TEST_S3_ACCESS_KEY and TEST_S3_SECRET_KEY are not set. " +
			"Run the tests with `make test`, or through scripts/with-s3.sh (which starts SeaweedFS), e.g. " +
			"scripts/with-s3.sh go test ./media/")
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	return s
}

// Client is an S3 client with the server's full credentials.
func (s Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

var unsafe = regexp.MustCompile(`[^a-z0-9]+`)

// Bucket makes an empty bucket for this test and removes it, with whatever
// it holds, when the test ends.
func (s Server) Bucket(t testing.TB) string {
	t.Helper()
	var nonce [4]byte
	rand.Read(nonce[:])
	mid := strings.Trim(unsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(mid) > 40 {
		mid = mid[:40]
	}
	name := strings.Trim("kt-"+mid, "-") + "-" + hex.EncodeToString(nonce[:])
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	require.NoError(t, err, "create bucket %s on %s", name, s.Endpoint)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, k := range s.Keys(t, name) {
			c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(name), Key: aws.String(k)})
		}
		c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)})
	})
	return name
}

// Keys lists every key in bucket, sorted.
func (s Server) Keys(t testing.TB, bucket string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// Profile writes a shared credentials file and an empty shared config file
// holding one profile with the given keys, and returns their paths: a test
// points the AWS configuration at them and sees neither the machine's ~/.aws
// nor another test's keys.
func Profile(t testing.TB, profile, accessKey, secretKey string) (configFile, credentialsFile string) {
	t.Helper()
	dir := t.TempDir()
	configFile = filepath.Join(dir, "config")
	credentialsFile = filepath.Join(dir, "credentials")
	require.NoError(t, os.WriteFile(configFile, nil, 0o600))
	require.NoError(t, os.WriteFile(credentialsFile, fmt.Appendf(nil,
		"[%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n", profile, accessKey, secretKey), 0o600))
	return configFile, credentialsFile
}
