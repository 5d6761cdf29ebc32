package datasets

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, spec Spec, opts Options) *Dataset {
	t.Helper()
	ds, err := Load(context.Background(), spec, opts)
	if err != nil {
		t.Fatalf("Load(%+v): %v", spec, err)
	}
	return ds
}

func TestLoadSavedToDisk(t *testing.T) {
	ds := load(t, Spec{Path: fixture(t, "saved")}, Options{})
	if got := rowsJSON(ds.Rows); got != fixtureArrowJSON {
		t.Fatalf("rows:\n%s", got)
	}
	if ds.Split != "train" {
		t.Errorf("split = %q", ds.Split)
	}

	dict := fixture(t, "saved_dict")
	train := load(t, Spec{Path: dict}, Options{})
	if train.Split != "train" || len(train.Rows) != 2 || !slices.Equal(train.Splits, []string{"test", "train"}) {
		t.Fatalf("default split: %q %d rows, splits %v", train.Split, len(train.Rows), train.Splits)
	}
	test := load(t, Spec{Path: dict, Split: "test"}, Options{})
	if got := rowsJSON(test.Rows); got != splitLines(fixtureArrowJSON)[2] {
		t.Errorf("test rows:\n%s", got)
	}
	// test_datasets read the "test" split by default; train_on_split picks too.
	if ds := load(t, Spec{Path: dict}, Options{DefaultSplit: "test"}); ds.Split != "test" {
		t.Errorf("DefaultSplit test read %q", ds.Split)
	}
	if ds := load(t, Spec{Path: dict, TrainOnSplit: "test"}, Options{}); ds.Split != "test" {
		t.Errorf("train_on_split test read %q", ds.Split)
	}
	_, err := Load(context.Background(), Spec{Path: dict, Split: "validation"}, Options{})
	if err == nil || !strings.Contains(err.Error(), `split "validation" not found (splits: [test train])`) {
		t.Errorf("missing split error = %v", err)
	}
}

func TestLoadFolderSplitsByName(t *testing.T) {
	dir := fixture(t, "folder")
	ds := load(t, Spec{Path: dir}, Options{})
	if got := rowsJSON(ds.Rows); got != `{"text":"train one"}
{"text":"train two"}` {
		t.Fatalf("train rows:\n%s", got)
	}
	if !slices.Equal(ds.Splits, []string{"test", "train"}) {
		t.Errorf("splits = %v (hidden and non-data files must be skipped)", ds.Splits)
	}
	if ds := load(t, Spec{Path: dir, Split: "test"}, Options{}); len(ds.Rows) != 1 {
		t.Errorf("test split has %d rows", len(ds.Rows))
	}
	// data_files name files inside the folder; everything lands in train.
	ds = load(t, Spec{Path: dir, DataFiles: []string{"test.jsonl"}}, Options{})
	if got := rowsJSON(ds.Rows); got != `{"text":"test one"}` {
		t.Errorf("data_files rows:\n%s", got)
	}
	ds = load(t, Spec{Path: dir, DataFiles: []string{"*.jsonl"}}, Options{})
	if len(ds.Rows) != 3 {
		t.Errorf("glob data_files read %d rows, want 3", len(ds.Rows))
	}
	_, err := Load(context.Background(), Spec{Path: dir, DataFiles: []string{"../alpaca.jsonl"}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "outside the dataset") {
		t.Errorf("escaping data_files error = %v", err)
	}
}

func TestLoadFolderWithCardConfigs(t *testing.T) {
	dir := fixture(t, "card")
	ds := load(t, Spec{Path: dir}, Options{})
	if got := rowsJSON(ds.Rows); got != `{"text":"short a"}
{"text":"short b"}` {
		t.Fatalf("default config train rows:\n%s", got)
	}
	long := load(t, Spec{Path: dir, Name: "long"}, Options{})
	if len(long.Rows) != 2 || !slices.Equal(long.Splits, []string{"train"}) {
		t.Errorf("config long: %d rows, splits %v", len(long.Rows), long.Splits)
	}
	_, err := Load(context.Background(), Spec{Path: dir, Name: "medium"}, Options{})
	if err == nil || !strings.Contains(err.Error(), `config name "medium" not found; the dataset has [short long]`) {
		t.Errorf("unknown config error = %v", err)
	}
}

func TestDefaultSplitPatterns(t *testing.T) {
	files := []string{"README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet", "data/validation-00000-of-00001.parquet"}
	got := defaultSplits(files)
	if len(got) != 2 || len(got["train"]) != 2 || len(got["validation"]) != 1 {
		t.Errorf("sharded: %v", got)
	}
	got = defaultSplits([]string{"my_train.jsonl", "dev-set.jsonl", "eval/x.jsonl", "other.jsonl"})
	// Directory names win over file names: only eval/ matches at that level.
	if len(got) != 1 || !slices.Equal(got["test"], []string{"eval/x.jsonl"}) {
		t.Errorf("dir keywords: %v", got)
	}
	got = defaultSplits([]string{"my_train.jsonl", "dev-set.jsonl", "other.jsonl", "trainer.jsonl"})
	if !slices.Equal(got["train"], []string{"my_train.jsonl"}) || !slices.Equal(got["validation"], []string{"dev-set.jsonl"}) {
		t.Errorf("file keywords: %v", got)
	}
	got = defaultSplits([]string{"a.jsonl", "b.jsonl"})
	if !slices.Equal(got["train"], []string{"a.jsonl", "b.jsonl"}) {
		t.Errorf("no keywords: %v", got)
	}
}

func TestRootConfinesLocalPaths(t *testing.T) {
	root := fixture(t, "folder")
	if _, err := Load(context.Background(), Spec{Path: fixture(t, "alpaca.jsonl")}, Options{Root: root}); err == nil || !strings.Contains(err.Error(), "outside the allowed dataset root") {
		t.Errorf("path outside root: %v", err)
	}
	load(t, Spec{Path: filepath.Join(root, "train.jsonl")}, Options{Root: root})

	// A symlink inside the root that points out of it is refused too.
	dir := t.TempDir()
	outside := writeFile(t, t.TempDir(), "secret.jsonl", `{"text": "secret"}`+"\n")
	link := filepath.Join(dir, "data.jsonl")
	if err := os.Symlink(outside, link); err != nil {
		t.Skip("symlinks unsupported:", err)
	}
	if _, err := Load(context.Background(), Spec{Path: link}, Options{Root: dir}); err == nil || !strings.Contains(err.Error(), "outside the allowed dataset root") {
		t.Errorf("symlink escaping root: %v", err)
	}
	if _, err := Load(context.Background(), Spec{Path: dir}, Options{Root: dir}); err == nil || !strings.Contains(err.Error(), "outside the allowed dataset root") {
		t.Errorf("folder holding an escaping symlink: %v", err)
	}
}

func TestLoadHTTPS(t *testing.T) {
	body, err := os.ReadFile(fixture(t, "alpaca.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/data/alpaca.jsonl", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	mux.HandleFunc("/moved.jsonl", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/data/alpaca.jsonl", http.StatusFound)
	})
	mux.HandleFunc("/downgrade.jsonl", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://"+r.Host+"/data/alpaca.jsonl", http.StatusFound)
	})
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	opts := Options{HTTPClient: srv.Client(), DownloadDir: t.TempDir()}

	ds := load(t, Spec{Path: srv.URL + "/data/alpaca.jsonl"}, opts)
	if got := rowsJSON(ds.Rows); got != alpacaRowsJSON || ds.Origin != "https" {
		t.Fatalf("rows:\n%s", got)
	}
	if ds.Rows[0].Source.File != srv.URL+"/data/alpaca.jsonl" {
		t.Errorf("source = %s", ds.Rows[0].Source)
	}
	if ds := load(t, Spec{Path: srv.URL + "/moved.jsonl"}, opts); len(ds.Rows) != 3 {
		t.Errorf("redirect: %d rows", len(ds.Rows))
	}
	for _, tc := range []struct {
		path string
		opts Options
		want string
	}{
		{srv.URL + "/downgrade.jsonl", opts, "only https is followed"},
		{srv.URL + "/data/alpaca.jsonl", Options{HTTPClient: srv.Client(), DownloadDir: t.TempDir(), MaxDownloadBytes: 100}, "over the download limit of 100 bytes"},
		{srv.URL + "/missing.jsonl", opts, "404"},
		{"http://example.com/data.jsonl", opts, `URL scheme "http" is not supported`},
		{"s3://bucket/data.jsonl", opts, `URL scheme "s3" is not supported`},
	} {
		_, err := Load(context.Background(), Spec{Path: tc.path}, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to say %q", tc.path, err, tc.want)
		}
	}
}

func TestUnknownPathsAndHubIDs(t *testing.T) {
	_, err := Load(context.Background(), Spec{Path: "/no/such/dir/file.jsonl"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "no such file or folder, and not a hub dataset repo id") {
		t.Errorf("missing path: %v", err)
	}
	_, err = Load(context.Background(), Spec{Path: "tatsu-lab/alpaca"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "needs a hub client") {
		t.Errorf("hub id without client: %v", err)
	}
	_, err = Load(context.Background(), Spec{Path: fixture(t, "alpaca.jsonl"), DSType: "xml"}, Options{})
	if err == nil || !strings.Contains(err.Error(), `ds_type "xml" is not supported`) {
		t.Errorf("bad ds_type: %v", err)
	}
}

// memoryHub serves a dataset repo from memory, for the hub side of Load.
type memoryHub struct {
	commit string
	files  map[string]string
	dir    string
	gets   []string
}

func (h *memoryHub) DatasetFiles(ctx context.Context, repo, revision string) (string, []string, error) {
	var names []string
	for n := range h.files {
		names = append(names, n)
	}
	return h.commit, names, nil
}

func (h *memoryHub) DownloadDatasetFile(ctx context.Context, repo, commit, file string) (string, error) {
	h.gets = append(h.gets, file)
	return filepath.Join(h.dir, filepath.FromSlash(file)), os.WriteFile(filepath.Join(h.dir, filepath.FromSlash(file)), []byte(h.files[file]), 0o644)
}

func TestLoadFromHubRepo(t *testing.T) {
	hub := &memoryHub{commit: "0123456789abcdef0123456789abcdef01234567", dir: t.TempDir(), files: map[string]string{
		"README.md":        "# no configs\n",
		"train.jsonl":      `{"text": "hub train"}` + "\n",
		"validation.jsonl": `{"text": "hub validation"}` + "\n",
		".gitattributes":   "*.parquet filter=lfs\n",
	}}
	ds := load(t, Spec{Path: "someone/data"}, Options{Hub: hub})
	if got := rowsJSON(ds.Rows); got != `{"text":"hub train"}` {
		t.Fatalf("rows:\n%s", got)
	}
	if ds.Origin != "hub:someone/data@"+hub.commit || ds.Rows[0].Source.String() != "hub:someone/data@0123456789ab/train.jsonl:1" {
		t.Errorf("origin %s source %s", ds.Origin, ds.Rows[0].Source)
	}
	if slices.Contains(hub.gets, "validation.jsonl") {
		t.Errorf("downloaded an unused split: %v", hub.gets)
	}
	ds = load(t, Spec{Path: "someone/data", DataFiles: []string{"validation.jsonl"}}, Options{Hub: hub})
	if got := rowsJSON(ds.Rows); got != `{"text":"hub validation"}` {
		t.Errorf("data_files rows:\n%s", got)
	}
}
