package tokenizer

import "math/bits"

// pairTable maps a pair of token ids to a merge's rank and resulting id. It
// is an open-addressing hash table (linear probing) over one flat slice:
// BPE asks it for every adjacent pair of every word, and it answers in a
// couple of nanoseconds without the overhead of a Go map.
type pairTable struct {
	slots []pairSlot
	mask  uint64
	shift uint
	n     int
}

type pairSlot struct {
	key uint64 // left<<32 | right, plus 1 so that 0 means empty
	val uint64 // rank<<32 | merged id
}

func newPairTable(n int) *pairTable {
	size := 16
	for size*7/10 < n {
		size *= 2
	}
	return &pairTable{
		slots: make([]pairSlot, size),
		mask:  uint64(size - 1),
		shift: uint(64 - bits.TrailingZeros(uint(size))),
	}
}

func pairKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

func (t *pairTable) index(key uint64) uint64 { return (key * 0x9E3779B97F4A7C15) >> t.shift }

// put sets the merge of (left, right); a later put of the same pair wins,
// as in Hugging Face's merge map built from the merges list in order.
func (t *pairTable) put(left, right int32, rank int32, merged int32) {
	key := pairKey(left, right) + 1
	val := uint64(uint32(rank))<<32 | uint64(uint32(merged))
	for i := t.index(key); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.key == 0 {
			s.key, s.val = key, val
			t.n++
			if t.n*10 > len(t.slots)*7 {
				t.grow()
			}
			return
		}
		if s.key == key {
			s.val = val
			return
		}
	}
}

func (t *pairTable) grow() {
	old := t.slots
	size := len(old) * 2
	t.slots = make([]pairSlot, size)
	t.mask = uint64(size - 1)
	t.shift = uint(64 - bits.TrailingZeros(uint(size)))
	t.n = 0
	for _, s := range old {
		if s.key != 0 {
			k := s.key - 1
			t.put(int32(uint32(k>>32)), int32(uint32(k)), int32(uint32(s.val>>32)), int32(uint32(s.val)))
		}
	}
}

// get returns the rank and merged id of (left, right).
func (t *pairTable) get(left, right int32) (rank int32, merged int32, ok bool) {
	key := pairKey(left, right) + 1
	for i := t.index(key); ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.key == key {
			return int32(uint32(s.val >> 32)), int32(uint32(s.val)), true
		}
		if s.key == 0 {
			return 0, 0, false
		}
	}
}
