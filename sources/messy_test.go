package sources

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMessyFiles: every bad line of a messy file is reported with its line,
// field and a reason, and every good line comes through.
func TestMessyFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, path, want string
	}{
		{"csv", "../testdata/messages-messy.csv", "testdata/want-messy-csv.json"},
		{"jsonl", "../testdata/messages-messy.jsonl", "testdata/want-messy-jsonl.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var want struct {
				Errors [][2]any `json:"errors"`
				Good   [][2]any `json:"good"`
			}
			b, err := os.ReadFile(tt.want)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(b, &want))
			res := readAll(t, Spec{Kind: tt.name, Path: tt.path})

			wantErrs := []errAt{}
			for _, e := range want.Errors {
				wantErrs = append(wantErrs, errAt{int64(e[0].(float64)), e[1].(string)})
			}
			require.Equal(t, wantErrs, res.errAts())
			for _, e := range res.errs {
				require.Equal(t, tt.path, e.File)
				require.NotEmpty(t, e.Raw, "line %d", e.Line)
				require.NotEmpty(t, e.Err.Error(), "line %d", e.Line)
			}
			var wantGood, gotGood [][2]any
			for _, g := range want.Good {
				wantGood = append(wantGood, [2]any{int64(g[0].(float64)), g[1]})
			}
			for _, r := range res.records {
				gotGood = append(gotGood, [2]any{r.Line, r.Payload.MsgID})
			}
			require.Equal(t, wantGood, gotGood)
			require.Equal(t, int64(1), res.stats.Duplicates)
			require.Equal(t, int64(len(wantErrs)), res.stats.Rejected)
		})
	}
}
