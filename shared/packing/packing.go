package packing

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
)

// Options configure packing. SequenceLen and MicroBatchSize must be positive.
type Options struct {
	SequenceLen      int    // sequence_len: tokens per row
	MicroBatchSize   int    // micro_batch_size: rows per micro-batch
	Pack             bool   // sample_packing
	PadToSequenceLen bool   // pad_to_sequence_len (rows are always sequence_len wide when packing)
	PadTokenID       int32  // input id written into padding
	Seed             uint64 // orders samples and bins
}

// MicroBatch is Rows rows of Width tokens, row-major.
type MicroBatch struct {
	Rows        int
	Width       int
	InputIDs    []int32 // Rows*Width; PadTokenID after a row's length
	Labels      []int32 // Rows*Width; IgnoreIndex in padding
	PositionIDs []int32 // Rows*Width; restart at 0 for every sample, 0 in padding
	RowLengths  []int32 // real tokens per row
	// Boundaries[r] holds the offsets where the samples of row r start plus
	// the row's length: cu_seqlens of that row, [0, len0, len0+len1, ...].
	Boundaries [][]int32
	// SampleIDs[r] are the indices (into the input samples) packed in row r.
	SampleIDs [][]int32
}

// Stats describe a packing.
type Stats struct {
	Samples      int
	Tokens       int // real tokens placed
	Rows         int
	MicroBatches int
	// Efficiency is Tokens over the slots of all rows (Rows × sequence_len
	// when packing; the padded width otherwise): 1 means no padding at all.
	Efficiency float64
}

// Build orders, bins and lays out the samples into micro-batches.
func Build(samples []Sample, o Options) ([]MicroBatch, Stats, error) {
	p, err := Pack(samples, o)
	if err != nil {
		return nil, Stats{}, err
	}
	batches := make([]MicroBatch, p.Len())
	for i := range batches {
		p.LayoutInto(&batches[i], i)
	}
	return batches, p.Stats, nil
}

// Batches are micro-batches decided but not laid out: which samples go in
// which row of which one. A caller that streams micro-batches lays each out
// in turn (LayoutInto, reusing its arrays, from several goroutines if it
// likes) instead of holding them all, as Build does.
type Batches struct {
	Stats   Stats
	samples []Sample
	groups  [][][]int // micro-batch → row → sample indices
	widths  []int
	pad     int32
}

// Pack orders and bins the samples into micro-batches, laid out on demand.
func Pack(samples []Sample, o Options) (*Batches, error) {
	if o.SequenceLen <= 0 || o.MicroBatchSize <= 0 {
		return nil, fmt.Errorf("packing: sequence_len %d and micro_batch_size %d must be positive", o.SequenceLen, o.MicroBatchSize)
	}
	lengths := make([]int, len(samples))
	for i, s := range samples {
		if err := s.Check(); err != nil {
			return nil, fmt.Errorf("packing: sample %d: %w", i, err)
		}
		if len(s.InputIDs) == 0 {
			return nil, fmt.Errorf("packing: sample %d is empty", i)
		}
		if len(s.InputIDs) > o.SequenceLen {
			return nil, fmt.Errorf("packing: sample %d has %d tokens, more than sequence_len %d (drop or truncate it first)", i, len(s.InputIDs), o.SequenceLen)
		}
		lengths[i] = len(s.InputIDs)
	}
	var rows [][]int
	if o.Pack {
		rows = Bins(lengths, o.SequenceLen, o.Seed)
	} else {
		order := shuffled(len(samples), o.Seed)
		rows = make([][]int, len(order))
		for i, s := range order {
			rows[i] = []int{s}
		}
	}
	p := &Batches{samples: samples, pad: o.PadTokenID, Stats: Stats{Samples: len(samples), Rows: len(rows)}}
	slots := 0
	for start := 0; start < len(rows); start += o.MicroBatchSize {
		group := rows[start:min(start+o.MicroBatchSize, len(rows))]
		width := o.SequenceLen
		if !o.Pack && !o.PadToSequenceLen {
			width = 0
			for _, r := range group {
				width = max(width, lengths[r[0]])
			}
		}
		for _, r := range group {
			for _, id := range r {
				p.Stats.Tokens += lengths[id]
			}
		}
		slots += len(group) * width
		p.groups = append(p.groups, group)
		p.widths = append(p.widths, width)
	}
	p.Stats.MicroBatches = len(p.groups)
	if slots > 0 {
		p.Stats.Efficiency = float64(p.Stats.Tokens) / float64(slots)
	}
	return p, nil
}

// Len is the number of micro-batches.
func (p *Batches) Len() int { return len(p.groups) }

// Group is micro-batch i undecided by layout: its rows, each the indices of
// the samples it holds in turn (shared: not to be changed), and its width.
func (p *Batches) Group(i int) (rows [][]int, width int) { return p.groups[i], p.widths[i] }

// Sample is packed sample id (an index into the samples given to Pack).
func (p *Batches) Sample(id int) Sample { return p.samples[id] }

// PadTokenID is the input id of padding (Options.PadTokenID).
func (p *Batches) PadTokenID() int32 { return p.pad }

// LayoutInto lays out micro-batch i into mb, reusing mb's arrays where they
// have room (a zero MicroBatch gets new ones).
func (p *Batches) LayoutInto(mb *MicroBatch, i int) {
	group, width := p.groups[i], p.widths[i]
	n := len(group) * width
	*mb = MicroBatch{
		Rows: len(group), Width: width,
		InputIDs: resize(mb.InputIDs, n), Labels: resize(mb.Labels, n), PositionIDs: resize(mb.PositionIDs, n),
		RowLengths: resize(mb.RowLengths, len(group)), Boundaries: resizeRows(mb.Boundaries, len(group)), SampleIDs: resizeRows(mb.SampleIDs, len(group)),
	}
	for r, ids := range group {
		row := r * width
		at := 0
		bounds := append(mb.Boundaries[r][:0], 0)
		sampleIDs := mb.SampleIDs[r][:0]
		for _, id := range ids {
			s := p.samples[id]
			copy(mb.InputIDs[row+at:], s.InputIDs)
			s.AppendLabels(mb.Labels[row+at : row+at])
			for k := range s.InputIDs {
				mb.PositionIDs[row+at+k] = int32(k)
			}
			at += len(s.InputIDs)
			bounds = append(bounds, int32(at))
			sampleIDs = append(sampleIDs, int32(id))
		}
		for k := at; k < width; k++ {
			mb.InputIDs[row+k] = p.pad
			mb.Labels[row+k] = IgnoreIndex
			mb.PositionIDs[row+k] = 0
		}
		mb.RowLengths[r] = int32(at)
		mb.Boundaries[r] = bounds
		mb.SampleIDs[r] = sampleIDs
	}
}

func resize(a []int32, n int) []int32 {
	if cap(a) < n {
		return make([]int32, n)
	}
	return a[:n]
}

func resizeRows(a [][]int32, n int) [][]int32 {
	if cap(a) < n {
		return append(a[:cap(a)], make([][]int32, n-cap(a))...)
	}
	return a[:n]
}

// longestFirst reorders order by decreasing length, keeping its order among
// equal lengths: a counting sort when the lengths are small (sequence
// lengths are), a stable comparison sort otherwise.
func longestFirst(order, lengths []int) []int {
	longest := 0
	for _, l := range lengths {
		if l < 0 || l > maxCountedLength {
			slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(lengths[b], lengths[a]) })
			return order
		}
		longest = max(longest, l)
	}
	// starts[k] is where items of length longest-k begin in the result.
	starts := make([]int, longest+2)
	for _, l := range lengths {
		starts[longest-l+1]++
	}
	for k := 1; k < len(starts); k++ {
		starts[k] += starts[k-1]
	}
	out := make([]int, len(order))
	for _, item := range order {
		k := longest - lengths[item]
		out[starts[k]] = item
		starts[k]++
	}
	return out
}

// maxCountedLength bounds longestFirst's counting table (8 MB).
const maxCountedLength = 1 << 20

// shuffled is a seeded permutation of 0..n-1.
func shuffled(n int, seed uint64) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(seed, 0x5851f42d4c957f2d))
	rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// Bins packs items of the given lengths into bins of the given capacity by
// first-fit decreasing: items are taken longest first (ties in a seeded
// random order) and each goes into the first bin with room. The bins are
// then put in a seeded random order, so micro-batches do not run from full
// to sparse. Every length must be in [1, capacity].
func Bins(lengths []int, capacity int, seed uint64) [][]int {
	order := longestFirst(shuffled(len(lengths), seed), lengths)

	// A max segment tree over the bins' free space finds the first bin with
	// room in O(log bins), so packing 100k samples stays fast.
	size := 1
	for size < len(lengths) {
		size *= 2
	}
	free := make([]int, 2*size) // leaves: free space of bin i (0 for unopened bins)
	var bins [][]int
	for _, item := range order {
		need := lengths[item]
		var b int
		if free[1] >= need {
			node := 1
			for node < size {
				if free[2*node] >= need {
					node = 2 * node
				} else {
					node = 2*node + 1
				}
			}
			b = node - size
		} else {
			b = len(bins)
			bins = append(bins, nil)
			free[size+b] = capacity
		}
		bins[b] = append(bins[b], item)
		node := size + b
		free[node] -= need
		for node /= 2; node >= 1; node /= 2 {
			free[node] = max(free[2*node], free[2*node+1])
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x14057b7ef767814f))
	rng.Shuffle(len(bins), func(i, j int) { bins[i], bins[j] = bins[j], bins[i] })
	return bins
}
