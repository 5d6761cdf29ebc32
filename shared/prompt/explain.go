package prompt

import (
	"fmt"
	"strings"

	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/tokenizer"
)

// ANSI colours of Axolotl's check_example_labels: red for masked tokens,
// yellow for a label of 0, green for trained ones, white for the ids.
const (
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiWhite  = "\x1b[37m"
	ansiReset  = "\x1b[0m"
)

// Explain renders a sample the way Axolotl's --debug does: every token's
// text followed by (label, id), a label of -100 meaning "not trained", then
// the counts. With color the token text is red when masked and green when
// trained (for a terminal); without, the labels alone mark them. Newlines
// and tabs inside tokens are shown escaped so that each sample stays one line.
func Explain(tok *tokenizer.Tokenizer, s packing.Sample, color bool) string {
	var b strings.Builder
	escape := strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`)
	trained := 0
	labelled := s.Check() == nil // else every label shows as -100
	for i, id := range s.InputIDs {
		label := int32(IgnoreIndex)
		if labelled {
			label = s.Label(i)
		}
		if label != IgnoreIndex {
			trained++
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		text := escape.Replace(tok.Decode([]int32{id}, false))
		if !color {
			fmt.Fprintf(&b, "%s(%d, %d)", text, label, id)
			continue
		}
		c := ansiGreen
		switch label {
		case IgnoreIndex:
			c = ansiRed
		case 0:
			c = ansiYellow
		}
		fmt.Fprintf(&b, "%s%s%s%s(%d, %d)%s", c, text, ansiReset, ansiWhite, label, id, ansiReset)
	}
	fmt.Fprintf(&b, "\nTotal input len: %d\nCount of labels: %d\n", len(s.InputIDs), trained)
	return b.String()
}
