package tokenizer

import (
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// benchText is a large public-domain text, split into paragraphs. Set
// EFT_TOKENIZER_BENCH_TEXT to a file (docs/tokenizer.md says how to get
// Moby Dick from npm); the benchmarks skip without it.
func benchText(b *testing.B) []string {
	path := os.Getenv("EFT_TOKENIZER_BENCH_TEXT")
	if path == "" {
		b.Skip("set EFT_TOKENIZER_BENCH_TEXT to a large text file (see docs/tokenizer.md)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var paras []string
	for _, p := range strings.Split(string(data), "\n\n") {
		if strings.TrimSpace(p) != "" {
			paras = append(paras, p)
		}
	}
	return paras
}

func countTokens(tok *Tokenizer, paras []string) int {
	n := 0
	for _, p := range paras {
		n += len(tok.Encode(p, false))
	}
	return n
}

func benchEncode(b *testing.B, name string, parallel bool) {
	paras := benchText(b)
	tok := loadTestTokenizer(b, name)
	tokens := countTokens(tok, paras) // also warms the word caches
	bytes := 0
	for _, p := range paras {
		bytes += len(p)
	}
	b.SetBytes(int64(bytes))
	b.ResetTimer()
	for b.Loop() {
		if parallel {
			tok.EncodeBatch(paras, false)
			continue
		}
		var ids []int32
		for _, p := range paras {
			ids = tok.AppendEncode(ids[:0], p, false)
		}
	}
	b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkEncodeLlama3OneCore(b *testing.B)  { benchEncode(b, "llama3", false) }
func BenchmarkEncodeLlama3AllCores(b *testing.B) { benchEncode(b, "llama3", true) }
func BenchmarkEncodeQwen3OneCore(b *testing.B)   { benchEncode(b, "qwen3", false) }
func BenchmarkEncodeQwen3AllCores(b *testing.B)  { benchEncode(b, "qwen3", true) }
func BenchmarkEncodeMistralOneCore(b *testing.B) { benchEncode(b, "mistral_v01", false) }
func BenchmarkEncodeMistralAllCores(b *testing.B) {
	benchEncode(b, "mistral_v01", true)
}

// BenchmarkLoadLlama3 measures loading the 128k-token, 280k-merge Llama-3
// tokenizer from tokenizer.json (already in memory).
func BenchmarkLoadLlama3(b *testing.B) {
	data := testfixtures.ReadGzip(b, testfixtures.Path(b, "tokenizers", "llama3", "tokenizer.json.gz"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := New(data, "tokenizer.json", nil, ""); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLoadLlama3Allocation: loading Llama-3's tokenizer allocates less than
// 100 MB in total and keeps less than that live.
func TestLoadLlama3Allocation(t *testing.T) {
	data := testfixtures.ReadGzip(t, testfixtures.Path(t, "tokenizers", "llama3", "tokenizer.json.gz"))
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	tok, err := New(data, "tokenizer.json", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	total := after.TotalAlloc - before.TotalAlloc
	live := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("load allocated %.1f MB, %.1f MB live", float64(total)/1e6, float64(live)/1e6)
	if total > 100e6 || live > 100e6 {
		t.Fatalf("load allocated %.1f MB (%.1f MB live), want under 100 MB", float64(total)/1e6, float64(live)/1e6)
	}
	runtime.KeepAlive(tok)
}

// TestEncodeHotPathDoesNotAllocate: with a reused buffer and warm caches,
// encoding allocates nothing (the data pipeline encodes millions of rows).
func TestEncodeHotPathDoesNotAllocate(t *testing.T) {
	text := "The quick brown fox jumps over the lazy dog. It's 2024 — naïve café, 日本語!\n\n  def f(x): return x"
	for _, name := range []string{"llama3", "qwen3", "mistral_v01", "gpt2_reconstructed"} {
		tok := loadTestTokenizer(t, name)
		buf := tok.AppendEncode(nil, text, true)
		allocs := testing.AllocsPerRun(100, func() {
			buf = tok.AppendEncode(buf[:0], text, true)
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per Encode", name, allocs)
		}
	}
}

// benchVaried encodes the 2715 conformance strings (all scripts, emoji,
// code, random code points, long inputs) with the word caches emptied
// before every pass: the cost of text never seen before. Compare with
// gen/bench.mjs on the same file.
func benchVaried(b *testing.B, name string, parallel bool) {
	texts := readJSONLines[string](b, testfixtures.Path(b, "tokenizers", "expected", "strings.jsonl.gz"))
	tok := loadTestTokenizer(b, name)
	tokens := countTokens(tok, texts)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		tok.free = make(chan *encoder, cap(tok.free)) // cold caches
		b.StartTimer()
		if parallel {
			tok.EncodeBatch(texts, false)
			continue
		}
		var ids []int32
		for _, s := range texts {
			ids = tok.AppendEncode(ids[:0], s, false)
		}
	}
	b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkVariedLlama3OneCore(b *testing.B)   { benchVaried(b, "llama3", false) }
func BenchmarkVariedLlama3AllCores(b *testing.B)  { benchVaried(b, "llama3", true) }
func BenchmarkVariedMistralOneCore(b *testing.B)  { benchVaried(b, "mistral_v01", false) }
func BenchmarkVariedMistralAllCores(b *testing.B) { benchVaried(b, "mistral_v01", true) }
