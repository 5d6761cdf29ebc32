package tokenizer

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// loadCache keeps each test tokenizer loaded once per test binary.
var loadCache sync.Map

func loadTestTokenizer(t testing.TB, name string) *Tokenizer {
	t.Helper()
	if tok, ok := loadCache.Load(name); ok {
		return tok.(*Tokenizer)
	}
	tok, err := Load(testfixtures.Path(t, "tokenizers", name))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	loadCache.Store(name, tok)
	return tok
}

// oracleFile is shared/fixtures/tokenizers/oracle/oracle_*.json: what the
// Hugging Face tokenizers library gives for the two trained tokenizers.
type oracleFile struct {
	Name   string `json:"name"`
	Encode []struct {
		Text           string   `json:"text"`
		IDs            []int32  `json:"ids"`
		IDsWithSpecial []int32  `json:"ids_with_special"`
		Offsets        [][2]int `json:"offsets"`
		Decoded        string   `json:"decoded"`
	} `json:"encode"`
}

func TestOracleTrainedTokenizers(t *testing.T) {
	for _, name := range []string{"tok-bytelevel", "tok-sentencepiece"} {
		t.Run(name, func(t *testing.T) {
			tok := loadTestTokenizer(t, name)
			var of oracleFile
			data := testfixtures.ReadGzip(t, testfixtures.Path(t, "tokenizers", "oracle", "oracle_"+name+".json.gz"))
			if err := json.Unmarshal(data, &of); err != nil {
				t.Fatal(err)
			}
			if len(of.Encode) < 100 {
				t.Fatalf("only %d oracle cases", len(of.Encode))
			}
			for i, c := range of.Encode {
				ids := tok.Encode(c.Text, false)
				if !slices.Equal(ids, c.IDs) {
					t.Errorf("case %d %q: ids\n got  %v\n want %v", i, c.Text, ids, c.IDs)
					continue
				}
				if got := tok.Encode(c.Text, true); !slices.Equal(got, c.IDsWithSpecial) {
					t.Errorf("case %d %q: ids with special\n got  %v\n want %v", i, c.Text, got, c.IDsWithSpecial)
				}
				enc := tok.EncodeOffsets(c.Text, false)
				if !slices.Equal(enc.IDs, c.IDs) {
					t.Errorf("case %d %q: EncodeOffsets ids differ from Encode", i, c.Text)
				}
				chars := CharOffsets(c.Text, enc.Offsets)
				want := make([]Offset, len(c.Offsets))
				for k, o := range c.Offsets {
					want[k] = Offset{o[0], o[1]}
				}
				if !slices.Equal(chars, want) {
					t.Errorf("case %d %q: offsets\n got  %v\n want %v", i, c.Text, chars, want)
				}
				if got := tok.Decode(c.IDs, false); got != c.Decoded {
					t.Errorf("case %d %q: decode\n got  %q\n want %q", i, c.Text, got, c.Decoded)
				}
			}
		})
	}
}
