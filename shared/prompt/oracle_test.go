package prompt

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/shared/tokenizer"
)

// The expected ids of these tests are built from pieces the Hugging Face
// tokenizers library produced (testdata/prompt/oracle/<tokenizer>.jsonl,
// made with ../shared/tools/oracle/tokenize.mjs: see testdata/prompt/README.md),
// put together the way Axolotl's strategies put them together, written out
// in each test. -record-oracle-texts writes the texts the tests ask for to
// testdata/prompt/oracle/input.jsonl instead of checking anything.
var recordOracle = flag.Bool("record-oracle-texts", false, "write the texts the tests need oracle ids for")

var (
	recordMu sync.Mutex
	recorded = map[string]bool{}
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if *recordOracle {
		texts := make([]string, 0, len(recorded))
		for s := range recorded {
			texts = append(texts, s)
		}
		sort.Strings(texts)
		f, err := os.Create(filepath.Join("..", "..", "testdata", "prompt", "oracle", "input.jsonl"))
		if err != nil {
			panic(err)
		}
		for _, s := range texts {
			line, _ := json.Marshal(map[string]string{"text": s})
			f.Write(append(line, '\n'))
		}
		f.Close()
	}
	os.Exit(code)
}

type oracleIDs struct {
	Text       string  `json:"text"`
	IDs        []int32 `json:"ids"`
	IDsSpecial []int32 `json:"ids_special"`
}

// oracle holds one tokenizer's reference ids by text.
type oracle struct {
	name string
	tok  *tokenizer.Tokenizer
	ids  map[string]oracleIDs
}

var (
	oracleMu    sync.Mutex
	oracleCache = map[string]*oracle{}
)

func loadOracle(t *testing.T, name string) *oracle {
	t.Helper()
	oracleMu.Lock()
	defer oracleMu.Unlock()
	if o, ok := oracleCache[name]; ok {
		return o
	}
	tok, err := tokenizer.Load(testfixtures.Path(t, "tokenizers", name))
	if err != nil {
		t.Fatal(err)
	}
	o := &oracle{name: name, tok: tok, ids: map[string]oracleIDs{}}
	if f, err := os.Open(testfixtures.Path(t, "prompt", "oracle", name+".jsonl")); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<24)
		for sc.Scan() {
			var r oracleIDs
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			o.ids[r.Text] = r
		}
		f.Close()
	} else if !*recordOracle {
		t.Fatal(err)
	}
	oracleCache[name] = o
	return o
}

// encode is the oracle's ids for text, with the post-processor's special
// tokens when special (HF's add_special_tokens).
func (o *oracle) encode(t *testing.T, text string, special bool) []int32 {
	t.Helper()
	if *recordOracle {
		recordMu.Lock()
		recorded[text] = true
		recordMu.Unlock()
		return o.tok.Encode(text, special)
	}
	r, ok := o.ids[text]
	if !ok {
		t.Fatalf("%s: no oracle ids for %q: regenerate testdata/prompt/oracle (see its README)", o.name, text)
	}
	if special {
		return r.IDsSpecial
	}
	return r.IDs
}

// loadFresh loads a tokenizer that a test may change.
func loadFresh(t testing.TB, name string) (*tokenizer.Tokenizer, error) {
	return tokenizer.Load(testfixtures.Path(t, "tokenizers", name))
}
