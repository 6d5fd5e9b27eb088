package contacts_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kommo-import/kommo-import/signer"
)

// createChat creates a chat through the simulator's (signed) Chats API and
// returns its id.
func createChat(t *testing.T, base, conv string) string {
	t.Helper()
	body := fmt.Sprintf(`{"conversation_id":%q,"user":{"id":"u-%s","name":"U"}}`, conv, conv)
	path := "/v2/origin/custom/" + scope + "/chats"
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	require.NoError(t, err)
	signer.Sign(http.MethodPost, path, []byte(body), "chan-secret", time.Now()).Apply(req.Header)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	var r struct {
		ID string `json:"id"`
	}
	require.NoError(t, json.Unmarshal(b, &r))
	return r.ID
}
