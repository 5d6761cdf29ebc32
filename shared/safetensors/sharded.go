package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Index is a `<stem>.safetensors.index.json`: which shard holds each tensor.
type Index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// Sharded is a set of safetensors files read through their index.
type Sharded struct {
	path   string
	shards []*File
	where  map[string]*File
	names  []string
}

var _ Source = (*Sharded)(nil)

// OpenIndex opens every shard an index names and checks that each tensor
// the index lists is in its shard. Tensors a shard holds beyond the index are
// not visible, as in transformers.
func OpenIndex(path string) (*Sharded, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	var idx Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("safetensors: %s: %v", path, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("safetensors: %s: weight_map is missing or empty", path)
	}
	s := &Sharded{path: path, where: make(map[string]*File, len(idx.WeightMap))}
	byShard := map[string]*File{}
	dir := filepath.Dir(path)
	for _, name := range sortedKeys(idx.WeightMap) {
		shard := idx.WeightMap[name]
		if shard == "" || shard != filepath.Base(shard) || strings.HasPrefix(shard, ".") {
			s.Close()
			return nil, fmt.Errorf("safetensors: %s: weight_map[%q] = %q is not a file name in the index's directory", path, name, shard)
		}
		f := byShard[shard]
		if f == nil {
			f, err = Open(filepath.Join(dir, shard))
			if err != nil {
				s.Close()
				return nil, fmt.Errorf("safetensors: %s names shard %s: %w", path, shard, err)
			}
			byShard[shard] = f
			s.shards = append(s.shards, f)
		}
		if _, ok := f.infos[name]; !ok {
			s.Close()
			return nil, fmt.Errorf("safetensors: %s: weight_map puts %q in %s, which does not hold it", path, name, shard)
		}
		s.where[name] = f
		s.names = append(s.names, name)
	}
	return s, nil
}

// OpenModel opens the weights called stem in dir ("model" for
// model.safetensors, "adapter_model" for a PEFT adapter): the index
// `<stem>.safetensors.index.json` when there is one, else `<stem>.safetensors`.
func OpenModel(dir, stem string) (Source, error) {
	indexPath := filepath.Join(dir, stem+".safetensors.index.json")
	if _, err := os.Stat(indexPath); err == nil {
		return OpenIndex(indexPath)
	}
	single := filepath.Join(dir, stem+".safetensors")
	f, err := Open(single)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("safetensors: %s holds neither %s.safetensors nor %s.safetensors.index.json", dir, stem, stem)
	}
	return f, err
}

// Names lists the tensors in sorted order.
func (s *Sharded) Names() []string { return slices.Clone(s.names) }

// Info describes one tensor.
func (s *Sharded) Info(name string) (Info, bool) {
	f, ok := s.where[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// Tensor returns the named tensor from its shard.
func (s *Sharded) Tensor(name string) (Tensor, error) {
	f, ok := s.where[name]
	if !ok {
		return Tensor{}, s.missing(name)
	}
	return f.Tensor(name)
}

// Float32s returns a converted copy of a float tensor.
func (s *Sharded) Float32s(name string) ([]float32, error) {
	f, ok := s.where[name]
	if !ok {
		return nil, s.missing(name)
	}
	return f.Float32s(name)
}

func (s *Sharded) missing(name string) error {
	hint := ""
	if near := nearestName(name, s.names); near != "" {
		hint = fmt.Sprintf(" (did you mean %q?)", near)
	}
	return fmt.Errorf("safetensors: %s: no tensor %q%s", s.path, name, hint)
}

// Close releases every shard.
func (s *Sharded) Close() error {
	var errs []error
	for _, f := range s.shards {
		errs = append(errs, f.Close())
	}
	s.shards, s.where = nil, nil
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
