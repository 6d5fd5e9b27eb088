package meta

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/sources"
)

// Instagram's 2018-2020 messages.json: the owner found as the participant
// of the most conversations when there is no profile.json; a conversation
// of the wrong shape is skipped and the next read; a file cut short keeps
// what came before it.
func TestLegacyInstagram(t *testing.T) {
	conv := func(a, b, text string) string {
		return `{"participants": ["` + a + `", "` + b + `"], "conversation": [` +
			`{"sender": "` + b + `", "created_at": "2019-05-04T09:15:02.120000+00:00", "text": "` + text + `"}]}`
	}
	root := t.TempDir()
	writeFile(t, root, "messages.json", []byte("["+conv("shop", "anna", "hi")+", "+
		`{"participants": "shop", "conversation": []}, `+conv("bob", "shop", "from the shop")+", "+conv("shop", "carl", "cut")[:40]))
	res := readAll(t, sources.Spec{Kind: KindInstagram, Path: root, Users: sampleUsersFor(t, "shop")})
	require.Equal(t, []string{
		`ig-dm-anna+shop in  anna: "hi"`,
		`ig-dm-bob+shop out shop: "from the shop"`,
	}, briefs(res))
	require.Equal(t, []string{
		root + `:2: participants: messages.json offset 139 (conversation 2): participants: a JSON string where the export has a list: the conversation is skipped`,
		root + `:4: messages.json offset 373 (conversation 4): the file ends in the middle of the JSON (cut short?): the rest of the file cannot be read`,
	}, errTexts(res))
	require.Equal(t, map[string]int64{SkipDamagedChat: 2}, res.skipped)

	writeFile(t, root, "messages.json", []byte(`{"not": "a list"}`))
	_, _, err := open(t.Context(), sources.Spec{Kind: KindInstagram, Path: root})
	require.ErrorContains(t, err, "messages.json: not a list of conversations")
}
