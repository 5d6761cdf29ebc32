package batches

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/eftml/eft/shared/packing"
)

// TestWriteBatchesMatchesWrite: the parallel writer makes the same file, byte
// for byte, as Write of Build's micro-batches, for one worker and several,
// over more micro-batches than one window holds, with 2-, 3- and
// 4-byte token ids and labels as a mask or in full; a plan padded with
// another token is refused naming the micro-batch, and a failing file's
// error is returned.
func TestWriteBatchesMatchesWrite(t *testing.T) {
	for _, c := range []struct {
		samples []packing.Sample
		o       packing.Options
	}{
		{randomSamples(700, 128256, 5, true), packing.Options{SequenceLen: 512, MicroBatchSize: 2, Pack: true, PadTokenID: 3, Seed: 1}},
		{randomSamples(700, 128256, 5, true), packing.Options{SequenceLen: 512, MicroBatchSize: 3, PadTokenID: 3, Seed: 2}},
		{randomSamples(700, 30000, 6, false), packing.Options{SequenceLen: 700, MicroBatchSize: 2, Pack: true, PadTokenID: 3, Seed: 3}},
		{randomSamples(700, 1<<25, 7, false), packing.Options{SequenceLen: 400, MicroBatchSize: 4, PadToSequenceLen: true, PadTokenID: 3, Seed: 4}},
	} {
		samples, o := c.samples, c.o
		mbs, _, err := packing.Build(samples, o)
		if err != nil {
			t.Fatal(err)
		}
		want := writeAll(t, mbs, o.PadTokenID)
		// The same samples with every other one's labels as a trained mask
		// (where they copy or ignore the ids): the same file.
		masked := slices.Clone(samples)
		for i := 0; i < len(masked); i += 2 {
			masked[i], _ = masked[i].WithTrainedMask()
		}
		for _, workers := range []int{1, 3, -3} {
			in := samples
			if workers < 0 {
				in, workers = masked, -workers
			}
			plan, err := packing.Pack(in, o)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Len() <= 8*workers {
				t.Fatalf("%d micro-batches fit in one window of %d workers", plan.Len(), workers)
			}
			var buf bytes.Buffer
			w, err := NewWriter(&buf, o.PadTokenID)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteBatches(plan, workers); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("%+v, %d workers (masks: %v): WriteBatches wrote %d bytes unlike Write's %d", o, workers, &in[0] == &masked[0], buf.Len(), len(want))
			}
		}
	}
	plan, err := packing.Pack(randomSamples(50, 100, 8, false), packing.Options{SequenceLen: 512, MicroBatchSize: 2, Pack: true, PadTokenID: 4})
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(&bytes.Buffer{}, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBatches(plan, 2); err == nil || !strings.Contains(err.Error(), "padded with token 4, the file's pad token is 3") {
		t.Fatalf("a packing padded with 4 into a file padded with 3: %v", err)
	}
	plan, err = packing.Pack(randomSamples(700, 100, 9, false), packing.Options{SequenceLen: 512, MicroBatchSize: 2, Pack: true, PadTokenID: 3})
	if err != nil {
		t.Fatal(err)
	}
	full := errors.New("disk full")
	if w, err = NewWriter(&failAfter{n: 4000, err: full}, 3); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteBatches(plan, 2); !errors.Is(err, full) {
		t.Fatalf("writing to a file that fails: %v", err)
	}
}

// failAfter accepts n bytes, then fails every write with err.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n -= len(p); f.n < 0 {
		return 0, f.err
	}
	return len(p), nil
}

// BenchmarkWriteBatches: 20k samples of chat-like lengths (~450 tokens,
// Llama-3 ids) packed into 4096-token rows and written, as packing.Build +
// Write one by one ("serial") and through WriteBatches on all cores
// ("parallel"). ns/op is one whole file; tokens/s counts real tokens.
func BenchmarkWriteBatches(b *testing.B) {
	samples, tokens := chatLikeSamples(20000, 9, func(rng *rand.Rand) int32 { return rng.Int32N(128256) })
	o := packing.Options{SequenceLen: 4096, MicroBatchSize: 2, Pack: true, PadTokenID: 128001, Seed: 1}
	// file: parallel, into a file on disk through a buffer, as the tokenizer
	// stage writes (the file's writes take as long as the encoding here).
	for _, mode := range []string{"serial", "parallel", "file"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				var dst io.Writer = io.Discard
				var f *os.File
				var bw *bufio.Writer
				if mode == "file" {
					var err error
					if f, err = os.CreateTemp(b.TempDir(), "batches"); err != nil {
						b.Fatal(err)
					}
					bw = bufio.NewWriterSize(f, 1<<20)
					dst = bw
				}
				w, err := NewWriter(dst, o.PadTokenID)
				if err != nil {
					b.Fatal(err)
				}
				if mode == "serial" {
					mbs, _, err := packing.Build(samples, o)
					if err != nil {
						b.Fatal(err)
					}
					for _, mb := range mbs {
						if err := w.Write(mb); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					plan, err := packing.Pack(samples, o)
					if err != nil {
						b.Fatal(err)
					}
					if err := w.WriteBatches(plan, 0); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
				if f != nil {
					if err := bw.Flush(); err != nil {
						b.Fatal(err)
					}
					f.Close()
					os.Remove(f.Name())
				}
			}
			b.ReportMetric(float64(tokens)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// BenchmarkEncodeRecord: one core encoding micro-batches in turn from the
// packed samples into the same buffer, as each of WriteBatches' workers does, with
// ids spread like a Llama-3 text's (~3 % at or above the escape, so escaped
// ids) and the prompt's third of each sample untrained (labels as a mask in
// the file), the samples' labels held as labels or as a trained mask (as the
// chat strategy makes them).
func BenchmarkEncodeRecord(b *testing.B) {
	samples, tokens := chatLikeSamples(4000, 7, func(rng *rand.Rand) int32 {
		if id := rng.Int32N(30000); rng.IntN(100) >= 3 {
			return id
		}
		return 65535 + rng.Int32N(62000)
	})
	masked := make([]packing.Sample, len(samples))
	for i, s := range samples {
		masked[i], _ = s.WithTrainedMask()
	}
	for _, form := range []string{"labels", "mask"} {
		b.Run(form, func(b *testing.B) {
			in := samples
			if form == "mask" {
				in = masked
			}
			plan, err := packing.Pack(in, packing.Options{SequenceLen: 4096, MicroBatchSize: 2, Pack: true, PadTokenID: 128001, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			var rows [][]recordSample
			var buf []byte
			for b.Loop() {
				for i := range plan.Len() {
					var width int
					rows, width = groupRows(rows, plan, i)
					if buf, err = encodeRows(buf[:0], width, rows); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/float64(tokens), "ns/token")
		})
	}
}

// chatLikeSamples makes n samples of chat-like lengths (log-normal around
// ~330 tokens, 8 to 4096), ids drawn by id, the first third of each
// untrained; and how many tokens they hold.
func chatLikeSamples(n int, seed uint64, id func(*rand.Rand) int32) ([]packing.Sample, int) {
	rng := rand.New(rand.NewPCG(seed, seed))
	samples := make([]packing.Sample, n)
	tokens := 0
	for i := range samples {
		l := max(8, min(4096, int(math.Exp(5.8+0.6*rng.NormFloat64()))))
		s := packing.Sample{InputIDs: make([]int32, l), Labels: make([]int32, l)}
		for p := range s.InputIDs {
			s.InputIDs[p] = id(rng)
			s.Labels[p] = packing.IgnoreIndex
			if p > l/3 {
				s.Labels[p] = s.InputIDs[p]
			}
		}
		samples[i] = s
		tokens += l
	}
	return samples, tokens
}
