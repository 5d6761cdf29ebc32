// Package chattemplate renders chat templates exactly as transformers'
// apply_chat_template does, and resolves which template a config means the
// way Axolotl does.
//
// It owns: loading templates from a tokenizer directory
// (tokenizer_config.json's chat_template, a string or a list of named
// templates, and chat_template.jinja / additional_chat_templates/*.jinja as
// transformers 4.43+ saves them); the special-token strings templates see;
// Axolotl's built-in named templates (chatml, llama3, qwen3, ...) and its
// chat_template choices (a name, tokenizer_default,
// tokenizer_default_fallback_<name>, jinja); transformers' template
// environment (tojson without key sorting or HTML escaping, raise_exception,
// strftime_now); rendering with messages, tools, documents,
// add_generation_prompt and extra kwargs; and what Axolotl's label masking
// needs to find each turn in the rendered text (TurnRenders, DiffSpan,
// MessageSpans).
//
// The Jinja engine itself is package chattemplate/jinja. This package does
// not tokenize (package tokenizer does) and does not map dataset rows to
// messages (package prompt does).
package chattemplate
