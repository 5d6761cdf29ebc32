package tokenizer

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestTokenizeJSONL(t *testing.T) {
	tok := loadTestTokenizer(t, "tok-bytelevel")
	in := strings.Join([]string{
		`{"text": "Hello world"}`,
		`not json`,
		``,
		`{"messages": [{"role": "user", "content": "hi"}]}`,
		`{"text": 42}`,
		`{"text": ""}`,
		`{"text": "<|im_start|>user"}`,
	}, "\n")
	var out strings.Builder
	if err := TokenizeJSONL(strings.NewReader(in), &out, tok, JSONLOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"ids":[0,44,416,83,1459]}`,
		`{"error":"line 2: not a JSON object: invalid character 'o' in literal null (expecting 'u')"}`,
		`{"error":"line 3: empty line"}`,
		`{"error":"line 4: a \"messages\" line needs --chat"}`,
		`{"error":"line 5: \"text\" must be a string"}`,
		`{"ids":[0]}`,
		`{"ids":[0,2,449,274]}`,
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Chat lines go through the renderer; its errors land on their line.
	render := func(r ChatRequest) (string, error) {
		var msgs []struct{ Role, Content string }
		if err := json.Unmarshal(r.Messages, &msgs); err != nil {
			return "", err
		}
		var sb strings.Builder
		for _, m := range msgs {
			if m.Role != "user" && m.Role != "assistant" {
				return "", errors.New("unknown role " + m.Role)
			}
			sb.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
		}
		if r.AddGenerationPrompt {
			sb.WriteString("<|im_start|>assistant\n")
		}
		return sb.String(), nil
	}
	in = `{"messages": [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}], "add_generation_prompt": false}
{"messages": [{"role": "robot", "content": "x"}]}
{"text": "plain"}`
	out.Reset()
	if err := TokenizeJSONL(strings.NewReader(in), &out, tok, JSONLOptions{Chat: true, RenderChat: render}); err != nil {
		t.Fatal(err)
	}
	got = strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	// The oracle's apply_chat_template ids for this conversation.
	if got[0] != `{"text":"<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n","ids":[2,449,274,203,59,299,357,225,22,15,22,35,3,203,2,598,489,469,203,24,3,203]}` {
		t.Errorf("chat line: %s", got[0])
	}
	if got[1] != `{"error":"line 2: unknown role robot"}` || got[2] != `{"error":"line 3: missing \"messages\""}` {
		t.Errorf("chat errors: %s / %s", got[1], got[2])
	}
}
