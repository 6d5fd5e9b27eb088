package sources

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// filterCSV has three conversations over three days, and a record of c3
// that would be rejected (no text) and one of c1 likewise.
const filterCSV = `conversation_id,msgid,timestamp,sender_id,sender_name,message_type,message_text
c1,a1,2024-03-01T10:00:00Z,u1,Anna,text,hi
c2,b1,2024-03-01T23:30:00Z,u2,Boris,text,hi
c3,x1,2024-03-02T08:00:00Z,u3,Chen,text,
c1,a2,2024-03-02T12:00:00Z,u1,Anna,text,again
c2,b2,2024-03-03T09:00:00Z,u2,Boris,text,bye
c1,a3,2024-03-03T10:00:00Z,u1,Anna,text,
`

func TestFilter(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "filter.csv", filterCSV)
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	date := func(s string) Bound { b, err := ParseBound(s); require.NoError(t, err); return b }
	tests := []struct {
		name         string
		filter       *Filter
		loc          *time.Location
		wantIDs      []string
		wantRejected []errAt
		wantFiltered int64
	}{
		{name: "none", filter: nil, wantIDs: []string{"a1", "b1", "a2", "b2"}, wantRejected: []errAt{{4, "message.text"}, {7, "message.text"}}},
		{name: "conversations", filter: &Filter{Conversations: []string{"c2", " c1 "}}, wantIDs: []string{"a1", "b1", "a2", "b2"},
			wantRejected: []errAt{{7, "message.text"}}, wantFiltered: 1},
		{name: "one conversation", filter: &Filter{Conversations: []string{"c2"}}, wantIDs: []string{"b1", "b2"}, wantFiltered: 4},
		{name: "since a date in UTC", filter: &Filter{Since: date("2024-03-02")}, wantIDs: []string{"a2", "b2"},
			wantRejected: []errAt{{4, "message.text"}, {7, "message.text"}}, wantFiltered: 2},
		{name: "since a date in --tz", filter: &Filter{Since: date("2024-03-02")}, loc: berlin, wantIDs: []string{"b1", "a2", "b2"},
			wantRejected: []errAt{{4, "message.text"}, {7, "message.text"}}, wantFiltered: 1},
		{name: "until a date keeps the whole day", filter: &Filter{Until: date("2024-03-02")}, wantIDs: []string{"a1", "b1", "a2"},
			wantRejected: []errAt{{4, "message.text"}}, wantFiltered: 2},
		{name: "until an instant is exclusive", filter: &Filter{Until: date("2024-03-02T12:00:00Z")}, wantIDs: []string{"a1", "b1"},
			wantRejected: []errAt{{4, "message.text"}}, wantFiltered: 3},
		{name: "the first conversations met", filter: &Filter{Limit: 2}, wantIDs: []string{"a1", "b1", "a2", "b2"},
			wantRejected: []errAt{{7, "message.text"}}, wantFiltered: 1},
		{name: "limit after the other rules", filter: &Filter{Limit: 1, Since: date("2024-03-02T09:00:00Z")}, wantIDs: []string{"a2"},
			wantRejected: []errAt{{7, "message.text"}}, wantFiltered: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := readAll(t, Spec{Kind: KindCSV, Path: path, Filter: tt.filter, Location: tt.loc})
			require.Equal(t, tt.wantIDs, res.msgids())
			if tt.wantRejected == nil {
				tt.wantRejected = []errAt{}
			}
			require.Equal(t, tt.wantRejected, res.errAts(), "records outside the subset are not rejected")
			require.Equal(t, tt.wantFiltered, res.stats.Filtered)
			require.Equal(t, int64(6), res.stats.Total()+res.stats.Filtered, "every record counted once")
		})
	}
}

// TestFilterIsPartOfTheIdentity: a subset is a run of its own, and the same
// subset given in another order is the same one.
func TestFilterIsPartOfTheIdentity(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "x.csv", filterCSV)
	whole, err := Spec{Kind: KindCSV, Path: path}.Identity()
	require.NoError(t, err)
	ab, err := Spec{Kind: KindCSV, Path: path, Filter: &Filter{Conversations: []string{"a", "b"}}}.Identity()
	require.NoError(t, err)
	ba, err := Spec{Kind: KindCSV, Path: path, Filter: &Filter{Conversations: []string{"b", "a", "a"}}}.Identity()
	require.NoError(t, err)
	require.NotEqual(t, whole.Label, ab.Label)
	require.Equal(t, ab, ba)
	require.Equal(t, whole.Label+" [only conversations a, b]", ab.Label)
	require.Equal(t, "x.csv-subset", ab.Base)
	require.Equal(t, whole.Version, ab.Version)

	since, err := Spec{Kind: KindCSV, Path: path, Filter: &Filter{Since: Bound{T: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Date: true}, Limit: 3}}.Identity()
	require.NoError(t, err)
	require.Contains(t, since.Label, "[only since 2024-03-01 UTC; the first 3 conversations]")

	many := make([]string, 40)
	for i := range many {
		many[i] = string(rune('a'+i%26)) + string(rune('0'+i/26))
	}
	big, err := Spec{Kind: KindCSV, Path: path, Filter: &Filter{Conversations: many, ConversationsFrom: "ids.txt"}}.Identity()
	require.NoError(t, err)
	require.Regexp(t, `\[only 40 conversations from ids.txt \(ids sha256 [0-9a-f]{8}\)\]$`, big.Label)

	err = Spec{Kind: KindCSV, Path: path, Filter: &Filter{Since: Bound{T: time.Date(2024, 3, 2, 0, 0, 0, 0, time.UTC)}, Until: Bound{T: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), Date: true}}}.Check()
	require.ErrorContains(t, err, "is not before --until")
	_, err = os.Stat(path)
	require.NoError(t, err)
}
