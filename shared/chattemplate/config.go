package chattemplate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/eftml/eft/shared/chattemplate/jinja"
)

// TokenizerConfig is what a tokenizer directory says about chat templates.
type TokenizerConfig struct {
	// Source names the files it was read from, for errors.
	Source string
	// Templates are the tokenizer's templates by name; a single template
	// is named "default".
	Templates map[string]string
	// SpecialTokens are transformers' special_tokens_map: bos_token,
	// eos_token, unk_token, sep_token, pad_token, cls_token, mask_token
	// (strings; AddedToken objects reduced to their content),
	// additional_special_tokens (a list) and the extra_special_tokens
	// names, for those the config sets.
	SpecialTokens map[string]any
}

// specialAttrs are transformers' SPECIAL_TOKENS_ATTRIBUTES that hold one
// token.
var specialAttrs = []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

// LoadTokenizerConfig reads dir/tokenizer_config.json and the template
// files transformers saves next to it: chat_template.jinja (which replaces
// the config's template, as in transformers) and
// additional_chat_templates/<name>.jinja.
func LoadTokenizerConfig(dir string) (*TokenizerConfig, error) {
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseTokenizerConfig(data, path)
	if err != nil {
		return nil, err
	}
	jf := filepath.Join(dir, "chat_template.jinja")
	if b, err := os.ReadFile(jf); err == nil {
		cfg.Templates["default"] = string(b)
		cfg.Source += " + " + jf
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	extra, err := filepath.Glob(filepath.Join(dir, "additional_chat_templates", "*.jinja"))
	if err != nil {
		return nil, err
	}
	for _, f := range extra {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		cfg.Templates[strings.TrimSuffix(filepath.Base(f), ".jinja")] = string(b)
	}
	return cfg, nil
}

// ParseTokenizerConfig reads the chat template(s) and special tokens of a
// tokenizer_config.json; source names it in errors.
func ParseTokenizerConfig(data []byte, source string) (*TokenizerConfig, error) {
	v, err := jinja.DecodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	root, ok := v.(*jinja.Dict)
	if !ok {
		return nil, fmt.Errorf("%s: not a JSON object", source)
	}
	cfg := &TokenizerConfig{Source: source, Templates: map[string]string{}, SpecialTokens: map[string]any{}}
	get := func(k string) any { x, _ := root.Get(k); return x }
	switch t := get("chat_template").(type) {
	case nil:
	case string:
		cfg.Templates["default"] = t
	case []any:
		for i, e := range t {
			name, _ := field(e, "name").(string)
			tpl, ok := field(e, "template").(string)
			if name == "" || !ok {
				return nil, fmt.Errorf("%s: chat_template[%d] must be an object with a string \"name\" and \"template\"", source, i)
			}
			cfg.Templates[name] = tpl
		}
	default:
		return nil, fmt.Errorf("%s: chat_template must be a string or a list of {name, template}, not %s", source, jinja.TypeName(t))
	}
	for _, k := range specialAttrs {
		s, err := tokenContent(get(k), source, k)
		if err != nil {
			return nil, err
		}
		if s != nil {
			cfg.SpecialTokens[k] = *s
		}
	}
	if extra, ok := get("additional_special_tokens").([]any); ok && len(extra) > 0 {
		list := make([]any, 0, len(extra))
		for i, e := range extra {
			s, err := tokenContent(e, source, fmt.Sprintf("additional_special_tokens[%d]", i))
			if err != nil {
				return nil, err
			}
			if s != nil {
				list = append(list, *s)
			}
		}
		cfg.SpecialTokens["additional_special_tokens"] = list
	}
	if extra, ok := get("extra_special_tokens").(*jinja.Dict); ok {
		for _, k := range extra.Keys() {
			name, _ := k.(string)
			val, _ := extra.Get(k)
			s, err := tokenContent(val, source, "extra_special_tokens."+name)
			if err != nil {
				return nil, err
			}
			if s != nil {
				cfg.SpecialTokens[name] = *s
			}
		}
	}
	return cfg, nil
}

// field returns obj[name] of a decoded JSON object (nil when absent).
func field(obj any, name string) any {
	d, ok := obj.(*jinja.Dict)
	if !ok {
		return nil
	}
	v, _ := d.Get(name)
	return v
}

// tokenContent reads a special token: a string, or an AddedToken object
// whose "content" is the string.
func tokenContent(v any, source, key string) (*string, error) {
	switch t := v.(type) {
	case nil:
		return nil, nil
	case string:
		return &t, nil
	case *jinja.Dict:
		if s, ok := field(t, "content").(string); ok {
			return &s, nil
		}
	}
	return nil, fmt.Errorf("%s: %s must be a string or an AddedToken object with a string \"content\"", source, key)
}

// HasTemplate reports whether the tokenizer has any chat template.
func (c *TokenizerConfig) HasTemplate() bool { return len(c.Templates) > 0 }

// TemplateNames lists the tokenizer's template names, sorted.
func (c *TokenizerConfig) TemplateNames() []string {
	names := make([]string, 0, len(c.Templates))
	for n := range c.Templates {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Template picks a template as transformers' get_chat_template does: the
// one named name if given; otherwise "tool_use" when the call has tools
// and the tokenizer has that template, else "default".
func (c *TokenizerConfig) Template(name string, hasTools bool) (*Template, error) {
	if name == "" {
		name = "default"
		if _, ok := c.Templates["tool_use"]; ok && hasTools {
			name = "tool_use"
		}
	}
	src, ok := c.Templates[name]
	if !ok {
		if !c.HasTemplate() {
			return nil, fmt.Errorf("%s has no chat_template: %w", c.Source, ErrNoTemplate)
		}
		return nil, fmt.Errorf("%s has no chat template named %q; it has %s", c.Source, name, strings.Join(c.TemplateNames(), ", "))
	}
	return Compile(c.Source, src)
}
