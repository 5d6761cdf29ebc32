package chattemplate

import (
	"embed"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
)

// templatesFS holds Axolotl's built-in chat templates
// (src/axolotl/utils/chat_templates/templates/*.jinja), byte for byte: users'
// configs name them, so their names and text are data we must not change.
//
//go:embed templates/*.jinja
var templatesFS embed.FS

// Choices Axolotl accepts for chat_template besides the template names.
const (
	TokenizerDefault         = "tokenizer_default"
	TokenizerDefaultFallback = "tokenizer_default_fallback_"
	JinjaChoice              = "jinja"
)

// Names lists Axolotl's built-in template names, sorted.
func Names() []string {
	entries, _ := templatesFS.ReadDir("templates")
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".jinja"))
	}
	sort.Strings(names)
	return names
}

// Named returns the text of one of Axolotl's built-in templates.
func Named(name string) (string, bool) {
	if name == "" || strings.ContainsAny(name, "/\\.") {
		return "", false
	}
	data, err := templatesFS.ReadFile("templates/" + name + ".jinja")
	if err != nil {
		return "", false
	}
	return string(data), true
}

// ErrNoTemplate is returned (wrapped) when a choice needs the tokenizer's
// template and the tokenizer has none.
var ErrNoTemplate = errors.New("no chat template")

// Resolve picks the template a config's chat_template choice means, as
// Axolotl's get_chat_template does:
//
//   - "jinja": jinjaTemplate, the template text or the path of a file
//     holding it;
//   - "tokenizer_default": the tokenizer's default template;
//   - "tokenizer_default_fallback_<name>": the tokenizer's default template
//     if it has one, else the built-in <name>;
//   - any other value: the built-in template of that name.
//
// tok may be nil when the choice does not need a tokenizer.
func Resolve(choice, jinjaTemplate string, tok *TokenizerConfig) (*Template, error) {
	switch {
	case choice == JinjaChoice:
		if jinjaTemplate == "" {
			return nil, fmt.Errorf("chat_template: jinja needs chat_template_jinja (the template, or a path to a .jinja file)")
		}
		name := "chat_template_jinja"
		if st, err := os.Stat(jinjaTemplate); err == nil && st.Mode().IsRegular() {
			data, err := os.ReadFile(jinjaTemplate)
			if err != nil {
				return nil, fmt.Errorf("chat_template_jinja: %w", err)
			}
			name, jinjaTemplate = jinjaTemplate, string(data)
		}
		return Compile(name, jinjaTemplate)
	case choice == TokenizerDefault:
		if tok == nil {
			return nil, fmt.Errorf("chat_template: tokenizer_default needs the tokenizer's config")
		}
		if !tok.HasTemplate() {
			return nil, fmt.Errorf("chat_template is tokenizer_default but %s has no chat_template; add one to the tokenizer config or choose a template (one of %s): %w",
				tok.Source, strings.Join(Names(), ", "), ErrNoTemplate)
		}
		return tok.Template("", false)
	case strings.HasPrefix(choice, TokenizerDefaultFallback):
		if tok == nil {
			return nil, fmt.Errorf("chat_template: %s needs the tokenizer's config", choice)
		}
		if tok.HasTemplate() {
			return tok.Template("", false)
		}
		choice = strings.TrimPrefix(choice, TokenizerDefaultFallback)
	}
	src, ok := Named(choice)
	if !ok {
		return nil, fmt.Errorf("chat_template: template %q not found; the built-in ones are %s, or use tokenizer_default, tokenizer_default_fallback_<name> or jinja",
			choice, strings.Join(Names(), ", "))
	}
	return Compile(choice, src)
}
