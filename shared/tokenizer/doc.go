// Package tokenizer loads Hugging Face tokenizers (tokenizer.json plus
// tokenizer_config.json) and encodes and decodes text to exactly the ids the
// Hugging Face tokenizers library produces.
//
// It owns the whole tokenization pipeline: added tokens (special, lstrip,
// rstrip, single_word, normalized), normalizers, pre-tokenizers (Split with
// the real regexes, including GPT-2/Llama-3/Qwen fast paths and a general
// backtracking engine for any other pattern), the BPE, WordPiece, WordLevel
// and Unigram models, post-processors (templates, bos/eos) and decoders. It
// does not render chat templates (package chattemplate does) and knows
// nothing about datasets or packing.
//
// Encoding is safe for concurrent use and allocation-light: per-goroutine
// buffers and BPE word caches come from a pool. EncodeBatch spreads a batch
// over all cores.
package tokenizer
