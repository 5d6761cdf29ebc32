// Package jinja is a Jinja2 template engine with Python's semantics, built
// to render Hugging Face chat templates exactly as transformers does.
//
// It owns parsing (Jinja2's lexer rules with trim_blocks and lstrip_blocks
// on, whitespace control, raw blocks, loop controls and transformers'
// {% generation %} tag) and evaluation with the behaviour of Python objects:
// str() and repr() of values, int/float arithmetic, string, dict and list
// methods, Jinja2's filters, tests and globals, Undefined, and the
// immutable sandbox (no mutating methods, no underscore attributes, range
// capped at 100000). Errors carry the message Python would raise.
//
// It knows nothing about tokenizers or chat messages; package chattemplate
// adds transformers' environment (tojson, raise_exception, strftime_now)
// and the chat API on top.
package jinja
