package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kommo-import/kommo-import/sources"
	"github.com/kommo-import/kommo-import/sources/meta"
	"github.com/kommo-import/kommo-import/sources/telegram"
	"github.com/kommo-import/kommo-import/sources/whatsapp"
)

// openFunc opens one kind of source.
type openFunc func(ctx context.Context, spec sources.Spec) (*sources.Reader, error)

// sourceKinds maps each --source KIND to the package that reads it. A new
// format is a package under sources/ and one entry here: nothing in the
// importer changes. An export kind that --source parses (sources.ExportKinds)
// but that has no entry here is refused as not built yet.
var sourceKinds = map[string]openFunc{
	sources.KindCSV:       sources.Open,
	sources.KindJSONL:     sources.Open,
	sources.KindPostgres:  sources.Open,
	sources.KindTelegram:  telegram.Open,
	sources.KindWhatsApp:  whatsapp.Open,
	sources.KindMessenger: meta.Open,
	sources.KindInstagram: meta.Open,
}

// checkKind refuses, as a usage error, an export kind that --source parses
// but this build cannot read yet. Call it after spec.Check.
func checkKind(spec sources.Spec) error {
	if _, ok := sourceKinds[spec.Kind]; !ok && sources.IsExportKind(spec.Kind) {
		return withHint(ExitUsage, fmt.Errorf("--source %s: reading %s exports is not built yet in this version", spec.Kind, spec.Kind),
			"this build reads: "+strings.Join(builtKinds(), ", "))
	}
	return nil
}

// builtKinds lists the kinds of sourceKinds, sorted.
func builtKinds() []string {
	kinds := make([]string, 0, len(sourceKinds))
	for k := range sourceKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	return kinds
}

// openSource opens spec with the reader of its kind.
func openSource(ctx context.Context, spec sources.Spec) (*sources.Reader, error) {
	open, ok := sourceKinds[spec.Kind]
	if !ok {
		if err := checkKind(spec); err != nil {
			return nil, err
		}
		return sources.Open(ctx, spec) // names the unknown kind
	}
	return open(ctx, spec)
}
