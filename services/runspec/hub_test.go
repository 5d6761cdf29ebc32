package runspec

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/eftml/eft/shared/hub"
	"github.com/eftml/eft/shared/testfixtures"
	"github.com/eftml/eft/trainer/cpu"
)

// A base_model that is a hub repo id is fetched into the hub cache (a local
// fake hub serving the llama fixture) — config, weights and tokenizer, not
// the other files of the repo — and builds the run's model; a second
// resolve is served from the cache.
func TestBaseModelFromTheHub(t *testing.T) {
	src := testfixtures.Path(t, "hf", "llama")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	const commit = "0123456789abcdef0123456789abcdef01234567"
	var mu sync.Mutex
	fetched := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/models/owner/tiny-llama/revision/") {
			var siblings []map[string]string
			for name := range files {
				siblings = append(siblings, map[string]string{"rfilename": name})
			}
			json.NewEncoder(w).Encode(map[string]any{"id": "owner/tiny-llama", "sha": commit, "siblings": siblings})
			return
		}
		rest, ok := strings.CutPrefix(r.URL.Path, "/owner/tiny-llama/resolve/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, name, _ := strings.Cut(rest, "/")
		data, ok := files[name]
		if !ok {
			w.Header().Set("X-Error-Code", "EntryNotFound")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h := sha1.New()
		fmt.Fprintf(h, "blob %d\x00", len(data))
		h.Write(data)
		w.Header().Set("X-Repo-Commit", commit)
		w.Header().Set("ETag", `"`+hex.EncodeToString(h.Sum(nil))+`"`)
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		if r.Method == http.MethodGet {
			mu.Lock()
			fetched[name]++
			mu.Unlock()
			w.Write(data)
		}
	}))
	defer srv.Close()

	res := Resolver{Hub: &hub.Client{Endpoint: srv.URL, CacheDir: t.TempDir()}}
	cfg := parse(t, "adapter: lora\nlora_r: 4\nlora_alpha: 8\nlora_target_linear: true\n")
	cfg.BaseModel = "owner/tiny-llama"
	dir, err := res.BaseModelDir(context.Background(), cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dir, filepath.Join("models--owner--tiny-llama", "snapshots", commit)) {
		t.Fatalf("model dir %s is not in the hub cache layout", dir)
	}
	for _, name := range []string{"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} {
		if fetched[name] != 1 {
			t.Fatalf("%s fetched %d times (all: %v)", name, fetched[name], fetched)
		}
	}
	if fetched["reference.safetensors"] != 0 {
		t.Fatalf("fetched files the model does not need: %v", fetched)
	}
	built, err := res.Build(cfg, dir, "", cpu.New(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(built.Model.LoRAParams()) == 0 {
		t.Fatal("no adapter attached")
	}
	if _, err := res.BaseModelDir(context.Background(), cfg, ""); err != nil {
		t.Fatal(err)
	}
	if fetched["model.safetensors"] != 1 {
		t.Fatalf("the second resolve downloaded the weights again: %v", fetched)
	}
	cfg.BaseModel = "./not/here"
	if _, err := res.BaseModelDir(context.Background(), cfg, "/work"); err == nil || !strings.Contains(err.Error(), "/work/not/here") {
		t.Fatalf("a missing local path: %v", err)
	}
}
