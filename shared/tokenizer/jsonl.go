package tokenizer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ChatRequest is a chat line of TokenizeJSONL's input.
type ChatRequest struct {
	Messages            json.RawMessage `json:"messages"`
	AddGenerationPrompt bool            `json:"add_generation_prompt"`
	Tools               json.RawMessage `json:"tools,omitempty"`
}

// JSONLOptions configures TokenizeJSONL.
type JSONLOptions struct {
	// NoSpecial encodes plain text without the post-processor's special
	// tokens (bos/eos). Chats never get them added: the template writes them.
	NoSpecial bool
	// Chat renders lines of messages with RenderChat instead of reading
	// text lines.
	Chat       bool
	RenderChat func(ChatRequest) (string, error)
}

// jsonlResult is one output line: ids (and the rendered text of a chat),
// or an error.
type jsonlResult struct {
	Text  *string `json:"text,omitempty"`
	IDs   []int32 `json:"ids"`
	Error string  `json:"-"`
}

type jsonlError struct {
	Error string `json:"error"`
}

// TokenizeJSONL is the body of `eft tokenize`: it reads JSON lines from r
// ({"text": ...}, or with opts.Chat {"messages": [...],
// "add_generation_prompt": bool}) and writes one JSON line per input line
// to w: {"ids": [...]}, plus "text" (the rendered chat) for chats. A line
// that cannot be handled gets {"error": "line N: ..."} in its place; only
// read and write failures stop it.
func TokenizeJSONL(r io.Reader, w io.Writer, tok *Tokenizer, opts JSONLOptions) error {
	if opts.Chat && opts.RenderChat == nil {
		return errors.New("tokenize: chat mode needs a chat template renderer")
	}
	in := bufio.NewReaderSize(r, 1<<20)
	out := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for lineNo := 1; ; lineNo++ {
		line, err := in.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("tokenize: reading line %d: %w", lineNo, err)
		}
		var res any = tokenizeLine(bytes.TrimSpace(line), tok, opts)
		if e := res.(jsonlResult).Error; e != "" {
			res = jsonlError{Error: fmt.Sprintf("line %d: %s", lineNo, e)}
		}
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("tokenize: writing line %d: %w", lineNo, err)
		}
		if err == io.EOF {
			break
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	return nil
}

func tokenizeLine(line []byte, tok *Tokenizer, opts JSONLOptions) jsonlResult {
	if len(line) == 0 {
		return jsonlResult{Error: "empty line"}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return jsonlResult{Error: "not a JSON object: " + err.Error()}
	}
	if !opts.Chat {
		raw, ok := fields["text"]
		if !ok {
			if _, chat := fields["messages"]; chat {
				return jsonlResult{Error: `a "messages" line needs --chat`}
			}
			return jsonlResult{Error: `missing "text"`}
		}
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return jsonlResult{Error: `"text" must be a string`}
		}
		return jsonlResult{IDs: tok.AppendEncode([]int32{}, text, !opts.NoSpecial)}
	}
	var req ChatRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return jsonlResult{Error: "bad chat line: " + err.Error()}
	}
	if len(req.Messages) == 0 || bytes.Equal(req.Messages, []byte("null")) {
		return jsonlResult{Error: `missing "messages"`}
	}
	text, err := opts.RenderChat(req)
	if err != nil {
		return jsonlResult{Error: err.Error()}
	}
	// The template writes bos/eos itself, as apply_chat_template(tokenize=True).
	return jsonlResult{Text: &text, IDs: tok.AppendEncode([]int32{}, text, false)}
}
