package artifacts_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eftml/eft/events"
	"github.com/eftml/eft/shared/artifacts"
	"github.com/eftml/eft/shared/artifacts/artifactstest"
	"github.com/eftml/eft/shared/bus/bustest"
)

func openStore(t *testing.T) *artifacts.Store {
	t.Helper()
	b, _ := bustest.New(t)
	return artifactstest.Open(t, b.JetStream(), "")
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(r.Uint32())
	}
	return out
}

func TestPutGetIsContentAddressedAndVerified(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	data := randomBytes(3<<20+17, 1) // several object-store chunks
	ref, err := s.Put(ctx, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := events.ArtifactRef{Bucket: artifacts.DefaultBucket, Name: "sha256-" + hex.EncodeToString(sum[:]), SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
	if ref != want {
		t.Fatalf("ref %+v, want %+v", ref, want)
	}
	var got bytes.Buffer
	if err := s.Get(ctx, ref, &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("bytes differ after a round trip")
	}
	// ReadAll reads into one buffer: it never grew past its size plus
	// the room to see the end.
	all, err := s.ReadAll(ctx, ref)
	if err != nil || !bytes.Equal(all, data) {
		t.Fatalf("ReadAll: %d bytes, %v", len(all), err)
	}
	if cap(all) > len(data)+bytes.MinRead {
		t.Fatalf("ReadAll's buffer grew to %d bytes for %d", cap(all), len(data))
	}

	// The same bytes again: same reference, still one object.
	again, err := s.Put(ctx, bytes.NewReader(data))
	if err != nil || again != ref {
		t.Fatalf("second put: %+v %v", again, err)
	}
	if ok, err := s.Has(ctx, ref); !ok || err != nil {
		t.Fatalf("Has = %v %v", ok, err)
	}
}

func TestReadsFailWhenTheReferenceDoesNotMatch(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	ref, err := s.Put(ctx, strings.NewReader("hello, artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	lying := ref
	lying.SHA256 = strings.Repeat("0", 64)
	if _, err := s.Open(ctx, lying); err == nil || !strings.Contains(err.Error(), "stored sha256 "+ref.SHA256+", reference says "+lying.SHA256) {
		t.Fatalf("digest mismatch: err = %v", err)
	}
	short := ref
	short.Size--
	if err := s.Get(ctx, short, io.Discard); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("stored %d bytes, reference says %d", ref.Size, short.Size)) {
		t.Fatalf("size mismatch: err = %v", err)
	}
	// GetFile leaves nothing behind when verification fails.
	dst := filepath.Join(t.TempDir(), "out", "x.bin")
	if err := s.GetFile(ctx, lying, dst); err == nil {
		t.Fatal("GetFile accepted a mismatching digest")
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("GetFile left %s: %v", dst, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 0 {
		t.Fatalf("GetFile left temporary files: %v", entries)
	}
	missing := ref
	missing.Name, missing.SHA256 = "sha256-"+strings.Repeat("1", 64), strings.Repeat("1", 64)
	if _, err := s.Open(ctx, missing); !errors.Is(err, artifacts.ErrNotFound) {
		t.Fatalf("missing object: err = %v", err)
	}
	other := ref
	other.Bucket = "ELSEWHERE"
	if _, err := s.Open(ctx, other); err == nil || !strings.Contains(err.Error(), "ELSEWHERE") {
		t.Fatalf("wrong bucket: err = %v", err)
	}
}

func TestFilesAndTags(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	src := filepath.Join(t.TempDir(), "adapter_model.safetensors")
	data := randomBytes(10_000, 2)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := s.PutFile(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	files := []events.FileRef{{Path: "checkpoint-10/adapter_model.safetensors", Artifact: ref}}
	if err := s.GetFiles(ctx, files, out); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "checkpoint-10", "adapter_model.safetensors"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetFiles wrote %d bytes, err %v", len(got), err)
	}
	for _, bad := range []string{"../escape", "/abs/path", "a/../../b"} {
		if err := s.GetFiles(ctx, []events.FileRef{{Path: bad, Artifact: ref}}, out); err == nil {
			t.Errorf("GetFiles accepted path %q", bad)
		}
	}

	if _, ok, err := s.Lookup(ctx, "cache.abc"); ok || err != nil {
		t.Fatalf("lookup before tagging: %v %v", ok, err)
	}
	if err := s.Tag(ctx, "cache.abc", ref); err != nil {
		t.Fatal(err)
	}
	back, ok, err := s.Lookup(ctx, "cache.abc")
	if err != nil || !ok || back != ref {
		t.Fatalf("lookup: %+v %v %v", back, ok, err)
	}
}
