package prompt

import (
	"testing"

	"github.com/eftml/eft/shared/datasets"
)

// FuzzStrategies feeds arbitrary JSON rows to every strategy: a row is
// tokenized or refused with an error, never a panic, and every sample has
// as many labels as ids, each label -100 or its id (rows tokenized
// already keep the labels they bring).
func FuzzStrategies(f *testing.F) {
	for _, seed := range []string{
		`{"instruction": "a", "input": "b", "output": "c", "system": "s"}`,
		`{"text": "It was the best of times."}`,
		`{"segments": [{"label": true, "text": "x"}, {"label": false, "text": ""}]}`,
		`{"input_ids": [1, 2, 3], "labels": [-100, 2, 3], "attention_mask": [1, 1, 0]}`,
		`{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"text": "yo"}]}]}`,
		`{"messages": "[{\"role\": \"user\", \"content\": \"hi\"}]", "system": "be nice"}`,
		`{"question": "q", "choices": ["a", "b"], "solution": "a", "category": "c", "answer": "x"}`,
	} {
		f.Add(seed)
	}
	tok, err := loadFresh(f, "tok-bytelevel")
	if err != nil {
		f.Fatal(err)
	}
	types := []string{"alpaca", "alpaca:chatml", "alpaca_w_system.load_open_orca", "explainchoice", "jeopardy", "completion", "input_output", "pretokenized"}
	var strategies []Strategy
	for _, typ := range types {
		cfg := parseConfig(f, "sequence_len: 16\ndatasets:\n  - path: d.jsonl\n    type: "+typ+"\n")
		s, err := New(cfg, &cfg.Datasets[0], tok)
		if err != nil {
			f.Fatal(err)
		}
		strategies = append(strategies, s)
	}
	cfg := parseConfig(f, "chat_template: chatml\ndatasets:\n  - path: d.jsonl\n    type: chat_template\n    message_field_training: train\n")
	chat, err := New(cfg, &cfg.Datasets[0], tok)
	if err != nil {
		f.Fatal(err)
	}
	strategies = append(strategies, chat)
	f.Fuzz(func(t *testing.T, row string) {
		v, err := parseJSONOrdered(row)
		if err != nil {
			return
		}
		obj, ok := v.(datasets.Object)
		if !ok {
			return
		}
		for _, s := range strategies {
			out, err := s.Tokenize(nil, obj)
			if err != nil {
				continue
			}
			for _, smp := range out {
				if err := smp.Check(); err != nil {
					t.Fatalf("%s: %v", s.Name(), err)
				}
				for i, l := range smp.AppendLabels(nil) {
					if l != IgnoreIndex && l != smp.InputIDs[i] && !isTokenized(obj) && s.Name() != "pretokenized" {
						t.Fatalf("%s: label %d at %d for id %d", s.Name(), l, i, smp.InputIDs[i])
					}
				}
			}
		}
	})
}
