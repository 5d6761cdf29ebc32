package batches

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/packing"
)

func randomSamples(n int, maxID int32, seed uint64, ownLabels bool) []packing.Sample {
	rng := rand.New(rand.NewPCG(seed, 2))
	out := make([]packing.Sample, n)
	for i := range out {
		l := 1 + rng.IntN(300)
		s := packing.Sample{InputIDs: make([]int32, l), Labels: make([]int32, l)}
		for p := range s.InputIDs {
			s.InputIDs[p] = rng.Int32N(maxID)
			switch {
			case p < l/3:
				s.Labels[p] = packing.IgnoreIndex
			case ownLabels && p%5 == 0:
				s.Labels[p] = rng.Int32N(maxID) // labels that are not the inputs
			default:
				s.Labels[p] = s.InputIDs[p]
			}
		}
		out[i] = s
	}
	return out
}

func writeAll(t testing.TB, batches []packing.MicroBatch, pad int32) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, pad)
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range batches {
		if err := w.Write(mb); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxID     int32
		ownLabels bool
		pack      bool
	}{
		{"small vocab, packed", 32000, false, true},
		{"llama-3 vocab, packed", 128256, false, true},
		{"huge ids, padded", 1 << 30, false, false},
		{"labels not copying inputs", 151936, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			samples := randomSamples(200, tc.maxID, 5, tc.ownLabels)
			batches, _, err := packing.Build(samples, packing.Options{SequenceLen: 512, MicroBatchSize: 3, Pack: tc.pack, PadTokenID: 7, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			data := writeAll(t, batches, 7)
			r, err := Open(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if r.Len() != len(batches) || r.PadTokenID() != 7 {
				t.Fatalf("Len %d pad %d", r.Len(), r.PadTokenID())
			}
			// Read in reverse to show reads are by index, not sequential.
			for i := r.Len() - 1; i >= 0; i-- {
				got, err := r.Read(i)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, batches[i]) {
					t.Fatalf("micro-batch %d differs after the round trip", i)
				}
			}
		})
	}
}

// TestCompactness reports bytes per real token against the three int32
// arrays (ids, labels, positions) a naive layout would store per slot.
func TestCompactness(t *testing.T) {
	samples := randomSamples(500, 128256, 9, false)
	batches, st, _ := packing.Build(samples, packing.Options{SequenceLen: 1024, MicroBatchSize: 2, Pack: true})
	data := writeAll(t, batches, 0)
	naive := 0
	for _, mb := range batches {
		naive += 12 * mb.Rows * mb.Width
	}
	perToken := float64(len(data)) / float64(st.Tokens)
	t.Logf("%d tokens: %d bytes (%.2f bytes/token), naive %d bytes", st.Tokens, len(data), perToken, naive)
	// 3 bytes per id + 1 bit of label + per-sample metadata.
	if perToken > 3.3 {
		t.Errorf("%.2f bytes per token; expected about 3.2 for a 128k vocabulary", perToken)
	}
}

func TestDamageIsDetected(t *testing.T) {
	batches, _, _ := packing.Build(randomSamples(20, 1000, 3, false), packing.Options{SequenceLen: 512, MicroBatchSize: 2, Pack: true})
	good := writeAll(t, batches, 0)

	flipped := slices.Clone(good)
	flipped[headerSize+10] ^= 0x40
	r, err := Open(bytes.NewReader(flipped), int64(len(flipped)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(0); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("flipped record byte: %v", err)
	}
	for name, data := range map[string][]byte{
		"truncated":     good[:len(good)-5],
		"empty":         nil,
		"foreign":       bytes.Repeat([]byte("x"), 100),
		"index damaged": func() []byte { d := slices.Clone(good); d[len(d)-footerSize-3] ^= 1; return d }(),
	} {
		if _, err := Open(bytes.NewReader(data), int64(len(data))); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Open error %v", name, err)
		}
	}
	newer := slices.Clone(good)
	newer[8] = Version + 1
	if _, err := Open(bytes.NewReader(newer), int64(len(newer))); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("version %d", Version+1)) {
		t.Errorf("newer version: %v", err)
	}
	r, _ = Open(bytes.NewReader(good), int64(len(good)))
	if _, err := r.Read(r.Len()); err == nil {
		t.Error("reading past the end succeeded")
	}
}

func TestWriterRefusesWhatItCannotGiveBack(t *testing.T) {
	batches, _, _ := packing.Build(randomSamples(4, 1000, 3, false), packing.Options{SequenceLen: 512, MicroBatchSize: 1, PadToSequenceLen: true, PadTokenID: 5})
	w, _ := NewWriter(&bytes.Buffer{}, 9) // a different pad token than the batch used
	if err := w.Write(batches[0]); err == nil || !strings.Contains(err.Error(), "padding") {
		t.Errorf("pad mismatch: %v", err)
	}
	for _, trained := range [][]int32{nil, {4, 8, 12, 9, 10}} { // labels as a mask, as labels
		negative := packing.Sample{InputIDs: []int32{4, 8, -7, 9, 10}, Labels: trained}
		if trained == nil {
			negative.TrainedMask = make([]uint64, 1)
			packing.MarkTrained(negative.TrainedMask, 1, 5)
		}
		p, err := packing.Pack([]packing.Sample{negative}, packing.Options{SequenceLen: 8, MicroBatchSize: 1, Pack: true, PadTokenID: 5})
		if err != nil {
			t.Fatal(err)
		}
		w, _ = NewWriter(&bytes.Buffer{}, 5)
		if err := w.WriteBatches(p, 1); err == nil || !strings.Contains(err.Error(), "negative token id -7") {
			t.Errorf("negative id: %v", err)
		}
	}
	mb := batches[0]
	mb.PositionIDs = slices.Clone(mb.PositionIDs)
	mb.PositionIDs[1] = 5
	w, _ = NewWriter(&bytes.Buffer{}, 5)
	if err := w.Write(mb); err == nil || !strings.Contains(err.Error(), "position ids") {
		t.Errorf("bad positions: %v", err)
	}
}

func TestPlanOrdersResumesAndShards(t *testing.T) {
	const n = 103
	one := Plan{N: n, Seed: 42}
	e0, _ := one.Epoch(0)
	again, _ := Plan{N: n, Seed: 42}.Epoch(0)
	e1, _ := one.Epoch(1)
	if !slices.Equal(e0, again) || slices.Equal(e0, e1) || len(e0) != n {
		t.Fatal("epoch orders must repeat for the same seed and epoch and differ between epochs")
	}
	sorted := slices.Sorted(slices.Values(e0))
	for i, v := range sorted {
		if v != i {
			t.Fatal("an epoch is not a permutation of the micro-batches")
		}
	}
	// Resuming at step s reads what the uninterrupted run read at step s.
	for _, s := range []int{0, 17, n - 1} {
		if at, _ := one.At(1, s); at != e1[s] {
			t.Errorf("At(1, %d) = %d, epoch lists %d", s, at, e1[s])
		}
	}
	// Four ranks: equal shares, no overlap, all but n mod 4 covered.
	seen := map[int]int{}
	for rank := 0; rank < 4; rank++ {
		mine, err := Plan{N: n, Seed: 42, Rank: rank, World: 4}.Epoch(3)
		if err != nil || len(mine) != n/4 {
			t.Fatalf("rank %d: %v, %d steps", rank, err, len(mine))
		}
		for _, m := range mine {
			seen[m]++
		}
	}
	if len(seen) != n/4*4 {
		t.Errorf("ranks covered %d micro-batches, want %d", len(seen), n/4*4)
	}
	for m, c := range seen {
		if c != 1 {
			t.Errorf("micro-batch %d read by %d ranks", m, c)
		}
	}
	if _, err := (Plan{N: n, Rank: 4, World: 4}).Epoch(0); err == nil {
		t.Error("rank 4 of 4 accepted")
	}
	if _, err := one.At(0, n); err == nil {
		t.Error("step past the epoch accepted")
	}
}

// FuzzDecode feeds arbitrary bytes to both the file reader and the record
// decoder (which the checksum would otherwise shield): errors, never panics.
func FuzzDecode(f *testing.F) {
	batches, _, _ := packing.Build(randomSamples(6, 70000, 1, true), packing.Options{SequenceLen: 512, MicroBatchSize: 2, Pack: true})
	file := writeAll(f, batches, 0)
	rec, _, _ := encodeRecord(nil, batches[0], 0, nil)
	f.Add(file)
	f.Add(rec)
	f.Add([]byte{})
	f.Add(file[:len(file)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		if mb, err := decodeRecord(data, 0); err == nil {
			// Whatever decodes must encode back to the same bytes.
			again, _, err := encodeRecord(nil, mb, 0, nil)
			if err != nil {
				t.Fatalf("decoded record does not re-encode: %v", err)
			}
			if mb2, err := decodeRecord(again, 0); err != nil || !reflect.DeepEqual(mb, mb2) {
				t.Fatalf("re-encoded record decodes differently: %v", err)
			}
		}
		r, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for i := 0; i < r.Len(); i++ {
			_, _ = r.Read(i)
		}
	})
}

// Format is the name of the version this package writes: bumping Version
// without renaming the format would let a stage accept files it cannot read.
func TestFormatNamesTheVersion(t *testing.T) {
	if want := "eft-batches/v" + strconv.Itoa(Version); Format != want {
		t.Fatalf("Format is %q for version %d, want %q", Format, Version, want)
	}
}

// TestEscapedTokenIDs: ids on both sides of the escape (0xFFFE, 0xFFFF,
// 0x10000, the largest int32) come back from escaped records; a record
// takes escapes only where they are smaller than fixed-width ids; damaged
// escapes (a short id, one that should not be escaped, leftover bytes) are
// corrupt, not misread.
func TestEscapedTokenIDs(t *testing.T) {
	row := func(ids ...int32) packing.Sample {
		labels := slices.Clone(ids)
		labels[0] = packing.IgnoreIndex
		return packing.Sample{InputIDs: ids, Labels: labels}
	}
	mostlySmall := make([]int32, 40)
	for i := range mostlySmall {
		mostlySmall[i] = int32(100 + i)
	}
	mostlySmall[7], mostlySmall[20] = 0xFFFF, math.MaxInt32
	for _, c := range []struct {
		ids  []int32
		code byte
	}{
		{append(slices.Clone(mostlySmall), 0xFFFE, 0x10000), escapedIDs},
		{[]int32{0x10000, 0x10001, 0x10002, 5}, 3}, // escapes would be larger
		{[]int32{0xFFFF, 1, 2}, 2},
		{[]int32{0xFFFF, 1, 2, 3, 4, 0xFFFE, 7}, 2}, // four ids at a time, then the rest
		{[]int32{1 << 24, 1<<24 + 1, 1<<24 + 2, 5}, 4},
		{[]int32{1<<24 - 1, 1<<24 - 2, 1<<24 - 3, 5}, 3},
	} {
		mbs, _, err := packing.Build([]packing.Sample{row(c.ids...)}, packing.Options{SequenceLen: 64, MicroBatchSize: 1, PadToSequenceLen: true, PadTokenID: 3})
		if err != nil {
			t.Fatal(err)
		}
		rec, _, err := encodeRecord(nil, mbs[0], 3, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rec[8] != c.code {
			t.Errorf("ids %v: token code %d, want %d", c.ids, rec[8], c.code)
		}
		back, err := decodeRecord(rec, 3)
		if err != nil || !reflect.DeepEqual(back, mbs[0]) {
			t.Fatalf("ids %v: decoded %v, %v", c.ids, back.InputIDs[:len(c.ids)], err)
		}
	}
	mbs, _, _ := packing.Build([]packing.Sample{row(5, 0x10000, 6, 7, 8, 9)}, packing.Options{SequenceLen: 8, MicroBatchSize: 1, PadToSequenceLen: true})
	rec, _, _ := encodeRecord(nil, mbs[0], 0, nil)
	tokens := 10 + 8 + 8 // header, one row, one sample
	if rec[8] != escapedIDs || binary.LittleEndian.Uint16(rec[tokens+2:]) != escape {
		t.Fatalf("record %x does not escape its second id", rec)
	}
	small := slices.Clone(rec)
	binary.LittleEndian.PutUint32(small[tokens+4:], 9) // an id that needs no escape
	short := slices.Concat(rec[:tokens+2], []byte{0xFF, 0xFF, 0, 0}, rec[tokens+8:])
	extra := slices.Concat(rec[:tokens+10], []byte{0, 0, 0, 0}, rec[tokens+10:])
	for name, bad := range map[string][]byte{"escaped small id": small, "short escape": short, "leftover bytes": extra} {
		if _, err := decodeRecord(bad, 0); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
