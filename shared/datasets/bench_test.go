package datasets

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkReadJSONL reads 100k chat rows of JSON lines.
func BenchmarkReadJSONL(b *testing.B) {
	dir := b.TempDir()
	var sb strings.Builder
	for i := 0; i < 100_000; i++ {
		fmt.Fprintf(&sb, `{"messages": [{"role": "user", "content": "Question number %d about the weather in Paris?"}, {"role": "assistant", "content": "Answer %d: it is mild, with a chance of rain in the afternoon."}], "id": %d}`+"\n", i, i, i)
	}
	path := filepath.Join(dir, "chat.jsonl")
	os.WriteFile(path, []byte(sb.String()), 0o644)
	b.SetBytes(int64(sb.Len()))
	b.ResetTimer()
	for b.Loop() {
		rows, _, err := ReadFile(path, "", nil)
		if err != nil || len(rows) != 100_000 {
			b.Fatal(err)
		}
	}
	b.ReportMetric(100_000*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
