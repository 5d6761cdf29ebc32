package hub

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/eftml/eft/shared/datasets"
)

// fakeHub mimics the hub endpoints huggingface_hub uses: the revision and
// tree APIs, and /resolve/ with X-Repo-Commit, ETag (git blob sha1 for
// regular files), and for LFS files a 302 to an absolute CDN URL with
// X-Linked-Etag (sha256) and X-Linked-Size.
type fakeHub struct {
	srv     *httptest.Server
	cdn     *httptest.Server // another host, as the real LFS CDN is
	commit  string
	files   map[string]string // path → content
	lfs     map[string]bool
	private bool
	token   string

	mu       sync.Mutex
	requests []string
	cdnAuth  []string // Authorization headers seen by the CDN
}

func gitBlobSHA1(content string) string {
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00%s", len(content), content)
	return hex.EncodeToString(h.Sum(nil))
}

func sha256Hex(content string) string {
	s := sha256.Sum256([]byte(content))
	return hex.EncodeToString(s[:])
}

func newFakeHub(t *testing.T) *fakeHub {
	h := &fakeHub{
		commit: "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
		files: map[string]string{
			"README.md":                         "# data\n",
			"data/train-00000-of-00001.jsonl":   `{"text": "from the hub"}` + "\n",
			"data/test-00000-of-00001.jsonl":    `{"text": "hub test"}` + "\n",
			"model.safetensors":                 strings.Repeat("weights!", 64),
			"nested dir/file with spaces.jsonl": `{"text": "spaced"}` + "\n",
		},
		lfs:   map[string]bool{"model.safetensors": true, "data/train-00000-of-00001.jsonl": true},
		token: "hf_secret",
	}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.srv.Close)
	h.cdn = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.cdn.Close)
	return h
}

func (h *fakeHub) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.requests = append(h.requests, r.Method+" "+r.URL.Path)
	h.mu.Unlock()
	p := r.URL.Path
	if strings.HasPrefix(p, "/cdn/") {
		h.mu.Lock()
		h.cdnAuth = append(h.cdnAuth, r.Header.Get("Authorization"))
		h.mu.Unlock()
		for _, content := range h.files {
			if sha256Hex(content) == strings.TrimPrefix(p, "/cdn/") {
				w.Header().Set("Content-Length", strconv.Itoa(len(content)))
				w.Write([]byte(content))
				return
			}
		}
		http.NotFound(w, r)
		return
	}
	if h.private && r.Header.Get("Authorization") != "Bearer "+h.token {
		w.Header().Set("X-Error-Code", "RepoNotFound")
		w.Header().Set("X-Error-Message", "Repository not found")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	// A renamed repo answers with a relative redirect.
	if strings.HasPrefix(p, "/datasets/old-owner/data/") {
		http.Redirect(w, r, strings.Replace(p, "/datasets/old-owner/data/", "/datasets/owner/data/", 1), http.StatusTemporaryRedirect)
		return
	}
	for _, prefix := range []string{"/api/datasets/owner/data/revision/", "/api/models/owner/model/revision/"} {
		if rev, ok := strings.CutPrefix(p, prefix); ok {
			if rev != "main" && rev != h.commit && rev != "v1.0" {
				w.Header().Set("X-Error-Code", "RevisionNotFound")
				w.WriteHeader(http.StatusNotFound)
				return
			}
			var siblings []map[string]string
			for name := range h.files {
				siblings = append(siblings, map[string]string{"rfilename": name})
			}
			json.NewEncoder(w).Encode(map[string]any{"id": "owner/data", "sha": h.commit, "siblings": siblings})
			return
		}
	}
	if strings.HasPrefix(p, "/api/datasets/owner/data/tree/") {
		names := make([]string, 0, len(h.files))
		for name := range h.files {
			names = append(names, name)
		}
		slices.Sort(names)
		page, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		const perPage = 2
		end := min(len(names), (page+1)*perPage)
		var out []map[string]any
		if page == 0 {
			out = append(out, map[string]any{"type": "directory", "path": "data", "oid": "x", "size": 0})
		}
		for _, n := range names[page*perPage : end] {
			out = append(out, map[string]any{"type": "file", "path": n, "oid": gitBlobSHA1(h.files[n]), "size": len(h.files[n])})
		}
		if end < len(names) {
			w.Header().Set("Link", fmt.Sprintf(`<%s%s?recursive=true&cursor=%d>; rel="next"`, h.srv.URL, p, page+1))
		}
		json.NewEncoder(w).Encode(out)
		return
	}
	for _, prefix := range []string{"/datasets/owner/data/resolve/", "/owner/model/resolve/"} {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok {
			continue
		}
		rev, name, _ := strings.Cut(rest, "/")
		if rev != "main" && rev != h.commit && rev != "v1.0" {
			w.Header().Set("X-Error-Code", "RevisionNotFound")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		content, ok := h.files[name]
		if !ok {
			w.Header().Set("X-Error-Code", "EntryNotFound")
			w.Header().Set("X-Error-Message", "Entry not found")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("X-Repo-Commit", h.commit)
		if h.lfs[name] {
			w.Header().Set("ETag", `"`+gitBlobSHA1("pointer")+`"`)
			w.Header().Set("X-Linked-Etag", `"`+sha256Hex(content)+`"`)
			w.Header().Set("X-Linked-Size", strconv.Itoa(len(content)))
			w.Header().Set("Location", h.cdn.URL+"/cdn/"+sha256Hex(content))
			w.WriteHeader(http.StatusFound)
			return
		}
		w.Header().Set("ETag", `W/"`+gitBlobSHA1(content)+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(content)))
		if r.Method == http.MethodGet {
			w.Write([]byte(content))
		}
		return
	}
	http.NotFound(w, r)
}

func (h *fakeHub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.requests)
}

func (h *fakeHub) client(t *testing.T, cache string) *Client {
	return &Client{Endpoint: h.srv.URL, CacheDir: cache, Token: h.token, HTTP: h.srv.Client()}
}

func readAll(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDownloadBuildsTheHubCacheLayout(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	ctx := context.Background()

	p, err := c.Download(ctx, Dataset, "owner/data", "main", "data/train-00000-of-00001.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	repoDir := filepath.Join(cache, "datasets--owner--data")
	want := filepath.Join(repoDir, "snapshots", h.commit, "data", "train-00000-of-00001.jsonl")
	if p != want {
		t.Fatalf("path %s, want %s", p, want)
	}
	if got := readAll(t, p); got != h.files["data/train-00000-of-00001.jsonl"] {
		t.Errorf("content %q", got)
	}
	// snapshots/<commit>/<path> is a relative symlink to blobs/<sha256>.
	link, err := os.Readlink(p)
	if err != nil || link != filepath.Join("..", "..", "..", "blobs", sha256Hex(h.files["data/train-00000-of-00001.jsonl"])) {
		t.Errorf("link = %q, %v", link, err)
	}
	if ref := readAll(t, filepath.Join(repoDir, "refs", "main")); ref != h.commit {
		t.Errorf("refs/main = %q", ref)
	}
	// A regular (non-LFS) file is stored under its git blob id.
	p, err = c.Download(ctx, Dataset, "owner/data", "main", "nested dir/file with spaces.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(repoDir, "blobs", gitBlobSHA1(h.files["nested dir/file with spaces.jsonl"]))); err != nil || readAll(t, p) != h.files["nested dir/file with spaces.jsonl"] {
		t.Errorf("regular file blob: %v", err)
	}
	// Models live under models--owner--model, without the datasets/ URL prefix.
	p, err = c.Download(ctx, Model, "owner/model", "v1.0", "model.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p, filepath.Join(cache, "models--owner--model", "snapshots", h.commit)) || readAll(t, filepath.Join(cache, "models--owner--model", "refs", "v1.0")) != h.commit {
		t.Errorf("model path %s", p)
	}
	// The token went to the hub but never to the CDN.
	if len(h.cdnAuth) != 2 {
		t.Errorf("the CDN served %d downloads, want 2 (the LFS files)", len(h.cdnAuth))
	}
	for _, a := range h.cdnAuth {
		if a != "" {
			t.Errorf("CDN received Authorization %q", a)
		}
	}
}

func TestCacheHitsWithoutNetwork(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	ctx := context.Background()
	first, err := c.Download(ctx, Dataset, "owner/data", "main", "README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := h.count()
	// Pinned to the commit: served from the snapshot, no request at all.
	again, err := c.Download(ctx, Dataset, "owner/data", h.commit, "README.md")
	if err != nil || again != first || h.count() != n {
		t.Fatalf("pinned cache hit: %v, %d new requests", err, h.count()-n)
	}
	// By branch online: one HEAD to learn the commit, and no body download.
	if _, err := c.Download(ctx, Dataset, "owner/data", "main", "README.md"); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	newReqs := slices.Clone(h.requests[n:])
	h.mu.Unlock()
	if len(newReqs) != 1 || !strings.HasPrefix(newReqs[0], "HEAD ") {
		t.Errorf("branch re-download made requests %v, want one HEAD", newReqs)
	}
	// Offline (HF_HUB_OFFLINE): the ref in the cache resolves main.
	h.srv.Close()
	off := &Client{Endpoint: h.srv.URL, CacheDir: cache, Offline: true}
	if p, err := off.Download(ctx, Dataset, "owner/data", "main", "README.md"); err != nil || p != first {
		t.Fatalf("offline: %s, %v", p, err)
	}
	if _, err := off.Download(ctx, Dataset, "owner/data", "main", "model.safetensors"); !errors.Is(err, ErrOffline) {
		t.Errorf("offline miss: %v", err)
	}
	info, err := off.Resolve(ctx, Dataset, "owner/data", "main")
	if err != nil || info.Commit != h.commit || !slices.Equal(info.Files, []string{"README.md"}) {
		t.Errorf("offline resolve: %+v, %v", info, err)
	}
	// Online but unreachable: the cache answers too.
	down := &Client{Endpoint: h.srv.URL, CacheDir: cache}
	if p, err := down.Download(ctx, Dataset, "owner/data", "main", "README.md"); err != nil || p != first {
		t.Errorf("unreachable hub: %s, %v", p, err)
	}
}

func TestResolveAndListTree(t *testing.T) {
	h := newFakeHub(t)
	c := h.client(t, t.TempDir())
	ctx := context.Background()
	info, err := c.Resolve(ctx, Dataset, "owner/data", "")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(info.Files)
	if info.Commit != h.commit || len(info.Files) != len(h.files) {
		t.Fatalf("resolve: %+v", info)
	}
	tree, err := c.ListTree(ctx, Dataset, "owner/data", h.commit)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tree, info.Files) {
		t.Errorf("paginated tree %v, revision siblings %v", tree, info.Files)
	}
	if _, err := c.Resolve(ctx, Dataset, "owner/data", "nope"); !errors.Is(err, ErrRevisionNotFound) {
		t.Errorf("unknown revision: %v", err)
	}
	if _, err := c.Download(ctx, Dataset, "owner/data", "main", "missing.jsonl"); !errors.Is(err, ErrEntryNotFound) {
		t.Errorf("missing file: %v", err)
	}
	// A renamed repo's relative redirect is followed.
	if p, err := c.Download(ctx, Dataset, "old-owner/data", "main", "README.md"); err != nil || readAll(t, p) != h.files["README.md"] {
		t.Errorf("renamed repo: %v", err)
	}
}

func TestPrivateReposNeedTheToken(t *testing.T) {
	h := newFakeHub(t)
	h.private = true
	c := h.client(t, t.TempDir())
	if _, err := c.Download(context.Background(), Dataset, "owner/data", "main", "README.md"); err != nil {
		t.Fatalf("with token: %v", err)
	}
	c.Token = ""
	c.CacheDir = t.TempDir()
	if _, err := c.Download(context.Background(), Dataset, "owner/data", "main", "README.md"); !errors.Is(err, ErrRepoNotFound) {
		t.Fatalf("without token: %v", err)
	}
}

func TestCorruptDownloadsAreRejected(t *testing.T) {
	h := newFakeHub(t)
	cache := t.TempDir()
	c := h.client(t, cache)
	// The CDN serves other bytes than the ETag promises.
	name := "model.safetensors"
	good := h.files[name]
	h.cdn.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/cdn/") {
			w.Write([]byte(strings.Repeat("tampered", 64)))
			return
		}
		h.serve(w, r)
	})
	_, err := c.Download(context.Background(), Model, "owner/model", "main", name)
	if err == nil || !strings.Contains(err.Error(), "does not match the ETag "+sha256Hex(good)) {
		t.Fatalf("tampered blob: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(cache, "models--owner--model", "blobs")); len(entries) != 0 {
		t.Errorf("a rejected download left %d files in blobs/", len(entries))
	}
}

func TestBadNamesAreRefused(t *testing.T) {
	c := &Client{CacheDir: t.TempDir(), Offline: true}
	for _, repo := range []string{"../etc", "a/b/c", "a--b/c", "", "owner/"} {
		if _, err := c.Download(context.Background(), Dataset, repo, "main", "x"); err == nil || !strings.Contains(err.Error(), "not a valid repo id") {
			t.Errorf("repo %q: %v", repo, err)
		}
	}
	for _, name := range []string{"../x", "/etc/passwd", "a/../../b", "a\\b", ""} {
		if _, err := c.Download(context.Background(), Dataset, "owner/data", "main", name); err == nil || !strings.Contains(err.Error(), "not a clean relative path") {
			t.Errorf("file %q: %v", name, err)
		}
	}
}

func TestNewFromEnv(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HF_HOME", home)
	t.Setenv("HF_HUB_CACHE", "")
	t.Setenv("HUGGINGFACE_HUB_CACHE", "")
	t.Setenv("HF_TOKEN", "")
	t.Setenv("HF_TOKEN_PATH", "")
	t.Setenv("HF_ENDPOINT", "https://mirror.example/")
	t.Setenv("HF_HUB_OFFLINE", "yes")
	os.WriteFile(filepath.Join(home, "token"), []byte("hf_fromfile\n"), 0o600)
	c := NewFromEnv()
	if c.CacheDir != filepath.Join(home, "hub") || c.Token != "hf_fromfile" || c.Endpoint != "https://mirror.example" || !c.Offline {
		t.Errorf("client = %+v", c)
	}
	t.Setenv("HF_HUB_CACHE", "/elsewhere")
	t.Setenv("HF_TOKEN", "hf_env")
	t.Setenv("HF_HUB_OFFLINE", "0")
	c = NewFromEnv()
	if c.CacheDir != "/elsewhere" || c.Token != "hf_env" || c.Offline {
		t.Errorf("client = %+v", c)
	}
}

// TestDatasetsLoadThroughTheHub reads a hub dataset repo end to end: the
// datasets loader resolves the repo, picks the train split from the sharded
// file names and reads the file out of the hub cache.
func TestDatasetsLoadThroughTheHub(t *testing.T) {
	h := newFakeHub(t)
	c := h.client(t, t.TempDir())
	var _ datasets.HubDatasets = c
	ds, err := datasets.Load(context.Background(), datasets.Spec{Path: "owner/data"}, datasets.Options{Hub: c})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Rows) != 1 || ds.Origin != "hub:owner/data@"+h.commit || !slices.Equal(ds.Splits, []string{"test", "train"}) {
		t.Fatalf("dataset %+v", ds)
	}
	if v, _ := ds.Rows[0].Get("text"); v != "from the hub" {
		t.Errorf("row %v", ds.Rows[0].Fields)
	}
	test, err := datasets.Load(context.Background(), datasets.Spec{Path: "owner/data", Split: "test", Revision: "v1.0"}, datasets.Options{Hub: c})
	if err != nil || len(test.Rows) != 1 {
		t.Fatalf("test split: %v", err)
	}
}
