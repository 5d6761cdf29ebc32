package tokenizer

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/eftml/eft/shared/datasets"
	"github.com/eftml/eft/shared/packing"
	"github.com/eftml/eft/shared/prompt"
)

// What Axolotl (utils/data/sft.py _load_raw_datasets, shared.py
// merge_datasets and create_train_validation_split, at 067b021) does to a
// split between tokenizing and packing, in its order:
//
//  1. each dataset is tokenized (one row per input row, or one per
//     sequence_len piece for completion, none for an empty text) and the
//     datasets concatenated in config order;
//  2. unless shuffle_merged_datasets is false, the merge is shuffled with
//     datasets' shuffle(seed=cfg.seed) — one dataset too, and test_datasets
//     as well: numpy's default_rng(seed).permutation(rows);
//  3. samples outside [2, sequence_len] tokens are dropped (or truncated),
//     and, when packing, those with no trained token;
//  4. dataset_exact_deduplication keeps the first of identical tokenized
//     rows (sha256 of str(row): input_ids, attention_mask, labels);
//  5. val_set_size holds out the last samples
//     (train_test_split(shuffle=False)); test_datasets are not split.
//
// Tokenize does 1 and 3 at once and records where each surviving sample
// stood among all the samples of step 1 (Tokenized.Slot), so Arrange can
// replay the shuffle of step 2 over the same count and then keep only the
// survivors: filtering commutes with the permutation, the count does not.

// axolotlRows is how many rows Axolotl's tokenizing map makes of a row
// that made `made` samples here: completion's batched map one per piece
// (none for an empty text), every other strategy exactly one (an empty
// one where eft makes no sample, e.g. a conversation drop_system_message
// emptied; its length filter drops it).
func axolotlRows(s prompt.Strategy, made int) int {
	if s.Name() == "completion" {
		return made
	}
	return 1
}

// OrderOptions are the dataset-level settings of one split.
type OrderOptions struct {
	Shuffle bool   // shuffle_merged_datasets
	Seed    uint64 // seed
	Dedup   bool   // dataset_exact_deduplication
}

// Arrange puts t's samples in the order Axolotl gives them (steps 2 and 4
// above) and returns how many duplicates it dropped.
func Arrange(t *Tokenized, o OrderOptions) (duplicates int) {
	shuffle := o.Shuffle && t.Slots > 1
	if !shuffle && !o.Dedup {
		return 0
	}
	order := t.order(shuffle, o.Seed)
	if o.Dedup {
		// Walking the shuffled order drops the same repeats (all but the
		// first in that order) as deduplicating after a shuffle would,
		// without moving the samples twice.
		seen := make(map[[32]byte]struct{}, len(order))
		kept := order[:0] // in place: kept never gets ahead of the walk
		var buf []byte
		for _, i := range order {
			s := t.Samples[i]
			buf = sampleKey(buf[:0], s)
			k := sha256.Sum256(buf)
			if _, dup := seen[k]; dup {
				// Tokens and Trained are the samples' sums: take the
				// repeat's share off rather than recount the rest.
				t.Tokens -= int64(len(s.InputIDs))
				t.Trained -= int64(s.CountTrained())
				continue
			}
			seen[k] = struct{}{}
			kept = append(kept, i)
		}
		duplicates = len(order) - len(kept)
		order = kept
	}
	if !shuffle && duplicates == 0 {
		return 0 // nothing moved, nothing left out
	}
	t.keep(order)
	return duplicates
}

// order lists the indices of t's samples in the order the shuffle of step
// 2 leaves them (or as they stand, without it).
func (t *Tokenized) order(shuffle bool, seed uint64) []int {
	if !shuffle {
		order := make([]int, len(t.Samples))
		for i := range order {
			order[i] = i
		}
		return order
	}
	at := make([]int32, t.Slots)
	for i := range at {
		at[i] = -1
	}
	for i, s := range t.Slot {
		at[s] = int32(i)
	}
	// The survivors are written over the permutation itself: one slot read
	// gives at most one index written.
	perm := datasets.NumpyPermutation(seed, t.Slots)
	order := perm[:0]
	for _, s := range perm {
		if i := at[s]; i >= 0 {
			order = append(order, int(i))
		}
	}
	return order
}

// sampleKey is what makes two tokenized rows equal for Axolotl's
// deduplication: the ids and the labels (the attention mask is all ones
// here: pre-tokenized rows lose their masked positions).
func sampleKey(buf []byte, s packing.Sample) []byte {
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(s.InputIDs)))
	for _, v := range s.InputIDs {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(v))
	}
	for i := range s.InputIDs {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(s.Label(i)))
	}
	return buf
}

// SplitValidation holds out the last samples of t as val_set_size says
// (step 5) and returns them; t keeps the rest.
func SplitValidation(t *Tokenized, valSetSize float64) (*Tokenized, error) {
	nEval, err := datasets.ValidationCount(len(t.Samples), valSetSize)
	if err != nil || nEval == 0 {
		return nil, err
	}
	nTrain := len(t.Samples) - nEval
	eval := &Tokenized{
		Samples: t.Samples[nTrain:], Rows: t.Rows[nTrain:], Slot: t.Slot[nTrain:], Slots: t.Slots,
	}
	t.Samples, t.Rows, t.Slot = t.Samples[:nTrain:nTrain], t.Rows[:nTrain:nTrain], t.Slot[:nTrain:nTrain]
	t.count()
	eval.count()
	return eval, nil
}

// keep reorders (and thins) t's parallel arrays to order, a list of
// indices into them; the caller keeps Tokens and Trained in step.
func (t *Tokenized) keep(order []int) {
	samples := make([]packing.Sample, len(order))
	rows := make([]int, len(order))
	slot := make([]int, len(order))
	for k, i := range order {
		samples[k], rows[k], slot[k] = t.Samples[i], t.Rows[i], t.Slot[i]
	}
	t.Samples, t.Rows, t.Slot = samples, rows, slot
}

// count recomputes Tokens and Trained from the samples.
func (t *Tokenized) count() {
	t.Tokens, t.Trained = 0, 0
	for _, s := range t.Samples {
		t.Tokens += int64(len(s.InputIDs))
		t.Trained += int64(s.CountTrained())
	}
}
