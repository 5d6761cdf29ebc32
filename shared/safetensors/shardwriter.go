package safetensors

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/eftml/eft/shared/pyjson"
)

// DefaultMaxShardSize is transformers' save_pretrained default shard size.
const DefaultMaxShardSize int64 = 5 << 30

// WriteModel saves tensors under dir the way transformers' save_pretrained
// does: one `<stem>.safetensors` when everything fits in maxShardSize bytes,
// else `<stem>-00001-of-0000N.safetensors` shards plus
// `<stem>.safetensors.index.json`. Tensors fill shards in the order given
// (pass the state-dict order); a tensor larger than maxShardSize gets a shard
// of its own, as huggingface_hub's split_state_dict_into_shards does. Each file
// is written atomically; a stale index or shards of an earlier save with a
// different shard count are removed so loaders cannot mix the two. It returns
// the file names written.
func WriteModel(dir, stem string, tensors []NamedTensor, metadata map[string]string, maxShardSize int64) ([]string, error) {
	if maxShardSize <= 0 {
		maxShardSize = DefaultMaxShardSize
	}
	var shards [][]NamedTensor
	var current []NamedTensor
	var currentSize, totalSize, totalParams int64
	for _, t := range tensors {
		size := int64(len(t.Data))
		totalSize += size
		totalParams += int64(t.NumElements())
		if size > maxShardSize {
			shards = append(shards, []NamedTensor{t})
			continue
		}
		if currentSize+size > maxShardSize && len(current) > 0 {
			shards = append(shards, current)
			current, currentSize = nil, 0
		}
		current = append(current, t)
		currentSize += size
	}
	if len(current) > 0 || len(shards) == 0 {
		shards = append(shards, current)
	}
	// Validate every shard before writing anything.
	plans := make([]*layout, len(shards))
	for i, s := range shards {
		l, err := plan(s, metadata)
		if err != nil {
			return nil, fmt.Errorf("safetensors: %s: %w", dir, err)
		}
		plans[i] = l
	}
	indexPath := filepath.Join(dir, stem+".safetensors.index.json")
	if len(shards) == 1 {
		name := stem + ".safetensors"
		if err := WriteAtomic(filepath.Join(dir, name), plans[0].write); err != nil {
			return nil, err
		}
		removeStaleShards(dir, stem, 0)
		os.Remove(indexPath)
		return []string{name}, nil
	}
	weightMap := map[string]string{}
	var names []string
	for i, l := range plans {
		name := fmt.Sprintf("%s-%05d-of-%05d.safetensors", stem, i+1, len(plans))
		if err := WriteAtomic(filepath.Join(dir, name), l.write); err != nil {
			return nil, err
		}
		for _, t := range l.ordered {
			weightMap[t.Name] = name
		}
		names = append(names, name)
	}
	index, err := encodeIndex(totalParams, totalSize, weightMap)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", indexPath, err)
	}
	if err := WriteAtomic(indexPath, func(w io.Writer) error { _, err := w.Write(index); return err }); err != nil {
		return nil, err
	}
	removeStaleShards(dir, stem, len(plans))
	os.Remove(filepath.Join(dir, stem+".safetensors"))
	return append(names, filepath.Base(indexPath)), nil
}

// removeStaleShards deletes `<stem>-*-of-*.safetensors` files whose shard
// count differs from keep (0: all of them).
func removeStaleShards(dir, stem string, keep int) {
	matches, _ := filepath.Glob(filepath.Join(dir, stem+"-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].safetensors"))
	suffix := fmt.Sprintf("-of-%05d.safetensors", keep)
	for _, m := range matches {
		if keep == 0 || m[len(m)-len(suffix):] != suffix {
			os.Remove(m)
		}
	}
}

// encodeIndex writes the index as Python's json.dumps(index, indent=2,
// sort_keys=True) + "\n" does, which is what transformers writes.
func encodeIndex(totalParams, totalSize int64, weightMap map[string]string) ([]byte, error) {
	index := map[string]any{
		"metadata":   map[string]any{"total_parameters": totalParams, "total_size": totalSize},
		"weight_map": weightMap,
	}
	b, err := pyjson.Marshal(index, pyjson.Options{Indent: "  "})
	return append(b, '\n'), err
}
