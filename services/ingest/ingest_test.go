package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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

func TestIngestMergesSplitsAndTagsDatasets(t *testing.T) {
	dir := testfixtures.Path(t, "pipeline")
	cfg := parse(t, `datasets:
  - path: alpaca.jsonl
    type: alpaca
  - path: notes.txt
    type: completion
val_set_size: 0.1
seed: 7
`)
	res, err := Ingest(context.Background(), cfg, dir, datasets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 45 rows, ceil(4.5) = 5 held out, the last ones of the shuffled merge.
	if len(res.Train) != 40 || len(res.Validation) != 5 || len(res.Test) != 0 {
		t.Fatalf("train %d, validation %d, test %d", len(res.Train), len(res.Validation), len(res.Test))
	}
	counts := map[int]int{}
	for _, r := range append(slices.Clone(res.Train), res.Validation...) {
		counts[r.Dataset]++
		// Every row goes to the strategy of the file it came from.
		want := 0
		if strings.HasSuffix(r.Source.File, "notes.txt") {
			want = 1
			if _, ok := r.Fields.Get("text"); !ok {
				t.Fatalf("completion row without text: %v", r)
			}
		}
		if r.Dataset != want {
			t.Fatalf("row %v tagged with dataset %d", r.Source, r.Dataset)
		}
	}
	if counts[0] != 40 || counts[1] != 5 {
		t.Fatalf("rows per dataset %v", counts)
	}
	if res.Sources[0].Rows != 40 || res.Sources[1].Rows != 5 || res.Sources[1].Type != "completion" {
		t.Fatalf("sources %+v", res.Sources)
	}
	var names []string
	for _, f := range res.Schema {
		names = append(names, f.Name+":"+f.Type)
	}
	if strings.Join(names, ",") != "instruction:string,input:string,output:string,text:string" {
		t.Fatalf("schema %v", names)
	}
	// Shuffled with the seed: the same again, another order with another seed.
	again, _ := Ingest(context.Background(), cfg, dir, datasets.Options{})
	cfg.Seed = 8
	other, _ := Ingest(context.Background(), cfg, dir, datasets.Options{})
	if fmt.Sprint(sources(again.Train)) != fmt.Sprint(sources(res.Train)) || fmt.Sprint(sources(other.Train)) == fmt.Sprint(sources(res.Train)) {
		t.Fatal("the merge order does not follow the seed")
	}
}

func sources(rows Split) []datasets.Source {
	out := make([]datasets.Source, len(rows))
	for i, r := range rows {
		out[i] = r.Source
	}
	return out
}

func TestIngestKeepsOrderDedupsAndReadsTestDatasets(t *testing.T) {
	dir := testfixtures.Path(t, "pipeline")
	cfg := parse(t, `datasets:
  - path: alpaca.jsonl
    type: alpaca
  - path: alpaca.jsonl
    type: alpaca
test_datasets:
  - path: notes.txt
    type: completion
shuffle_merged_datasets: false
dataset_exact_deduplication: true
`)
	res, err := Ingest(context.Background(), cfg, dir, datasets.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Train) != 40 || res.Duplicates != 40 || len(res.Test) != 5 {
		t.Fatalf("train %d (dups %d), test %d", len(res.Train), res.Duplicates, len(res.Test))
	}
	for i, r := range res.Train {
		if r.Source.Row != i || r.Dataset != 0 {
			t.Fatalf("row %d is %v of dataset %d: order not kept", i, r.Source, r.Dataset)
		}
	}
	if res.Test[0].Dataset != 0 || !strings.HasSuffix(res.Test[0].Source.File, "notes.txt") {
		t.Fatalf("test rows %+v", res.Test[0])
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
	path := filepath.Join(t.TempDir(), "rows.jsonl")
	var data []byte
	for _, r := range res.Train {
		data = prompt.AppendRow(data, r)
	}
	writeFile(t, path, data)
	back, err := prompt.ReadRows(path)
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
	writeFile(t, path, []byte(`{"dataset":0,"file":"x","line":1,"row":0,"fields":{}}`+"\n"+`{"dataset":"zero","file":"x","fields":{}}`+"\n"))
	if _, err := prompt.ReadRows(path); err == nil || !strings.Contains(err.Error(), `rows.jsonl:2: "dataset" is string`) {
		t.Fatalf("damaged rows: %v", err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}
