// Package media puts an export's local files where Kommo can fetch them.
//
// The Chats API takes a picture, voice note, video or file only as a URL that
// Kommo downloads (message.media, with file_name and file_size). An export
// keeps its media as local files, which travel through staging as file: URLs
// (sources/chatexport.FileURL), or as zip: URLs for the files inside a zipped
// export, read from the archive in place (chatexport.ZipURL; LocalRef turns
// either into what Put takes). A Store turns such a file into a URL in one of
// two ways:
//
//   - An S3-compatible object store (--media-store s3://BUCKET/PREFIX): Put
//     hashes the file once and stores it under a content-addressed key,
//     PREFIX/sha256/<hex>/<file name>, after a HEAD that finds it already
//     there (a re-run, a second process, the same sticker in a thousand
//     messages): the same content is stored once and nothing is overwritten.
//     URL presigns a GET at send time, valid for Config.URLTTL (at most 7
//     days, S3's limit), or joins the key to Config.PublicBase for a bucket or
//     CDN the operator made public.
//   - The operator's own web server (--media-base-url URL) that publishes the
//     export folder: a file maps to URL/<path relative to the export root>,
//     and Put checks with a HEAD (or a one-byte ranged GET) that the URL
//     answers 200 with the file's size; anything else fails that message.
//
// Errors say what the caller does next: a *FileError (missing, unreadable,
// empty, over Config.MaxSize, outside the export) becomes the
// --media-missing placeholder or a rejected record; an *Error is Transient
// (retry with backoff), Permanent (the store refuses us: stop the run,
// naming it) or Unpublished (this file's URL does not serve it: fail the
// message, retryable later). Probe is the preflight: it fails in seconds,
// with a Permanent *Error naming the store or URL, when the endpoint,
// credentials, bucket, bucket policy or base URL are wrong.
package media
