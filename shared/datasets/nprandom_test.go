package datasets

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/eftml/eft/shared/testfixtures"
)

// numpyOracle is testdata/datasets/numpy/oracle.json, written by
// make_oracle.py beside it with Debian's numpy.
type numpyOracle struct {
	Numpy string `json:"numpy"`
	Seeds []struct {
		Seed  string     `json:"seed"`
		Pool  [4]uint32  `json:"pool"`
		State [4]string  `json:"state_uint64"`
		Raw   []rawDraw  `json:"raw"`
		Perms []permCase `json:"permutations"`
	} `json:"seeds"`
}

type rawDraw struct {
	Bits  int    `json:"bits"`
	Value string `json:"value"`
}

type permCase struct {
	N      int    `json:"n"`
	Perm   []int  `json:"perm"`
	SHA256 string `json:"sha256_le_int64"`
	Head   []int  `json:"head"`
	Tail   []int  `json:"tail"`
}

func loadNumpyOracle(t *testing.T) numpyOracle {
	t.Helper()
	data, err := os.ReadFile(testfixtures.Path(t, "datasets", "numpy", "oracle.json"))
	if err != nil {
		t.Fatal(err)
	}
	var o numpyOracle
	if err := json.Unmarshal(data, &o); err != nil {
		t.Fatal(err)
	}
	if len(o.Seeds) == 0 {
		t.Fatal("oracle has no seeds")
	}
	return o
}

func mustUint(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSeedSequenceMatchesNumpy(t *testing.T) {
	for _, c := range loadNumpyOracle(t).Seeds {
		seed := mustUint(t, c.Seed)
		if got := seedSequencePool(seed); got != c.Pool {
			t.Errorf("seed %d: pool %v, numpy %v", seed, got, c.Pool)
		}
		got := seedSequenceState(seed)
		for i, s := range c.State {
			if want := mustUint(t, s); got[i] != want {
				t.Errorf("seed %d: generate_state(4, uint64)[%d] = %d, numpy %d", seed, i, got[i], want)
			}
		}
	}
}

// TestPCG64DrawsMatchNumpy interleaves 32- and 64-bit draws as numpy's C
// next_uint32 / next_uint64 gave them: a 64-bit draw leaves the spare
// upper half of an earlier 32-bit draw for the next 32-bit one.
func TestPCG64DrawsMatchNumpy(t *testing.T) {
	for _, c := range loadNumpyOracle(t).Seeds {
		seed := mustUint(t, c.Seed)
		r := NewNumpyRNG(seed)
		for i, d := range c.Raw {
			want := mustUint(t, d.Value)
			var got uint64
			if d.Bits == 32 {
				got = uint64(r.Uint32())
			} else {
				got = r.Uint64()
			}
			if got != want {
				t.Fatalf("seed %d draw %d (%d-bit) = %d, numpy %d", seed, i, d.Bits, got, want)
			}
		}
	}
}

// TestIntervalSixtyFourBitPath checks random_interval above 2^32 - 1 on
// numpy's own 64-bit outputs: the masked value, the first one not above
// max. (No numpy call reaches this path with arrays that fit in memory.)
func TestIntervalSixtyFourBitPath(t *testing.T) {
	const seed = 42
	stream := NewNumpyRNG(seed)
	var raw []uint64
	for range 64 {
		raw = append(raw, stream.Uint64())
	}
	r := NewNumpyRNG(seed)
	next := 0
	for _, max := range []uint64{1 << 32, 1<<33 + 12345, 1<<40 - 1, 3 << 61, 1<<63 + 1, ^uint64(0)} {
		mask := uint64(1)<<(64-leadingZeros(max)) - 1
		want := uint64(0)
		for {
			v := raw[next] & mask
			next++
			if v <= max {
				want = v
				break
			}
		}
		if got := r.Interval(max); got != want {
			t.Fatalf("Interval(%d) = %d, want %d", max, got, want)
		}
	}
	if r.Uint64() != raw[next] {
		t.Fatal("Interval drew a different number of values than the rejection rule needs")
	}
}

func leadingZeros(x uint64) int {
	n := 0
	for i := 63; i >= 0 && x&(1<<i) == 0; i-- {
		n++
	}
	return n
}

func TestPermutationMatchesNumpy(t *testing.T) {
	o := loadNumpyOracle(t)
	checked := 0
	for _, c := range o.Seeds {
		seed := mustUint(t, c.Seed)
		for _, pc := range c.Perms {
			got := NumpyPermutation(seed, pc.N)
			if pc.Perm != nil {
				if !slices.Equal(got, pc.Perm) {
					t.Errorf("seed %d n %d: %v, numpy %v", seed, pc.N, head(got), head(pc.Perm))
				}
				checked++
				continue
			}
			if !slices.Equal(got[:len(pc.Head)], pc.Head) || !slices.Equal(got[len(got)-len(pc.Tail):], pc.Tail) {
				t.Errorf("seed %d n %d: starts %v ends %v, numpy %v ... %v", seed, pc.N, got[:len(pc.Head)], got[len(got)-len(pc.Tail):], pc.Head, pc.Tail)
			}
			buf := make([]byte, 8*len(got))
			for i, v := range got {
				binary.LittleEndian.PutUint64(buf[8*i:], uint64(v))
			}
			if sum := sha256.Sum256(buf); hex.EncodeToString(sum[:]) != pc.SHA256 {
				t.Errorf("seed %d n %d: permutation digest differs from numpy's", seed, pc.N)
			}
			checked++
		}
	}
	if checked < 50 {
		t.Fatalf("only %d permutations checked", checked)
	}
}

func head(p []int) []int { return p[:min(len(p), 12)] }

// BenchmarkNumpyPermutation: the shuffle's cost for a 100k-sample split.
func BenchmarkNumpyPermutation(b *testing.B) {
	for b.Loop() {
		NumpyPermutation(42, 100_000)
	}
}
