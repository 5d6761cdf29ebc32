package datasets

import (
	"crypto/sha256"
	"fmt"
	"math"
	"math/rand/v2"
)

// PrepareOptions are the dataset-level settings Axolotl applies between
// loading and tokenizing. The zero value shuffles (Axolotl's
// shuffle_merged_datasets defaults to true) with seed 0.
type PrepareOptions struct {
	Seed       uint64
	KeepOrder  bool    // shuffle_merged_datasets: false
	Dedup      bool    // dataset_exact_deduplication
	ValSetSize float64 // val_set_size: a fraction in (0,1), or a row count when > 1; 0 for none
}

// Prepared is the outcome of Prepare.
type Prepared struct {
	Train      []Record
	Eval       []Record // nil without a validation split
	Duplicates int      // rows dropped by deduplication
}

// Prepare merges the datasets of one config in order, shuffles the result
// with the seed, drops exact duplicate rows (keeping the first) and splits
// off the validation rows — the last ones, as Axolotl calls
// train_test_split(shuffle=False) on the already shuffled merge.
func Prepare(parts [][]Record, o PrepareOptions) (Prepared, error) {
	var rows []Record
	for _, p := range parts {
		rows = append(rows, p...)
	}
	if !o.KeepOrder {
		Shuffle(rows, o.Seed)
	}
	var out Prepared
	if o.Dedup {
		rows, out.Duplicates = Dedup(rows, nil)
	}
	if o.ValSetSize == 0 {
		out.Train = rows
		return out, nil
	}
	nEval, err := evalCount(len(rows), o.ValSetSize)
	if err != nil {
		return Prepared{}, err
	}
	nTrain := len(rows) - nEval
	out.Train = rows[:nTrain:nTrain]
	out.Eval = rows[nTrain:]
	return out, nil
}

// evalCount mirrors datasets' train_test_split: a fraction rounds up, and
// both sides must keep at least one row.
func evalCount(n int, size float64) (int, error) {
	var nEval int
	switch {
	case size < 0 || math.IsNaN(size):
		return 0, fmt.Errorf("val_set_size %v must be a fraction in (0,1) or a row count", size)
	case size < 1:
		nEval = int(math.Ceil(size * float64(n)))
	case size == 1:
		return 0, fmt.Errorf("val_set_size 1.0 would leave no training rows; use a fraction below 1 or a count above 1")
	default:
		if size != math.Trunc(size) {
			return 0, fmt.Errorf("val_set_size %v above 1 must be a whole row count", size)
		}
		nEval = int(size)
	}
	if nEval <= 0 || nEval >= n {
		return 0, fmt.Errorf("val_set_size %v gives %d validation rows out of %d; both splits need at least one row", size, nEval, n)
	}
	return nEval, nil
}

// Shuffle permutes rows in place, the same way for the same seed and length
// on every platform (Fisher–Yates driven by PCG, whose sequence Go fixes).
func Shuffle(rows []Record, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := len(rows) - 1; i > 0; i-- {
		j := rng.IntN(i + 1)
		rows[i], rows[j] = rows[j], rows[i]
	}
}

// RowKey is a digest of a row's fields (names, order and values), equal for
// rows that are exactly the same.
func RowKey(fields Object) [32]byte {
	return sha256.Sum256(AppendJSON(nil, fields))
}

// Dedup keeps the first of each set of identical rows and drops rows also
// present in against (e.g. eval rows seen in train). It returns the kept
// rows and how many it dropped.
func Dedup(rows []Record, against []Record) ([]Record, int) {
	seen := make(map[[32]byte]struct{}, len(rows)+len(against))
	for _, r := range against {
		seen[RowKey(r.Fields)] = struct{}{}
	}
	kept := rows[:0:0]
	for _, r := range rows {
		k := RowKey(r.Fields)
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		kept = append(kept, r)
	}
	return kept, len(rows) - len(kept)
}
