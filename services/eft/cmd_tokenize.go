package main

import (
	"bytes"
	"errors"
	"fmt"
	"sync"

	"github.com/spf13/cobra"

	"github.com/eftml/eft/shared/chattemplate"
	"github.com/eftml/eft/shared/chattemplate/jinja"
	"github.com/eftml/eft/shared/tokenizer"
)

func init() { addCommand(newTokenizeCommand) }

func newTokenizeCommand(*globals) *cobra.Command {
	var dir, templateChoice string
	var noSpecial, chat bool
	cmd := &cobra.Command{
		Use:   "tokenize --tokenizer DIR [--no-special] [--chat]",
		Short: "Tokenize JSON lines from stdin exactly as Hugging Face does",
		Long: `Reads JSON lines on stdin and writes one JSON line per input line on stdout.

  {"text": "..."}                                  -> {"ids": [...]}
  with --chat:
  {"messages": [...], "add_generation_prompt": b}  -> {"text": "<rendered chat>", "ids": [...]}

Text gets the tokenizer's special tokens (bos/eos) unless --no-special; a chat
is rendered with the tokenizer's chat template (or --chat-template) and its ids
carry exactly what the template wrote, as apply_chat_template(tokenize=True).
A line that cannot be handled gets {"error": "line N: ..."} in its place.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dir == "" {
				return errors.New("tokenize: --tokenizer DIR is required")
			}
			tok, err := tokenizer.Load(dir)
			if err != nil {
				return err
			}
			opts := tokenizer.JSONLOptions{NoSpecial: noSpecial, Chat: chat}
			if chat {
				if opts.RenderChat, err = chatRenderer(dir, templateChoice); err != nil {
					return err
				}
			}
			return tokenizer.TokenizeJSONL(cmd.InOrStdin(), cmd.OutOrStdout(), tok, opts)
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&dir, "tokenizer", "", "Hugging Face tokenizer directory (tokenizer.json, tokenizer_config.json)")
	flags.BoolVar(&noSpecial, "no-special", false, "do not add the special tokens (bos/eos) to text lines")
	flags.BoolVar(&chat, "chat", false, `lines are chats ({"messages": [...], "add_generation_prompt": bool})`)
	flags.StringVar(&templateChoice, "chat-template", "", "with --chat: a built-in template name (Axolotl's chat_template) instead of the tokenizer's")
	return cmd
}

// chatRenderer renders chat lines with the tokenizer's template (the
// tool_use one when a line has tools and the tokenizer has it) or with the
// named built-in template.
func chatRenderer(dir, choice string) (func(tokenizer.ChatRequest) (string, error), error) {
	cfg, err := chattemplate.LoadTokenizerConfig(dir)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	var fixed *chattemplate.Template
	if choice != "" {
		if fixed, err = chattemplate.Resolve(choice, "", cfg); err != nil {
			return nil, fmt.Errorf("tokenize: %w", err)
		}
	} else if !cfg.HasTemplate() {
		return nil, fmt.Errorf("tokenize: %s has no chat_template; pass --chat-template NAME (one of %v)", cfg.Source, chattemplate.Names())
	}
	var mu sync.Mutex
	compiled := map[bool]*chattemplate.Template{}
	pick := func(hasTools bool) (*chattemplate.Template, error) {
		if fixed != nil {
			return fixed, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if t, ok := compiled[hasTools]; ok {
			return t, nil
		}
		t, err := cfg.Template("", hasTools)
		if err == nil {
			compiled[hasTools] = t
		}
		return t, err
	}
	return func(req tokenizer.ChatRequest) (string, error) {
		v, err := jinja.DecodeJSON(req.Messages)
		if err != nil {
			return "", fmt.Errorf(`"messages": %w`, err)
		}
		msgs, ok := v.([]any)
		if !ok {
			return "", errors.New(`"messages" must be a list`)
		}
		var tools []any
		if len(req.Tools) > 0 && !bytes.Equal(req.Tools, []byte("null")) {
			v, err := jinja.DecodeJSON(req.Tools)
			if err != nil {
				return "", fmt.Errorf(`"tools": %w`, err)
			}
			if tools, ok = v.([]any); !ok {
				return "", errors.New(`"tools" must be a list`)
			}
		}
		tpl, err := pick(tools != nil)
		if err != nil {
			return "", err
		}
		return tpl.Render(chattemplate.Request{
			Messages:            msgs,
			Tools:               tools,
			AddGenerationPrompt: req.AddGenerationPrompt,
			SpecialTokens:       cfg.SpecialTokens,
		})
	}, nil
}
