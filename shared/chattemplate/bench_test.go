package chattemplate

import (
	"testing"
)

func benchConversation() []any {
	return []any{
		msg("role", "system", "content", "You are a helpful assistant."),
		msg("role", "user", "content", "What is the capital of France?"),
		msg("role", "assistant", "content", "The capital of France is Paris."),
		msg("role", "user", "content", "And of Germany? Answer in one word, please."),
		msg("role", "assistant", "content", "Berlin."),
		msg("role", "user", "content", "Thanks!"),
		msg("role", "assistant", "content", "You're welcome."),
	}
}

func benchTemplate(b *testing.B, name string) *Template {
	src, _ := Named(name)
	tpl, err := Compile(name, src)
	if err != nil {
		b.Fatal(err)
	}
	return tpl
}

// BenchmarkRender renders a 7-message conversation with a small (chatml)
// and a large (qwen3, 4 KB with reasoning logic) template.
func BenchmarkRender(b *testing.B) {
	for _, name := range []string{"chatml", "llama3", "qwen3"} {
		b.Run(name, func(b *testing.B) {
			tpl := benchTemplate(b, name)
			req := Request{Messages: benchConversation(), SpecialTokens: genericSpecials}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tpl.Render(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMessageSpans is Axolotl's per-turn search on the same
// conversation: two renders of each prefix.
func BenchmarkMessageSpans(b *testing.B) {
	tpl := benchTemplate(b, "qwen3")
	req := Request{Messages: benchConversation(), SpecialTokens: genericSpecials}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tpl.MessageSpans(req, TurnOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile parses the largest named template.
func BenchmarkCompile(b *testing.B) {
	src, _ := Named("command_a_rag")
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, err := Compile("command_a_rag", src); err != nil {
			b.Fatal(err)
		}
	}
}
