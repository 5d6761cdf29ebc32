package cuda

import (
	"fmt"
	"io"
	"os"
	"slices"
	"unsafe"
)

// envProfile turns on per-kernel timing: every kernel launch and GEMM is
// bracketed by a pair of CUDA events and its device time added to a total
// per kernel name (GEMMs per shape). It costs two event records per op and
// a synchronisation whenever the pending spans fill up, so it is for
// finding where a step's time goes, not for timing the step itself.
const envProfile = "EFT_CUDA_PROFILE"

// profiledGPU wraps a gpu and times its launches and GEMMs.
type profiledGPU struct {
	gpu
	names   map[uintptr]string
	events  []uintptr // free events
	pending []profSpan
	totals  map[string]*ProfileEntry
}

type profSpan struct {
	name       string
	start, end uintptr
}

// ProfileEntry is one kernel's (or GEMM shape's) device time.
type ProfileEntry struct {
	Name    string
	Calls   int
	Seconds float64
}

const maxPendingSpans = 8192

func newProfiledGPU(g gpu, fns map[string]uintptr) *profiledGPU {
	p := &profiledGPU{gpu: g, names: map[uintptr]string{}, totals: map[string]*ProfileEntry{}}
	for name, fn := range fns {
		p.names[fn] = name
	}
	return p
}

func (p *profiledGPU) event() (uintptr, error) {
	if n := len(p.events); n > 0 {
		ev := p.events[n-1]
		p.events = p.events[:n-1]
		return ev, nil
	}
	return p.gpu.newEvent()
}

// timed runs op between two event records under name.
func (p *profiledGPU) timed(name string, op func() error) error {
	start, err := p.event()
	if err != nil {
		return err
	}
	end, err := p.event()
	if err != nil {
		return err
	}
	if err := p.gpu.record(start); err != nil {
		return err
	}
	if err := op(); err != nil {
		return err
	}
	if err := p.gpu.record(end); err != nil {
		return err
	}
	p.pending = append(p.pending, profSpan{name, start, end})
	if len(p.pending) >= maxPendingSpans {
		return p.drain()
	}
	return nil
}

// drain waits for the pending spans and adds them to the totals.
func (p *profiledGPU) drain() error {
	for _, s := range p.pending {
		ms, err := p.gpu.elapsed(s.start, s.end)
		if err != nil {
			return err
		}
		t := p.totals[s.name]
		if t == nil {
			t = &ProfileEntry{Name: s.name}
			p.totals[s.name] = t
		}
		t.Calls++
		t.Seconds += float64(ms) / 1e3
		p.events = append(p.events, s.start, s.end)
	}
	p.pending = p.pending[:0]
	return nil
}

func (p *profiledGPU) launch(fn uintptr, grid, block [3]uint32, shmem int, params unsafe.Pointer) error {
	return p.timed(p.names[fn], func() error { return p.gpu.launch(fn, grid, block, shmem, params) })
}

func (p *profiledGPU) gemm(g *gemmOp) error {
	name := fmt.Sprintf("gemm %s m=%d n=%d k=%d", typeNames[g.ab], g.m, g.n, g.k)
	if g.batch > 1 {
		name += fmt.Sprintf(" batch=%d", g.batch)
	}
	if g.tf32 {
		name += " tf32"
	}
	return p.timed(name, func() error { return p.gpu.gemm(g) })
}

var typeNames = map[elemType]string{elemF32: "f32", elemBF16: "bf16"}

// Profile returns the device time per kernel and GEMM shape since the last
// call, largest first, and starts the totals again; nil unless the backend
// was opened with EFT_CUDA_PROFILE set.
func (b *Backend) Profile() []ProfileEntry {
	var out []ProfileEntry
	b.ex.do(func() {
		p, ok := b.g.(*profiledGPU)
		if !ok {
			return
		}
		b.must(p.drain())
		for _, t := range p.totals {
			out = append(out, *t)
		}
		p.totals = map[string]*ProfileEntry{}
	})
	slices.SortFunc(out, func(a, b ProfileEntry) int {
		switch {
		case a.Seconds > b.Seconds:
			return -1
		case a.Seconds < b.Seconds:
			return 1
		}
		return 0
	})
	return out
}

// WriteProfile prints Profile's entries as a table: seconds, share of the
// total, calls and name; per step when steps > 0.
func WriteProfile(w io.Writer, entries []ProfileEntry, steps int) {
	total := 0.0
	for _, e := range entries {
		total += e.Seconds
	}
	if steps <= 0 {
		steps = 1
	}
	fmt.Fprintf(w, "device time per step: %.2f ms over %d kernels and GEMM shapes\n", 1e3*total/float64(steps), len(entries))
	for _, e := range entries {
		fmt.Fprintf(w, "%9.3f ms %5.1f%% %7d  %s\n", 1e3*e.Seconds/float64(steps), 100*e.Seconds/max(total, 1e-12), e.Calls/steps, e.Name)
	}
}

func profilingRequested() bool { return os.Getenv(envProfile) != "" }
