// Package artifacts keeps eft's bulk data (datasets, token shards, model
// snapshots, checkpoints, outputs) in a JetStream Object Store, content
// addressed: an object's name is the SHA-256 of its bytes, so equal inputs
// are stored once and a reference (events.ArtifactRef) says exactly which
// bytes it means. Reads verify the digest and size as they stream.
//
// Tags map a caller's key (a cache key: the hash of everything a result
// depends on) to an artifact, in a key-value bucket next to the objects.
package artifacts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eftml/eft/events"
)

// JetStream error codes of a store that has no room left: the stream's
// max bytes reached (a generic store failure whose description says so),
// or the server's or account's storage exhausted.
const (
	jsStoreFailed           = 10077
	jsInsufficientResources = 10023
)

// DefaultBucket is the object store bucket eft uses unless told otherwise.
const DefaultBucket = "EFT_ARTIFACTS"

// ErrNotFound is returned (wrapped) for a reference or tag that is not stored.
var ErrNotFound = errors.New("artifact not found")

// Store is one object store bucket and its tag bucket.
type Store struct {
	bucket string
	obs    jetstream.ObjectStore
	tags   jetstream.KeyValue
}

// Options for Open. The zero value uses file storage.
type Options struct {
	// MemoryStorage keeps objects in memory (tests, benchmarks).
	MemoryStorage bool
	// Replicas on a clustered server; 0 means 1.
	Replicas int
}

// Open creates the bucket (and its tag bucket, bucket+"_TAGS") if needed.
func Open(ctx context.Context, js jetstream.JetStream, bucket string, opts Options) (*Store, error) {
	if bucket == "" {
		bucket = DefaultBucket
	}
	storage := jetstream.FileStorage
	if opts.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	replicas := max(opts.Replicas, 1)
	// An existing bucket is used as it is: its limits (a quota an operator
	// set on OBJ_<bucket>) are not the services' to reset.
	obs, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      bucket,
			Description: "eft artifacts, named by the SHA-256 of their bytes",
			Storage:     storage,
			Replicas:    replicas,
			Compression: true,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: object store %s: %w", bucket, err)
	}
	tags, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      bucket + "_TAGS",
		Description: "eft artifact tags: cache key -> artifact",
		Storage:     storage,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("artifacts: tag bucket %s_TAGS: %w", bucket, err)
	}
	return &Store{bucket: bucket, obs: obs, tags: tags}, nil
}

// Bucket is the object store bucket's name.
func (s *Store) Bucket() string { return s.bucket }

// ObjectName is the name of the object whose SHA-256 is hexDigest.
func ObjectName(hexDigest string) string { return "sha256-" + hexDigest }

// Put streams r into the store and returns its reference. Bytes already
// stored are not stored twice: the upload goes to a temporary name and is
// renamed to its content address, or dropped when that exists.
func (s *Store) Put(ctx context.Context, r io.Reader) (events.ArtifactRef, error) {
	tmp := "upload-" + events.NewID()
	// The client hashes what it uploads (info.Digest): hashing it again
	// here cost as much as the upload's other work.
	info, err := s.obs.Put(ctx, jetstream.ObjectMeta{Name: tmp}, r)
	if err != nil {
		var api *jetstream.APIError
		if errors.As(err, &api) && (api.ErrorCode == jsStoreFailed && strings.Contains(api.Description, "maximum bytes") || api.ErrorCode == jsInsufficientResources) {
			return events.ArtifactRef{}, fmt.Errorf("artifacts: the object store %s is full (%s): raise its quota (max bytes of stream OBJ_%s) or free space on the NATS server: %w",
				s.bucket, api.Description, s.bucket, err)
		}
		return events.ArtifactRef{}, fmt.Errorf("artifacts: upload to %s: %w", s.bucket, err)
	}
	sum, err := jetstream.DecodeObjectDigest(info.Digest)
	if err == nil && len(sum) != sha256.Size {
		err = fmt.Errorf("%d bytes", len(sum))
	}
	if err != nil {
		_ = s.obs.Delete(ctx, tmp)
		return events.ArtifactRef{}, fmt.Errorf("artifacts: upload to %s: digest %q is not a SHA-256: %w", s.bucket, info.Digest, err)
	}
	ref := events.ArtifactRef{Bucket: s.bucket, Name: ObjectName(hex.EncodeToString(sum)), SHA256: hex.EncodeToString(sum), Size: int64(info.Size)}
	existing, err := s.obs.GetInfo(ctx, ref.Name)
	if err == nil && !existing.Deleted && existing.Digest == info.Digest {
		_ = s.obs.Delete(ctx, tmp)
		return ref, nil
	}
	if err := s.obs.UpdateMeta(ctx, tmp, jetstream.ObjectMeta{Name: ref.Name}); err != nil {
		_ = s.obs.Delete(ctx, tmp)
		if !errors.Is(err, jetstream.ErrObjectAlreadyExists) { // a concurrent identical upload won
			return events.ArtifactRef{}, fmt.Errorf("artifacts: naming %s: %w", ref, err)
		}
	}
	return ref, nil
}

// PutFile stores the file at path.
func (s *Store) PutFile(ctx context.Context, path string) (events.ArtifactRef, error) {
	f, err := os.Open(path)
	if err != nil {
		return events.ArtifactRef{}, fmt.Errorf("artifacts: %w", err)
	}
	defer f.Close()
	ref, err := s.Put(ctx, f)
	if err != nil {
		return ref, fmt.Errorf("%s: %w", path, err)
	}
	return ref, nil
}

// Has reports whether ref's object is stored with ref's size.
func (s *Store) Has(ctx context.Context, ref events.ArtifactRef) (bool, error) {
	if err := s.check(ref); err != nil {
		return false, err
	}
	info, err := s.obs.GetInfo(ctx, ref.Name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("artifacts: %s: %w", ref, err)
	}
	return !info.Deleted && int64(info.Size) == ref.Size, nil
}

func (s *Store) check(ref events.ArtifactRef) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if ref.Bucket != s.bucket {
		return fmt.Errorf("artifacts: %s is in bucket %s, this store is %s", ref, ref.Bucket, s.bucket)
	}
	return nil
}

// Open streams ref's bytes. It fails when the stored object's digest or
// size is not ref's, and the reader fails at the end (instead of returning
// io.EOF) when the bytes do not hash to that digest (the client checks
// them as they stream) or their count differs from ref.Size: a consumer
// must not trust data it read until EOF.
func (s *Store) Open(ctx context.Context, ref events.ArtifactRef) (io.ReadCloser, error) {
	if err := s.check(ref); err != nil {
		return nil, err
	}
	res, err := s.obs.Get(ctx, ref.Name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("artifacts: %s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("artifacts: %s: %w", ref, err)
	}
	info, err := res.Info()
	if err == nil {
		var sum []byte
		if sum, err = jetstream.DecodeObjectDigest(info.Digest); err == nil && hex.EncodeToString(sum) != ref.SHA256 {
			err = fmt.Errorf("stored sha256 %x, reference says %s", sum, ref.SHA256)
		}
	}
	if err == nil && int64(info.Size) != ref.Size {
		err = fmt.Errorf("stored %d bytes, reference says %d", info.Size, ref.Size)
	}
	if err != nil {
		res.Close()
		return nil, fmt.Errorf("artifacts: %s: %w", ref, err)
	}
	return &verifyingReader{r: res, closer: res, ref: ref}, nil
}

type verifyingReader struct {
	r      io.Reader
	closer io.Closer
	ref    events.ArtifactRef
	n      int64
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.n += int64(n)
	if v.n > v.ref.Size {
		return n, fmt.Errorf("artifacts: %s: more than its %d bytes", v.ref, v.ref.Size)
	}
	if errors.Is(err, io.EOF) && v.n != v.ref.Size {
		return n, fmt.Errorf("artifacts: %s: %d bytes, reference says %d", v.ref, v.n, v.ref.Size)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = fmt.Errorf("artifacts: reading %s: %w", v.ref, err)
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.closer.Close() }

// Get writes ref's bytes to w, verified.
func (s *Store) Get(ctx context.Context, ref events.ArtifactRef, w io.Writer) error {
	r, err := s.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r)
	return err
}

// ReadAll returns ref's bytes, verified, read into one buffer of their
// size. (A bytes.Buffer of exactly that size grows at its last read, where
// it needs room to see EOF and the client checks the digest: it doubles,
// allocating, zeroing and copying the whole artifact again.)
// The buffer is sized once Open has found the stored object of ref.Size
// bytes, never from the reference alone.
func (s *Store) ReadAll(ctx context.Context, ref events.ArtifactRef) ([]byte, error) {
	r, err := s.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	buf := bytes.NewBuffer(make([]byte, 0, int(ref.Size)+bytes.MinRead))
	if _, err := buf.ReadFrom(r); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// GetFile writes ref's bytes to path, which appears only once they are
// complete and verified.
func (s *Store) GetFile(ctx context.Context, ref events.ArtifactRef, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := s.Get(ctx, ref, tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	return nil
}

// GetFiles writes each file under dir at its path, refusing paths that
// would leave dir.
func (s *Store) GetFiles(ctx context.Context, files []events.FileRef, dir string) error {
	for _, f := range files {
		clean := filepath.Clean(filepath.FromSlash(f.Path))
		if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
			return fmt.Errorf("artifacts: file path %q leaves the output folder", f.Path)
		}
		if err := s.GetFile(ctx, f.Artifact, filepath.Join(dir, clean)); err != nil {
			return err
		}
	}
	return nil
}

// Tag points key at ref (keys: letters, digits, '-', '_', '=', '.', '/').
func (s *Store) Tag(ctx context.Context, key string, ref events.ArtifactRef) error {
	if err := s.check(ref); err != nil {
		return err
	}
	data := []byte(ref.Name + " " + ref.SHA256 + " " + fmt.Sprint(ref.Size))
	if _, err := s.tags.Put(ctx, key, data); err != nil {
		return fmt.Errorf("artifacts: tag %q: %w", key, err)
	}
	return nil
}

// Lookup returns the artifact key points at, if it is still stored.
func (s *Store) Lookup(ctx context.Context, key string) (events.ArtifactRef, bool, error) {
	entry, err := s.tags.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return events.ArtifactRef{}, false, nil
	}
	if err != nil {
		return events.ArtifactRef{}, false, fmt.Errorf("artifacts: tag %q: %w", key, err)
	}
	ref := events.ArtifactRef{Bucket: s.bucket}
	if _, err := fmt.Sscanf(string(entry.Value()), "%s %s %d", &ref.Name, &ref.SHA256, &ref.Size); err != nil {
		return events.ArtifactRef{}, false, fmt.Errorf("artifacts: tag %q holds %q: %w", key, entry.Value(), err)
	}
	ok, err := s.Has(ctx, ref)
	if err != nil || !ok {
		return events.ArtifactRef{}, false, err
	}
	return ref, true, nil
}
