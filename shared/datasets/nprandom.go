package datasets

import "math/bits"

// This file is numpy's np.random.default_rng(seed) as far as Hugging Face
// datasets uses it: Dataset.shuffle(seed=s) is
// default_rng(s).permutation(len(ds)), so Axolotl's `seed:` orders rows
// this way. default_rng(s) is Generator(PCG64(SeedSequence(s))).
//
// Checked against numpy's source (numpy/random/bit_generator.pyx,
// _pcg64.pyx, src/pcg64/pcg64.h, _generator.pyx, src/distributions/
// distributions.c): SeedSequence's hashing, PCG64's seeding and XSL-RR
// output, next_uint32's buffered upper half, Generator.shuffle's
// Fisher–Yates over random_interval are the same in numpy 1.24 (Debian's,
// which made testdata/datasets/numpy/oracle.json) and numpy 2.x main
// (2026-08); numpy promises this stream for a fixed seed.

// SeedSequence constants (numpy/random/bit_generator.pyx).
const (
	ssPoolSize = 4
	ssInitA    = 0x43b0d7e5
	ssMultA    = 0x931e8875
	ssInitB    = 0x8b51f9dd
	ssMultB    = 0x58f38ded
	ssMixMultL = 0xca01f9dd
	ssMixMultR = 0x4973f715
	ssXShift   = 16
)

// seedSequencePool is SeedSequence(seed).pool: the seed's 32-bit words
// (lowest first; 0 is one word) hashed and mixed into four words.
func seedSequencePool(seed uint64) [ssPoolSize]uint32 {
	entropy := []uint32{uint32(seed)}
	if hi := uint32(seed >> 32); hi != 0 {
		entropy = append(entropy, hi)
	}
	hashConst := uint32(ssInitA)
	hashmix := func(v uint32) uint32 {
		v ^= hashConst
		hashConst *= ssMultA
		v *= hashConst
		return v ^ v>>ssXShift
	}
	mix := func(x, y uint32) uint32 {
		r := ssMixMultL*x - ssMixMultR*y
		return r ^ r>>ssXShift
	}
	var pool [ssPoolSize]uint32
	for i := range pool {
		if i < len(entropy) {
			pool[i] = hashmix(entropy[i])
		} else {
			pool[i] = hashmix(0)
		}
	}
	for src := range pool {
		for dst := range pool {
			if src != dst {
				pool[dst] = mix(pool[dst], hashmix(pool[src]))
			}
		}
	}
	// A seed has at most two words, fewer than the pool: nothing is left to
	// mix in afterwards.
	return pool
}

// seedSequenceState is SeedSequence(seed).generate_state(4, np.uint64).
func seedSequenceState(seed uint64) [4]uint64 {
	pool := seedSequencePool(seed)
	hashConst := uint32(ssInitB)
	var words [8]uint32
	for i := range words {
		v := pool[i%ssPoolSize]
		v ^= hashConst
		hashConst *= ssMultB
		v *= hashConst
		words[i] = v ^ v>>ssXShift
	}
	var out [4]uint64
	for i := range out { // little-endian pairs of 32-bit words
		out[i] = uint64(words[2*i]) | uint64(words[2*i+1])<<32
	}
	return out
}

// PCG64's 128-bit LCG multiplier (pcg64.h PCG_DEFAULT_MULTIPLIER_*).
const (
	pcgMultHi = 2549297995355413924
	pcgMultLo = 4865540595714422341
)

// NumpyRNG is numpy's default_rng(seed): PCG64 (XSL-RR 128/64) seeded by
// SeedSequence, with next_uint32's spare upper half.
type NumpyRNG struct {
	stateHi, stateLo uint64
	incHi, incLo     uint64
	hasUint32        bool
	uinteger         uint32
}

// NewNumpyRNG returns np.random.default_rng(seed).
func NewNumpyRNG(seed uint64) *NumpyRNG {
	st := seedSequenceState(seed)
	r := &NumpyRNG{}
	// pcg64_set_seed(state = st[0]<<64 | st[1], inc = st[2]<<64 | st[3]),
	// then pcg_setseq_128_srandom_r.
	r.incHi = st[2]<<1 | st[3]>>63
	r.incLo = st[3]<<1 | 1
	r.step()
	var carry uint64
	r.stateLo, carry = bits.Add64(r.stateLo, st[1], 0)
	r.stateHi, _ = bits.Add64(r.stateHi, st[0], carry)
	r.step()
	return r
}

// step advances the LCG: state = state*mult + inc (mod 2^128).
func (r *NumpyRNG) step() {
	hi, lo := bits.Mul64(r.stateLo, pcgMultLo)
	hi += r.stateHi*pcgMultLo + r.stateLo*pcgMultHi
	var carry uint64
	r.stateLo, carry = bits.Add64(lo, r.incLo, 0)
	r.stateHi, _ = bits.Add64(hi, r.incHi, carry)
}

// Uint64 is next_uint64: one step, then the XSL-RR output. It leaves a
// buffered 32-bit half alone.
func (r *NumpyRNG) Uint64() uint64 {
	r.step()
	return bits.RotateLeft64(r.stateHi^r.stateLo, -int(r.stateHi>>58))
}

// Uint32 is next_uint32: the low half of a new 64-bit output, whose high
// half the next call returns.
func (r *NumpyRNG) Uint32() uint32 {
	if r.hasUint32 {
		r.hasUint32 = false
		return r.uinteger
	}
	next := r.Uint64()
	r.hasUint32 = true
	r.uinteger = uint32(next >> 32)
	return uint32(next)
}

// Interval is numpy's random_interval(max): a value in [0, max] by masking
// to max's bit length and rejecting values above it, from 32-bit draws
// while max fits in 32 bits and 64-bit draws above.
func (r *NumpyRNG) Interval(max uint64) uint64 {
	if max == 0 {
		return 0
	}
	mask := uint64(1)<<bits.Len64(max) - 1 // all ones when max needs 64 bits
	if max <= 0xffffffff {
		for {
			if v := uint64(r.Uint32()) & mask; v <= max {
				return v
			}
		}
	}
	for {
		if v := r.Uint64() & mask; v <= max {
			return v
		}
	}
}

// Permutation is Generator.permutation(n): arange(n) shuffled in place by
// Fisher–Yates from the last element down, j = random_interval(i).
func (r *NumpyRNG) Permutation(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := int(r.Interval(uint64(i)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// NumpyPermutation is np.random.default_rng(seed).permutation(n): the order
// in which Hugging Face datasets' shuffle(seed=seed) puts n rows (row
// p[k] goes to position k).
func NumpyPermutation(seed uint64, n int) []int {
	return NewNumpyRNG(seed).Permutation(n)
}
