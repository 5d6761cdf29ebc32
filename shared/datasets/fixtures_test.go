package datasets

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/parquet-go/parquet-go"

	"github.com/eftml/eft/shared/testfixtures"
)

// The binary fixtures (.parquet, .arrow, save_to_disk folders) under
// testdata/datasets are written by this generator:
//
//	go test ./shared/datasets -run TestGenerateFixtures -update-fixtures
//
// The tests below read the checked-in files and compare them with the same
// Go values the generator writes.
var updateFixtures = flag.Bool("update-fixtures", false, "rewrite the binary fixtures in testdata/datasets")

type fixtureMessage struct {
	Role    string `parquet:"role"`
	Content string `parquet:"content"`
}

type fixtureChat struct {
	Messages []fixtureMessage `parquet:"messages,list"`
	ID       int64            `parquet:"id"`
	Score    *float64         `parquet:"score,optional"`
}

var fixtureScore = 0.75

var fixtureChats = []fixtureChat{
	{Messages: []fixtureMessage{{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}}, ID: 1, Score: &fixtureScore},
	{Messages: []fixtureMessage{{"user", "2+2?"}, {"assistant", "4"}}, ID: 2},
}

// fixtureChatJSON is fixtureChats as the rows the reader must produce.
const fixtureChatJSON = `{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}],"id":1,"score":0.75}
{"messages":[{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"}],"id":2,"score":null}`

// Arrow fixtures: one record batch per row group of three rows, with a list,
// a struct and a null.
var fixtureArrowSchema = arrow.NewSchema([]arrow.Field{
	{Name: "instruction", Type: arrow.BinaryTypes.String},
	{Name: "output", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ids", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	{Name: "meta", Type: arrow.StructOf(
		arrow.Field{Name: "source", Type: arrow.BinaryTypes.String},
		arrow.Field{Name: "n", Type: arrow.PrimitiveTypes.Int64},
	)},
}, &arrow.Metadata{})

const fixtureArrowJSON = `{"instruction":"Name a colour.","output":"Red.","ids":[1,2,3],"meta":{"source":"hand","n":1}}
{"instruction":"Say hi","output":null,"ids":[],"meta":{"source":"hand","n":2}}
{"instruction":"Écris 👋","output":"ok","ids":[42],"meta":{"source":"gen","n":3}}`

func fixtureArrowBatches() []arrow.RecordBatch {
	var rows []map[string]any
	for _, line := range splitLines(fixtureArrowJSON) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			panic(err)
		}
		rows = append(rows, m)
	}
	var batches []arrow.RecordBatch
	for _, group := range [][]map[string]any{rows[:2], rows[2:]} {
		b := array.NewRecordBuilder(memory.DefaultAllocator, fixtureArrowSchema)
		for _, r := range group {
			b.Field(0).(*array.StringBuilder).Append(r["instruction"].(string))
			if out, ok := r["output"].(string); ok {
				b.Field(1).(*array.StringBuilder).Append(out)
			} else {
				b.Field(1).AppendNull()
			}
			lb := b.Field(2).(*array.ListBuilder)
			lb.Append(true)
			for _, id := range r["ids"].([]any) {
				lb.ValueBuilder().(*array.Int32Builder).Append(int32(id.(float64)))
			}
			sb := b.Field(3).(*array.StructBuilder)
			sb.Append(true)
			meta := r["meta"].(map[string]any)
			sb.FieldBuilder(0).(*array.StringBuilder).Append(meta["source"].(string))
			sb.FieldBuilder(1).(*array.Int64Builder).Append(int64(meta["n"].(float64)))
		}
		batches = append(batches, b.NewRecordBatch())
		b.Release()
	}
	return batches
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func writeArrowStream(t *testing.T, path string, batches []arrow.RecordBatch) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := ipc.NewWriter(f, ipc.WithSchema(batches[0].Schema()))
	for _, b := range batches {
		if err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// The JSON files datasets.save_to_disk writes next to the Arrow data.
const fixtureDatasetInfo = `{
  "citation": "",
  "description": "",
  "features": {
    "instruction": {"dtype": "string", "_type": "Value"},
    "output": {"dtype": "string", "_type": "Value"},
    "ids": {"feature": {"dtype": "int32", "_type": "Value"}, "_type": "Sequence"},
    "meta": {"source": {"dtype": "string", "_type": "Value"}, "n": {"dtype": "int64", "_type": "Value"}}
  },
  "homepage": "",
  "license": ""
}
`

func fixtureState(split string) string {
	s := "null"
	if split != "" {
		s = `"` + split + `"`
	}
	return `{
  "_data_files": [
    {
      "filename": "data-00000-of-00001.arrow"
    }
  ],
  "_fingerprint": "5f1d1c0e2b8f4a33",
  "_format_columns": null,
  "_format_kwargs": {},
  "_format_type": null,
  "_output_all_columns": false,
  "_split": ` + s + `
}
`
}

func TestGenerateFixtures(t *testing.T) {
	if !*updateFixtures {
		t.Skip("run with -update-fixtures to rewrite the binary fixtures")
	}
	dir := testfixtures.Path(t, "datasets")
	write := func(rel, content string) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Parquet: chat rows.
	f, err := os.Create(filepath.Join(dir, "chat.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	if err := parquet.Write(f, fixtureChats); err != nil {
		t.Fatal(err)
	}
	f.Close()

	batches := fixtureArrowBatches()
	// A single .arrow stream file, as load_dataset("arrow", data_files=...) reads.
	writeArrowStream(t, filepath.Join(dir, "rows.arrow"), batches)
	// The random-access Arrow file format.
	ff, err := os.Create(filepath.Join(dir, "rows-file-format.arrow"))
	if err != nil {
		t.Fatal(err)
	}
	fw, err := ipc.NewFileWriter(ff, ipc.WithSchema(fixtureArrowSchema))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := fw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	ff.Close()

	// Dataset.save_to_disk layout.
	write("saved/dataset_info.json", fixtureDatasetInfo)
	write("saved/state.json", fixtureState(""))
	writeArrowStream(t, filepath.Join(dir, "saved", "data-00000-of-00001.arrow"), batches)
	// DatasetDict.save_to_disk layout: train gets the first batch, test the second.
	write("saved_dict/dataset_dict.json", `{"splits": ["train", "test"]}`+"\n")
	for i, split := range []string{"train", "test"} {
		write("saved_dict/"+split+"/dataset_info.json", fixtureDatasetInfo)
		write("saved_dict/"+split+"/state.json", fixtureState(split))
		writeArrowStream(t, filepath.Join(dir, "saved_dict", split, "data-00000-of-00001.arrow"), batches[i:i+1])
	}
}
