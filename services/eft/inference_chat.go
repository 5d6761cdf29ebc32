package main

import (
	"fmt"

	"github.com/eftml/eft/shared/chattemplate"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
)

// chatSession is one conversation of `eft inference --chat`: its turns so
// far, rendered with the chat template before each answer, as
// apply_chat_template(add_generation_prompt=True) renders them.
type chatSession struct {
	tpl      *chattemplate.Template
	special  map[string]any
	kwargs   map[string]any
	messages []any
}

// newChatSession picks the template as the run's data was rendered: the
// config's chat_template (a built-in name, jinja, tokenizer_default...),
// else the tokenizer's own.
func newChatSession(cfg *config.Config, tokDir string) (*chatSession, error) {
	tc, err := chattemplate.LoadTokenizerConfig(tokDir)
	if err != nil {
		return nil, err
	}
	choice, text := cfg.ChatTemplate, cfg.ChatTemplateJinja
	if choice == "" {
		choice = "tokenizer_default"
	}
	tpl, err := chattemplate.Resolve(choice, text, tc)
	if err != nil {
		return nil, fmt.Errorf("--chat: %w", err)
	}
	return &chatSession{tpl: tpl, special: tc.SpecialTokens, kwargs: cfg.ChatTemplateKwargs}, nil
}

func message(role, content string) datasets.Object {
	return datasets.Object{{Name: "role", Value: role}, {Name: "content", Value: content}}
}

// userTurn adds a user message and renders the conversation up to the
// assistant's answer.
func (c *chatSession) userTurn(text string) (string, error) {
	c.messages = append(c.messages, message("user", text))
	return c.tpl.Render(chattemplate.Request{Messages: c.messages, AddGenerationPrompt: true, SpecialTokens: c.special, Kwargs: c.kwargs})
}

// assistantTurn adds the answer to the conversation.
func (c *chatSession) assistantTurn(text string) {
	c.messages = append(c.messages, message("assistant", text))
}
