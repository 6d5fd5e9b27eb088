package importer

import (
	"context"

	"github.com/kommo-import/kommo-import/wire"
)

// prepareMedia runs before a message's request: a local file (message.media
// a file: or zip: URL) is uploaded to the media store, once (content
// addressed, recorded), and p names it by a URL made now. A non-zero step
// leaves the conversation for later (a retryable upload failure parks it);
// a file that cannot be sent follows --media-missing. Without a media store
// it does nothing (the sources turned such files into text).
func (im *Importer) prepareMedia(ctx context.Context, conv *conversation, m *pendingMessage, p *wire.Payload, halt <-chan struct{}) (step, error) {
	return 0, nil
}
