package tokenizer

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/prompt"
	"github.com/eftml/eft/shared/testfixtures"
)

// The preprocessing benchmarks build a large synthetic dataset from a
// public-domain text at run time (nothing is committed): set
// EFT_TOKENIZER_BENCH_TEXT to Moby Dick (see docs/pipeline.md), and
// EFT_PIPELINE_BENCH_ROWS to change the number of rows (default 100000).
func benchSentences(b *testing.B) []string {
	path := os.Getenv("EFT_TOKENIZER_BENCH_TEXT")
	if path == "" {
		b.Skip("set EFT_TOKENIZER_BENCH_TEXT to a public-domain text (Moby Dick: see docs/pipeline.md)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Join(strings.Fields(string(data)), " ")
	var out []string
	for _, s := range regexp.MustCompile(`[^.!?]+[.!?]+["”’]?`).FindAllString(text, -1) {
		if s = strings.TrimSpace(s); len(s) > 8 {
			out = append(out, s)
		}
	}
	return out
}

func benchRows() int {
	if n, err := strconvAtoi(os.Getenv("EFT_PIPELINE_BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 100000
}

func strconvAtoi(s string) (int, error) {
	var n int
	if s == "" {
		return 0, os.ErrNotExist
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, os.ErrInvalid
		}
		n = n*10 + int(c-'0')
	}
	return n, nil
}

// synthConversation is a conversation of 1 to 4 exchanges (user: 1-2
// sentences, assistant: 2-6), a system prompt one time in three.
func synthConversation(rng *rand.Rand, sentences []string) []any {
	pick := func(lo, hi int) string {
		n := lo + rng.IntN(hi-lo+1)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = sentences[rng.IntN(len(sentences))]
		}
		return strings.Join(parts, " ")
	}
	msg := func(role, content string) datasets.Object {
		return datasets.Object{{Name: "role", Value: role}, {Name: "content", Value: content}}
	}
	var msgs []any
	if rng.IntN(3) == 0 {
		msgs = append(msgs, msg("system", pick(1, 2)))
	}
	for range 1 + rng.IntN(4) {
		msgs = append(msgs, msg("user", pick(1, 2)), msg("assistant", pick(2, 6)))
	}
	return msgs
}

// writeBenchRows writes n rows made by row to a RowsFormat file.
func writeBenchRows(b *testing.B, n int, row func(rng *rand.Rand) datasets.Object) string {
	path := filepath.Join(b.TempDir(), "rows.jsonl")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	var buf []byte
	for i := range n {
		buf = prompt.AppendRow(buf[:0], prompt.Row{Source: datasets.Source{File: "synthetic.jsonl", Line: i + 1, Row: i}, Fields: row(rng)})
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}

// BenchmarkPreprocessAlpaca: n alpaca rows (instruction = the user turns,
// output = the assistant turns of a synthetic conversation) through
// ReadRows, the strategy, the length policy, packing and the batch file,
// next to the raw tokenizer on the same text.
func BenchmarkPreprocessAlpaca(b *testing.B) {
	sentences := benchSentences(b)
	n := benchRows()
	path := writeBenchRows(b, n, func(rng *rand.Rand) datasets.Object {
		var ins, out []string
		for _, m := range synthConversation(rng, sentences) {
			o := m.(datasets.Object)
			role, _ := o.Get("role")
			content, _ := o.Get("content")
			if role == "assistant" {
				out = append(out, content.(string))
			} else {
				ins = append(ins, content.(string))
			}
		}
		return datasets.Object{{Name: "instruction", Value: strings.Join(ins, "\n")}, {Name: "input", Value: ""}, {Name: "output", Value: strings.Join(out, "\n")}}
	})
	runPreprocessBench(b, path, n, "sequence_len: 2048\nmicro_batch_size: 4\nsample_packing: true\ndatasets:\n  - path: synthetic.jsonl\n    type: alpaca\n")
}

// runPreprocessBench times Build (rows file → batch file) and, in turn
// with it, the raw tokenizer (EncodeBatch on all cores) over the same text:
// every sample decoded once, outside the timing. The machine is shared, so
// both report their best iteration (run with -benchtime Nx).
func runPreprocessBench(b *testing.B, path string, n int, yaml string) {
	tok := llama3(b)
	cfg := parseConfigTB(b, yaml)
	env := prompt.Env{TokenizerDir: testfixtures.Path(b, "tokenizers", "llama3")}
	src := RowsSource{
		Train:      func(context.Context) ([]prompt.Row, error) { return prompt.ReadRows(path) },
		Validation: func(context.Context) ([]prompt.Row, error) { return nil, nil },
		Test:       func(context.Context) ([]prompt.Row, error) { return nil, nil },
	}
	var texts []string
	keep := func(split string, _ []prompt.Row, t *Tokenized) {
		if texts == nil {
			for _, s := range t.Samples {
				texts = append(texts, tok.Decode(s.InputIDs, false))
			}
		}
	}
	var best, bestRaw time.Duration
	var ev events.DatasetTokenized
	rawTokens := 0
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		built, err := Build(context.Background(), cfg, tok, env, src, Settings{Keep: keep})
		if err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		built.Remove()
		ev = built.Event
		b.StopTimer()
		rawStart := time.Now()
		rawTokens = 0
		for _, ids := range tok.EncodeBatch(texts, false) {
			rawTokens += len(ids)
		}
		raw := time.Since(rawStart)
		b.StartTimer()
		if best == 0 || elapsed < best {
			best = elapsed
		}
		if bestRaw == 0 || raw < bestRaw {
			bestRaw = raw
		}
	}
	rate := float64(ev.Tokens) / best.Seconds()
	rawRate := float64(rawTokens) / bestRaw.Seconds()
	b.ReportMetric(float64(n)/best.Seconds(), "rows/s")
	b.ReportMetric(rate, "tokens/s")
	b.ReportMetric(rawRate, "raw-tokens/s")
	b.ReportMetric(rate/rawRate, "of-raw")
	b.ReportMetric(float64(ev.Tokens)/float64(n), "tokens/row")
	b.ReportMetric(ev.PackingEfficiency, "packing")
}

// BenchmarkPreprocessChat: n synthetic multi-turn conversations with the
// Llama-3 tokenizer's own chat template, every assistant turn trained.
func BenchmarkPreprocessChat(b *testing.B) {
	sentences := benchSentences(b)
	n := benchRows()
	path := writeBenchRows(b, n, func(rng *rand.Rand) datasets.Object {
		return datasets.Object{{Name: "messages", Value: synthConversation(rng, sentences)}}
	})
	runPreprocessBench(b, path, n, "sequence_len: 4096\nmicro_batch_size: 2\nsample_packing: true\neot_tokens: [\"<|eot_id|>\"]\ndatasets:\n  - path: synthetic.jsonl\n    type: chat_template\n")
}
