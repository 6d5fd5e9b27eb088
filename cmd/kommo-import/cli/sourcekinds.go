package cli

import (
	"context"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/meta"
)

// openFunc opens one kind of source.
type openFunc func(ctx context.Context, spec sources.Spec) (*sources.Reader, error)

// sourceKinds maps each --source KIND to the package that reads it. A new
// format is a package under sources/ and one entry here: nothing in the
// importer changes.
var sourceKinds = map[string]openFunc{
	sources.KindCSV:      sources.Open,
	sources.KindJSONL:    sources.Open,
	sources.KindPostgres: sources.Open,
	meta.KindMessenger:   meta.Open,
	meta.KindInstagram:   meta.Open,
}

// openSource opens spec with the reader of its kind.
func openSource(ctx context.Context, spec sources.Spec) (*sources.Reader, error) {
	open, ok := sourceKinds[spec.Kind]
	if !ok {
		return sources.Open(ctx, spec) // names the unknown kind
	}
	return open(ctx, spec)
}
