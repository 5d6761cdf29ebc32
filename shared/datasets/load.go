package datasets

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Spec is one entry of an Axolotl `datasets:` (or `test_datasets:`) list, as
// far as reading rows goes.
type Spec struct {
	Path         string   // local file or folder, https URL, or hub dataset repo id
	DSType       string   // json, csv, parquet, arrow or text; default: from the file extension
	DataFiles    []string // files (globs allowed) inside Path to read instead of discovering them
	Split        string   // split to read from a multi-split source
	TrainOnSplit string   // Axolotl's older name for the same choice; Split wins when both are set
	Name         string   // config name declared in a hub/folder dataset card
	Revision     string   // hub revision (branch, tag or commit); default "main"
	Field        string   // json builder `field`: the member holding the rows
}

// HubDatasets reaches Hugging Face dataset repos; package hub's Client
// implements it.
type HubDatasets interface {
	// DatasetFiles resolves a revision to its commit and lists the repo's files.
	DatasetFiles(ctx context.Context, repo, revision string) (commit string, files []string, err error)
	// DownloadDatasetFile returns a local path holding the file at commit.
	DownloadDatasetFile(ctx context.Context, repo, commit, file string) (string, error)
}

// Options control reading. The zero value reads local data, fails when more
// than 1% of rows are bad, and refuses URLs and hub ids.
type Options struct {
	Require        []Requirement // fields every row must have
	SkipBadRows    bool          // drop bad rows whatever their share (they are still reported)
	MaxBadFraction float64       // share of bad rows that fails the load; default DefaultMaxBadFraction
	MaxProblems    int           // rejected rows listed one by one; default DefaultMaxProblems

	// Root, when set, confines local paths (after resolving symlinks) to
	// this folder.
	Root string
	// DefaultSplit is the split read from a multi-split source when the spec
	// names none: "train" (the default) for datasets, "test" for test_datasets.
	DefaultSplit string

	// HTTPClient fetches https URLs; nil means http.DefaultClient.
	HTTPClient *http.Client
	// MaxDownloadBytes caps one https download; default DefaultMaxDownloadBytes.
	MaxDownloadBytes int64
	// DownloadDir keeps downloaded files; default a folder under os.TempDir.
	DownloadDir string
	// Hub resolves hub repo ids; nil refuses them.
	Hub HubDatasets
}

// DefaultMaxDownloadBytes is the default cap on one https download (8 GiB).
const DefaultMaxDownloadBytes = 8 << 30

// Dataset is the rows of one split of one source.
type Dataset struct {
	Rows   []Record
	Report Report
	Split  string   // the split read
	Splits []string // the splits the source has
	Origin string   // "local", "https" or "hub:<repo>@<commit>"
}

// dataFile is one file to read: how to name it in reports and how to get it
// onto the local disk.
type dataFile struct {
	display string
	rel     string // path relative to the source root, for format detection
	local   func(ctx context.Context) (string, error)
}

// source is a resolved dataset location: its files by split.
type source struct {
	origin string
	splits map[string][]dataFile
	format string // builder forced by the source itself (save_to_disk → arrow)
}

// Load reads the split a spec selects, applying the bad-row policy.
func Load(ctx context.Context, spec Spec, opts Options) (*Dataset, error) {
	if spec.Path == "" {
		return nil, errors.New("dataset path is empty")
	}
	src, err := resolve(ctx, spec, opts)
	if err != nil {
		return nil, err
	}
	split, parts, err := chooseSplit(spec, opts, src)
	if err != nil {
		return nil, err
	}
	format := spec.DSType
	if format == "" {
		format = src.format
	}
	switch format {
	case "", "json", "csv", "parquet", "arrow", "text":
	default:
		return nil, fmt.Errorf("%s: ds_type %q is not supported (json, csv, parquet, arrow, text)", spec.Path, format)
	}
	c := newCollector(opts.Require, opts.MaxProblems)
	for _, part := range parts {
		start := len(c.rows)
		for _, f := range src.splits[part.name] {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			local, err := f.local(ctx)
			if err != nil {
				return nil, err
			}
			fileFormat, gz := formatOf(f.rel)
			if format != "" {
				fileFormat = format
			}
			if fileFormat == "" {
				return nil, fmt.Errorf("%s: cannot tell the format from the file name; set ds_type", f.display)
			}
			if err := readFile(local, f.display, fileFormat, gz, spec, c); err != nil {
				return nil, err
			}
			c.report.Files = append(c.report.Files, f.display)
		}
		lo, hi, err := part.bounds(len(c.rows) - start)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", spec.Path, err)
		}
		c.rows = append(c.rows[:start], c.rows[start+lo:start+hi]...)
	}
	c.report.Rows = len(c.rows)
	if err := checkBadRows(spec.Path, c.report, opts.SkipBadRows, opts.MaxBadFraction); err != nil {
		return nil, err
	}
	splits := make([]string, 0, len(src.splits))
	for s := range src.splits {
		splits = append(splits, s)
	}
	sort.Strings(splits)
	return &Dataset{Rows: c.rows, Report: c.report, Split: split, Splits: splits, Origin: src.origin}, nil
}

// ReadFile reads one local file of the given format (json, csv, parquet,
// arrow, text; "" guesses from the name) with no bad-row policy applied:
// the report says what was rejected.
func ReadFile(path, format string, require []Requirement) ([]Record, Report, error) {
	gz := false
	if format == "" {
		format, gz = formatOf(path)
		if format == "" {
			return nil, Report{}, fmt.Errorf("%s: cannot tell the format from the file name", path)
		}
	}
	c := newCollector(require, 0)
	err := readFile(path, path, format, gz, Spec{}, c)
	c.report.Files = []string{path}
	return c.rows, c.report, err
}

func readFile(local, display, format string, gz bool, spec Spec, c *collector) error {
	switch format {
	case "parquet":
		return readParquet(local, display, c)
	case "arrow":
		return readArrow(local, display, c)
	}
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return fmt.Errorf("%s: %w", display, err)
		}
		defer zr.Close()
		r = zr
	}
	switch format {
	case "json":
		err = readJSON(r, display, JSONOptions{Field: spec.Field}, c)
	case "csv":
		err = readCSV(r, display, c)
	case "text":
		err = readText(r, display, c)
	default:
		err = fmt.Errorf("%s: unknown format %q", display, format)
	}
	return err
}

// chooseSplit picks what to read: the spec's split (a name, a Hugging
// Face slice like train[:20%], or pieces joined by "+"), else the only
// split, else opts.DefaultSplit or "train". It returns the split as
// written and its pieces.
func chooseSplit(spec Spec, opts Options, src *source) (string, []splitPart, error) {
	available := make([]string, 0, len(src.splits))
	for s := range src.splits {
		available = append(available, s)
	}
	sort.Strings(available)
	if len(available) == 0 {
		return "", nil, fmt.Errorf("%s: no data files found", spec.Path)
	}
	want := spec.Split
	if want == "" {
		want = spec.TrainOnSplit
	}
	if want == "" {
		if len(available) == 1 {
			return available[0], []splitPart{{name: available[0]}}, nil
		}
		want = opts.DefaultSplit
		if want == "" {
			want = "train"
		}
		if _, ok := src.splits[want]; !ok {
			return "", nil, fmt.Errorf("%s: no %q split found (splits: %v); choose one with `split:`", spec.Path, want, available)
		}
		return want, []splitPart{{name: want}}, nil
	}
	parts, err := parseSplitSpec(want)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", spec.Path, err)
	}
	for _, p := range parts {
		if _, ok := src.splits[p.name]; !ok {
			return "", nil, fmt.Errorf("%s: split %q not found (splits: %v)", spec.Path, p.name, available)
		}
	}
	return want, parts, nil
}

// resolve finds the source's files: a local file or folder, an https URL, or
// a hub repo id (in that order, as Axolotl prefers local paths).
func resolve(ctx context.Context, spec Spec, opts Options) (*source, error) {
	p := spec.Path
	if i := strings.Index(p, "://"); i > 0 {
		scheme := strings.ToLower(p[:i])
		if scheme != "https" {
			return nil, fmt.Errorf("%s: URL scheme %q is not supported; only https URLs are read", p, scheme)
		}
		return resolveURL(p, opts), nil
	}
	if st, err := os.Stat(p); err == nil {
		if err := checkWithinRoot(opts.Root, p); err != nil {
			return nil, err
		}
		if st.IsDir() {
			return resolveDir(p, spec, opts)
		}
		return &source{origin: "local", splits: map[string][]dataFile{"train": {localFile(p, filepath.Base(p))}}}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if !looksLikeRepoID(p) {
		return nil, fmt.Errorf("%s: no such file or folder, and not a hub dataset repo id", p)
	}
	if opts.Hub == nil {
		return nil, fmt.Errorf("%s: no such file or folder here; reading it as a hub dataset repo needs a hub client", p)
	}
	return resolveHub(ctx, spec, opts.Hub)
}

func localFile(p, rel string) dataFile {
	return dataFile{display: p, rel: rel, local: func(context.Context) (string, error) { return p, nil }}
}

// looksLikeRepoID accepts "name" or "owner/name" with the hub's characters.
func looksLikeRepoID(s string) bool {
	parts := strings.Split(s, "/")
	if len(parts) > 2 {
		return false
	}
	for _, part := range parts {
		if part == "" || part == "." || part == ".." || strings.HasPrefix(part, "-") || strings.Contains(part, "--") {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return false
			}
		}
	}
	return true
}

// checkWithinRoot refuses a path that, symlinks resolved, leaves root.
func checkWithinRoot(root, p string) error {
	if root == "" {
		return nil
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("dataset root %s: %w", root, err)
	}
	realPath, err := filepath.EvalSymlinks(p)
	if err != nil {
		return err
	}
	realRoot, _ = filepath.Abs(realRoot)
	realPath, _ = filepath.Abs(realPath)
	rel, err := filepath.Rel(realRoot, realPath)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("%s: outside the allowed dataset root %s", p, root)
	}
	return nil
}

// resolveDir handles a local folder: explicit data_files, a save_to_disk
// dataset or dataset dict, or files found by walking it.
func resolveDir(dir string, spec Spec, opts Options) (*source, error) {
	if len(spec.DataFiles) > 0 {
		all, err := walkFiles(dir)
		if err != nil {
			return nil, err
		}
		var files []dataFile
		for _, pattern := range spec.DataFiles {
			matched, err := matchDataFiles(pattern, all)
			if err != nil {
				return nil, fmt.Errorf("%s: data_files: %w", dir, err)
			}
			for _, rel := range matched {
				full := filepath.Join(dir, filepath.FromSlash(rel))
				if err := checkWithinRoot(opts.Root, full); err != nil {
					return nil, err
				}
				files = append(files, localFile(full, rel))
			}
		}
		return &source{origin: "local", splits: map[string][]dataFile{"train": files}}, nil
	}
	if data, err := os.ReadFile(filepath.Join(dir, "dataset_dict.json")); err == nil {
		var dict struct {
			Splits []string `json:"splits"`
		}
		if err := json.Unmarshal(data, &dict); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "dataset_dict.json"), err)
		}
		src := &source{origin: "local", splits: map[string][]dataFile{}, format: "arrow"}
		for _, split := range dict.Splits {
			if strings.ContainsAny(split, `/\`) || split == ".." {
				return nil, fmt.Errorf("%s: bad split name %q in dataset_dict.json", dir, split)
			}
			_, files, err := savedDataset(filepath.Join(dir, split), opts)
			if err != nil {
				return nil, err
			}
			src.splits[split] = files
		}
		return src, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err == nil {
		split, files, err := savedDataset(dir, opts)
		if err != nil {
			return nil, err
		}
		return &source{origin: "local", splits: map[string][]dataFile{split: files}, format: "arrow"}, nil
	}
	all, err := walkFiles(dir)
	if err != nil {
		return nil, err
	}
	var readme []byte
	if slices.Contains(all, "README.md") {
		readme, _ = os.ReadFile(filepath.Join(dir, "README.md"))
	}
	bySplit, err := discoverSplits(all, readme, spec.Name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	src := &source{origin: "local", splits: map[string][]dataFile{}}
	for split, rels := range bySplit {
		for _, rel := range rels {
			full := filepath.Join(dir, filepath.FromSlash(rel))
			if err := checkWithinRoot(opts.Root, full); err != nil {
				return nil, err
			}
			src.splits[split] = append(src.splits[split], localFile(full, rel))
		}
	}
	return src, nil
}

// discoverSplits assigns a folder's or repo's files to splits: through the
// dataset card's configs when it declares any, else by the default patterns.
func discoverSplits(all []string, readme []byte, name string) (map[string][]string, error) {
	configs, err := cardConfigs(readme)
	if err != nil {
		return nil, err
	}
	cfg, ok, err := pickConfig(configs, name)
	if err != nil {
		return nil, err
	}
	data, _ := dataFilesOf(all)
	if !ok {
		return defaultSplits(data), nil
	}
	patterns, err := cfg.splitPatterns()
	if err != nil {
		return nil, err
	}
	if patterns == nil { // data_dir only
		var inside []string
		for _, f := range data {
			if strings.HasPrefix(f, cfg.DataDir+"/") {
				inside = append(inside, strings.TrimPrefix(f, cfg.DataDir+"/"))
			}
		}
		out := map[string][]string{}
		for split, files := range defaultSplits(inside) {
			for _, f := range files {
				out[split] = append(out[split], cfg.DataDir+"/"+f)
			}
		}
		return out, nil
	}
	out := map[string][]string{}
	for split, globs := range patterns {
		for _, g := range globs {
			matched, err := matchDataFiles(g, all)
			if err != nil {
				return nil, fmt.Errorf("config %q split %q: %w", cfg.Name, split, err)
			}
			out[split] = append(out[split], matched...)
		}
	}
	return out, nil
}

// matchDataFiles returns the files a data_files entry names: the file itself
// or, for a glob, every match (sorted). No match is an error, as in datasets.
func matchDataFiles(pattern string, all []string) ([]string, error) {
	clean := path.Clean(strings.TrimPrefix(filepath.ToSlash(pattern), "./"))
	if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return nil, fmt.Errorf("%q points outside the dataset", pattern)
	}
	if !strings.ContainsAny(clean, "*?[") {
		if slices.Contains(all, clean) {
			return []string{clean}, nil
		}
		return nil, fmt.Errorf("%q: no such file", pattern)
	}
	re, err := globRegexp(clean)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range all {
		// Like datasets, a glob skips hidden files ("." or "_" components)
		// unless it spells such a component itself.
		if isHidden(f) && !isHidden(clean) {
			continue
		}
		if re.MatchString(f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q matches no file", pattern)
	}
	return out, nil
}

// walkFiles lists the regular files under dir as sorted slash paths.
func walkFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out, err
}

// savedDataset reads the state.json that Dataset.save_to_disk writes and
// returns its split name and Arrow files.
func savedDataset(dir string, opts Options) (string, []dataFile, error) {
	statePath := filepath.Join(dir, "state.json")
	data, err := os.ReadFile(statePath)
	if err != nil {
		return "", nil, fmt.Errorf("%s: not a saved dataset (no state.json): %w", dir, err)
	}
	var state struct {
		DataFiles []struct {
			Filename string `json:"filename"`
		} `json:"_data_files"`
		Split *string `json:"_split"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		return "", nil, fmt.Errorf("%s: %w", statePath, err)
	}
	if len(state.DataFiles) == 0 {
		return "", nil, fmt.Errorf("%s: lists no _data_files", statePath)
	}
	var files []dataFile
	for _, f := range state.DataFiles {
		name := f.Filename
		if name == "" || filepath.Base(name) != name || name == ".." {
			return "", nil, fmt.Errorf("%s: bad data file name %q", statePath, name)
		}
		full := filepath.Join(dir, name)
		if err := checkWithinRoot(opts.Root, full); err != nil {
			return "", nil, err
		}
		files = append(files, dataFile{display: full, rel: name + ".arrow", local: func(context.Context) (string, error) { return full, nil }})
	}
	split := "train"
	if state.Split != nil && *state.Split != "" {
		split = *state.Split
	}
	return split, files, nil
}

// resolveHub lists a hub dataset repo and assigns its files to splits.
func resolveHub(ctx context.Context, spec Spec, hub HubDatasets) (*source, error) {
	revision := spec.Revision
	if revision == "" {
		revision = "main"
	}
	commit, all, err := hub.DatasetFiles(ctx, spec.Path, revision)
	if err != nil {
		return nil, err
	}
	sort.Strings(all)
	var bySplit map[string][]string
	if len(spec.DataFiles) > 0 {
		bySplit = map[string][]string{}
		for _, pattern := range spec.DataFiles {
			matched, err := matchDataFiles(pattern, all)
			if err != nil {
				return nil, fmt.Errorf("%s@%s: data_files: %w", spec.Path, commit, err)
			}
			bySplit["train"] = append(bySplit["train"], matched...)
		}
	} else {
		var readme []byte
		if slices.Contains(all, "README.md") {
			local, err := hub.DownloadDatasetFile(ctx, spec.Path, commit, "README.md")
			if err != nil {
				return nil, err
			}
			if readme, err = os.ReadFile(local); err != nil {
				return nil, err
			}
		}
		if bySplit, err = discoverSplits(all, readme, spec.Name); err != nil {
			return nil, fmt.Errorf("%s@%s: %w", spec.Path, commit, err)
		}
	}
	src := &source{origin: "hub:" + spec.Path + "@" + commit, splits: map[string][]dataFile{}}
	for split, files := range bySplit {
		for _, rel := range files {
			rel := rel
			src.splits[split] = append(src.splits[split], dataFile{
				display: "hub:" + spec.Path + "@" + shortCommit(commit) + "/" + rel,
				rel:     rel,
				local: func(ctx context.Context) (string, error) {
					return hub.DownloadDatasetFile(ctx, spec.Path, commit, rel)
				},
			})
		}
	}
	return src, nil
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func isHidden(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, ".") || strings.HasPrefix(part, "_") {
			return true
		}
	}
	return false
}
