package main

import (
	"errors"

	"github.com/eftml/eft/shared/config"
)

// chatSession is one conversation of `eft inference --chat`: its turns so
// far, rendered with the chat template before each answer.
type chatSession struct {
	messages []map[string]string
}

// newChatSession needs package chattemplate (the Jinja renderer that
// matches transformers' apply_chat_template), which is being written; until
// it is in the build, --chat says so rather than render turns some other way.
func newChatSession(cfg *config.Config, tokDir string) (*chatSession, error) {
	return nil, errors.New("--chat needs the chat template renderer (shared/chattemplate), which is not in this build yet; give the prompt in the model's own format without --chat")
}

func (c *chatSession) userTurn(text string) (string, error) {
	c.messages = append(c.messages, map[string]string{"role": "user", "content": text})
	return "", errors.New("no chat template renderer")
}

func (c *chatSession) assistantTurn(text string) {
	c.messages = append(c.messages, map[string]string{"role": "assistant", "content": text})
}
