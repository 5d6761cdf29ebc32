package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus/bustest"
	"github.com/eftml/eft/shared/config"
	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/prompt"
	"github.com/eftml/eft/shared/testfixtures"
)

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	base := "base_model: m\nlearning_rate: 1e-4\nmicro_batch_size: 1\ngradient_accumulation_steps: 1\n"
	cfg, _, err := config.Parse("t.yml", []byte(base+yaml), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestIngestMergesInConfigOrderAndTagsDatasets(t *testing.T) {
	dir := testfixtures.Path(t, "pipeline")
	cfg := parse(t, `datasets:
  - path: alpaca.jsonl
    type: alpaca
  - path: notes.txt
    type: completion
  - path: alpaca.jsonl
    type: alpaca
test_datasets:
  - path: notes.txt
    type: completion
val_set_size: 0
seed: 7
dataset_exact_deduplication: true
`)
	res, err := Ingest(context.Background(), cfg, dir, datasets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Every row, duplicates included, in config order: Axolotl shuffles,
	// deduplicates and splits tokenized samples, so the tokenizer does.
	if len(res.Train) != 85 || len(res.Test) != 5 {
		t.Fatalf("train %d, test %d", len(res.Train), len(res.Test))
	}
	for i, r := range res.Train {
		wantDataset, wantRow, wantFile := 0, i, "alpaca.jsonl"
		switch {
		case i >= 45:
			wantDataset, wantRow = 2, i-45
		case i >= 40:
			wantDataset, wantRow, wantFile = 1, i-40, "notes.txt"
		}
		if r.Dataset != wantDataset || r.Source.Row != wantRow || filepath.Base(r.Source.File) != wantFile {
			t.Fatalf("row %d is %v of dataset %d, want row %d of %s (dataset %d)", i, r.Source, r.Dataset, wantRow, wantFile, wantDataset)
		}
		if _, ok := r.Fields.Get("output"); ok == (wantDataset == 1) {
			t.Fatalf("row %d has the fields of another dataset: %v", i, r.Fields)
		}
	}
	for i, r := range res.Test {
		if r.Dataset != 0 || r.Source.Row != i || filepath.Base(r.Source.File) != "notes.txt" {
			t.Fatalf("test row %d is %v of dataset %d", i, r.Source, r.Dataset)
		}
	}
	if len(res.Sources) != 4 || res.Sources[0].Rows != 40 || res.Sources[1].Rows != 5 || res.Sources[1].Type != "completion" || res.Sources[3].Rows != 5 {
		t.Fatalf("sources %+v", res.Sources)
	}
	var names []string
	for _, f := range res.Schema {
		names = append(names, f.Name+":"+f.Type)
	}
	if strings.Join(names, ",") != "instruction:string,input:string,output:string,text:string" {
		t.Fatalf("schema %v", names)
	}
}

func TestIngestReportsBadRows(t *testing.T) {
	dir := testfixtures.Path(t, "pipeline")
	cfg := parse(t, "datasets:\n  - path: bad.jsonl\n    type: alpaca\n")
	_, err := Ingest(context.Background(), cfg, dir, datasets.Options{})
	if err == nil {
		t.Fatal("3 bad rows of 10 were accepted")
	}
	for _, want := range []string{"datasets[0] (bad.jsonl)", "bad.jsonl:4", "bad.jsonl:6", "output"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	res, err := Ingest(context.Background(), cfg, dir, datasets.Options{SkipBadRows: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Train) != 7 || res.Rejected != 3 || len(res.RejectedSamples) != 3 {
		t.Fatalf("rows %d, rejected %d %+v", len(res.Train), res.Rejected, res.RejectedSamples)
	}
	got := res.RejectedSamples[1]
	if filepath.Base(got.File) != "bad.jsonl" || got.Line != 6 || !strings.Contains(got.Reason, `"output"`) {
		t.Fatalf("rejected %+v", got)
	}

	cfg = parse(t, "datasets:\n  - path: missing.jsonl\n    type: alpaca\n")
	if _, err := Ingest(context.Background(), cfg, dir, datasets.Options{}); err == nil || !strings.Contains(err.Error(), "missing.jsonl") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestRowsRoundTrip(t *testing.T) {
	dir := testfixtures.Path(t, "pipeline")
	cfg := parse(t, "datasets:\n  - path: alpaca.jsonl\n    type: alpaca\n  - path: notes.txt\n    type: completion\n")
	res, err := Ingest(context.Background(), cfg, dir, datasets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rows.bin")
	var data []byte
	for _, r := range res.Train {
		data = prompt.AppendRow(data, r)
	}
	writeFile(t, path, data)
	stored, err := prompt.ReadRows(path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := stored.All()
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(res.Train) {
		t.Fatalf("%d rows back of %d", len(back), len(res.Train))
	}
	for i := range back {
		a, b := back[i], res.Train[i]
		if a.Dataset != b.Dataset || a.Source != b.Source || string(datasets.AppendJSON(nil, a.Fields)) != string(datasets.AppendJSON(nil, b.Fields)) {
			t.Fatalf("row %d: %+v != %+v", i, a, b)
		}
	}
	// A file cut short names its last row.
	writeFile(t, path, data[:len(data)-1])
	if stored, err = prompt.ReadRows(path); err != nil {
		t.Fatal(err)
	}
	if _, err := stored.All(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("rows.bin: row %d (byte ", len(back)-1)) || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("damaged rows: %v", err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// putSplit streams the rows' encoding into the store: what is stored is
// exactly AppendRow of every row, and a store that fills up mid-upload
// fails the call (naming the full store) instead of leaving the encoder
// blocked on its pipe.
func TestPutSplitStreamsTheRows(t *testing.T) {
	b, _ := bustest.New(t)
	ctx := t.Context()
	store := artifactstest.Open(t, b.JetStream(), "")
	var rows Split
	var want []byte
	for i := range 20000 {
		r := prompt.Row{Source: datasets.Source{File: "chat.jsonl", Line: i + 1, Row: i},
			Fields: datasets.Object{{Name: "text", Value: strings.Repeat("row ", 1+i%50)}}}
		rows = append(rows, r)
		want = prompt.AppendRow(want, r)
	}
	ref, err := putSplit(ctx, store, rows)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := store.Get(ctx, ref, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("stored %d bytes, want the rows' %d", got.Len(), len(want))
	}

	bustest.CapStream(t, b, "OBJ_"+artifacts.DefaultBucket, 64<<10)
	rows[0].Fields = datasets.Object{{Name: "text", Value: "changed, so not already stored"}}
	if _, err := putSplit(ctx, store, rows); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("a full store: %v", err)
	}
}
