package config

import (
	"os"
	"testing"
)

// BenchmarkParse measures reading one realistic config (chat-template.yml:
// three datasets, legacy keys folded) and writing it back out.
func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile(configPath(b, "chat-template.yml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, _, err := Parse("chat-template.yml", data, []string{"--learning-rate", "1e-4"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.YAML(); err != nil {
			b.Fatal(err)
		}
	}
}
