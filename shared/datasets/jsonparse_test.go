package datasets

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestStringScanAtEveryPosition puts each byte the string scanner must stop
// at (quote, backslash, control character) or check (non-ASCII, invalid
// UTF-8) at every position of strings around the eight-byte steps of its
// fast path, and holds the parser to encoding/json and utf8.Valid there.
func TestStringScanAtEveryPosition(t *testing.T) {
	for _, special := range []string{`\"`, `\\`, `\n`, `\u00e9`, "\x01", "\x1f", "\x7f", "é", "日", "\xff", "\xc3", "🐳"} {
		for n := 0; n <= 20; n++ {
			for at := 0; at <= n; at++ {
				body := strings.Repeat("a", at) + special + strings.Repeat("b", n-at)
				doc := `{"k":"` + body + `","n":1}`
				v, err := ParseJSONShared([]byte(doc))
				var want map[string]any
				stdErr := json.Unmarshal([]byte(doc), &want)
				if (err == nil) != (stdErr == nil && utf8.ValidString(doc)) {
					t.Fatalf("%q: parser error %v, encoding/json error %v (valid UTF-8: %v)", doc, err, stdErr, utf8.ValidString(doc))
				}
				if err != nil {
					continue
				}
				got, _ := v.(Object).Get("k")
				if got != want["k"] {
					t.Fatalf("%q: parsed %q, encoding/json %q", doc, got, want["k"])
				}
				if n, _ := v.(Object).Get("n"); n != int64(1) {
					t.Fatalf("%q: the member after the string is %v", doc, n)
				}
			}
		}
	}
}

// BenchmarkParseChatRow parses one row of a chat dataset with long contents
// (the rows the tokenizer stage reads: mostly prose, some quotes).
func BenchmarkParseChatRow(b *testing.B) {
	prose := strings.Repeat("Call me Ishmael. Some years ago, never mind how long precisely, having little money in my purse. ", 8)
	row := []byte(`{"messages":[{"role":"system","content":"` + prose + `"},{"role":"user","content":"` + prose + `\"quoted\""},{"role":"assistant","content":"` + prose + prose + `"}]}`)
	b.SetBytes(int64(len(row)))
	for b.Loop() {
		if _, err := ParseJSONShared(row); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendChatRow: the canonical encoding of a chat row (as the
// ingest stage writes its rows), prose with a few non-ASCII characters.
func BenchmarkAppendChatRow(b *testing.B) {
	prose := strings.Repeat("Call me Ishmael. Some years ago—never mind how long precisely—having little money in my purse. ", 8)
	row, err := ParseJSONShared([]byte(`{"messages":[{"role":"system","content":"` + prose + `"},{"role":"user","content":"` + prose + `\"quoted\"\n"},{"role":"assistant","content":"` + prose + prose + `"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	var out []byte
	for b.Loop() {
		out = AppendJSON(out[:0], row)
	}
	b.SetBytes(int64(len(out)))
}
