package chatexport

import (
	"net/url"
	"path/filepath"
)

// ZipURL is the URL of a file inside a zip archive, as a payload's
// message.media holds a media file of a zipped export (WhatsApp's
// "Export chat" zip) until it is hosted: "zip:///abs/chat.zip?entry=NAME".
// The file is read in place when it is needed (media.LocalRef), so an export is
// never unpacked whole, and every process of a run that can read the zip
// can read its media.
func ZipURL(zipPath, entry string) string {
	return (&url.URL{Scheme: "zip", Path: filepath.ToSlash(zipPath), RawQuery: url.Values{"entry": {entry}}.Encode()}).String()
}
