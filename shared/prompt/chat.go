package prompt

import (
	"fmt"

	"github.com/eftml/eft/shared/config"
)

// newChatTemplate is the chat_template strategy. It renders conversations
// with package chattemplate, which is not in this build yet.
func newChatTemplate(cfg *config.Config, ds *config.Dataset, enc *encoder) (Strategy, error) {
	return nil, fmt.Errorf("the chat_template strategy is not available in this build yet")
}
