package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/eftml/eft/shared/safetensors"
)

// kernelArgs is the argument block of one launch: values in 8-byte slots
// and the C array of pointers to them that cuLaunchKernel reads. It is
// allocated once (heap memory does not move) and reused by every launch.
type kernelArgs struct {
	vals [24]uint64
	ptrs [24]unsafe.Pointer
	n    int
	name string
}

func newKernelArgs() *kernelArgs {
	k := new(kernelArgs)
	for i := range k.vals {
		k.ptrs[i] = unsafe.Pointer(&k.vals[i])
	}
	return k
}

// kernel starts the argument list of a launch of name.
func (b *Backend) kernel(name string) *kernelArgs {
	b.args.n, b.args.name = 0, name
	return b.args
}

func (k *kernelArgs) put(v uint64) *kernelArgs {
	k.vals[k.n] = v
	k.n++
	return k
}

// p adds a pointer, i an int (C int), l a long long, f a float, u an
// unsigned long long.
func (k *kernelArgs) p(v uintptr) *kernelArgs { return k.put(uint64(v)) }
func (k *kernelArgs) i(v int) *kernelArgs {
	if v != int(int32(v)) {
		panic(fmt.Sprintf("cuda: %s: argument %d does not fit a C int", k.name, v))
	}
	return k.put(uint64(uint32(int32(v))))
}
func (k *kernelArgs) l(v int) *kernelArgs     { return k.put(uint64(int64(v))) }
func (k *kernelArgs) f(v float32) *kernelArgs { return k.put(uint64(math.Float32bits(v))) }
func (k *kernelArgs) u(v uint64) *kernelArgs  { return k.put(v) }

// dims is a launch's grid or block size.
type dims [3]uint32

func d1(x int) dims    { return dims{uint32(x), 1, 1} }
func d2(x, y int) dims { return dims{uint32(x), uint32(y), 1} }

// launch runs the kernel whose arguments were just added.
func (b *Backend) launch(grid, block dims) {
	fn, ok := b.fns[b.args.name]
	if !ok {
		panic(fmt.Sprintf("cuda: no kernel %q in the module", b.args.name))
	}
	if grid[0] == 0 || grid[1] == 0 || grid[2] == 0 {
		return // nothing to do
	}
	b.must(b.g.launch(fn, grid, block, 0, unsafe.Pointer(&b.args.ptrs[0])))
	if debugSync {
		if err := b.g.sync(); err != nil {
			panic(fmt.Errorf("cuda: kernel %s: %w", b.args.name, err))
		}
	}
}

// threads is the block size of elementwise kernels.
const threads = 256

// elementGrid is the grid of a grid-stride kernel over n elements: enough
// blocks to fill the device, no more.
func (b *Backend) elementGrid(n int) dims {
	blocks := (n + threads - 1) / threads
	return d1(max(1, min(blocks, 8*b.info.SMs)))
}

// rowThreads is the block size of a one-block-per-row kernel over rows of
// width d: a multiple of 32 up to 1024.
func rowThreads(d int) int { return min(1024, max(32, (min(d, 256)+31)&^31)) }

// scratch slots: buffers reused by every call of an op, grown when needed.
const (
	scratchC       = iota // a bf16 GEMM output widened for float32 operands
	scratchScores         // attention scores / weights
	scratchDScores        // attention score gradients
	scratchCapGrad        // attention soft cap's derivative per score
	scratchDelta          // attention backward row sums
	scratchSums           // float64 accumulators
	scratchQuantW         // a 4-bit weight dequantized for one product
	// flash attention's bf16 copies of its operands (kernels/flash.cu)
	scratchFlashQ  // Q rows
	scratchFlashK  // K rows
	scratchFlashV  // V rows
	scratchFlashDO // dO rows
	numScratch
)

type scratchBuf struct {
	buf *buffer
}

// scratchFor returns slot's buffer with at least bytes, growing it (the old
// one goes back to the cache; queued work on it keeps stream order).
func (b *Backend) scratchFor(slot, bytes int) uintptr {
	s := &b.scratch[slot]
	if s.buf == nil || s.buf.bytes < bytes {
		if s.buf != nil {
			b.mem.put(s.buf.ptr)
		}
		s.buf = b.allocBuffer(bytes)
	}
	return s.buf.ptr
}

// uploadCache keeps host int32 slices (token ids, positions, segment
// starts, targets) on the device. A slice is recognised by its address,
// length and contents, so the positions a model passes to every RoPE call
// of a step are uploaded once. Uploads go through page-locked staging
// buffers, each reused only after an event says its last copy has run.
type uploadCache struct {
	entries map[uploadKey]*upload
	tick    int
}

type uploadKey struct {
	addr uintptr
	n    int
}

type upload struct {
	host    []int32 // what the device copy holds
	dev     *buffer
	pinned  uintptr
	event   uintptr
	pending bool // a copy from pinned may still be running
	used    int
}

const maxUploads = 48

func (u *uploadCache) init() { u.entries = map[uploadKey]*upload{} }

// int32s returns a device copy of host, uploading it only when its contents
// differ from the last upload of the same slice.
func (b *Backend) int32s(host []int32) uintptr {
	if len(host) == 0 {
		return 0
	}
	u := &b.uploads
	u.tick++
	key := uploadKey{uintptr(unsafe.Pointer(&host[0])), len(host)}
	e := u.entries[key]
	if e != nil && equalInt32(e.host, host) {
		e.used = u.tick
		return e.dev.ptr
	}
	if e == nil {
		if len(u.entries) >= maxUploads {
			u.evictOldest(b)
		}
		e = &upload{host: make([]int32, len(host)), dev: b.allocBuffer(4 * len(host))}
		var err error
		e.pinned, err = b.g.mallocHost(4 * len(host))
		b.must(err)
		e.event, err = b.g.newEvent()
		b.must(err)
		u.entries[key] = e
	}
	if e.pending {
		b.must(b.g.waitEvent(e.event)) // the last copy from e.pinned has run

	}
	copy(e.host, host)
	copy(unsafe.Slice((*int32)(hostPtr(e.pinned)), len(host)), host)
	b.must(b.g.htod(e.dev.ptr, e.pinned, 4*len(host)))
	b.must(b.g.record(e.event))
	e.pending, e.used = true, u.tick
	return e.dev.ptr
}

func (u *uploadCache) evictOldest(b *Backend) {
	var oldest uploadKey
	best := math.MaxInt
	for k, e := range u.entries {
		if e.used < best {
			oldest, best = k, e.used
		}
	}
	e := u.entries[oldest]
	if e.pending {
		b.g.waitEvent(e.event)
	}
	b.g.freeHost(e.pinned)
	b.mem.put(e.dev.ptr)
	delete(u.entries, oldest)
}

func (u *uploadCache) clear(b *Backend) {
	for len(u.entries) > 0 {
		u.evictOldest(b)
	}
}

func equalInt32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// hostPtr turns the address of page-locked memory the driver handed out
// (not Go memory) into a pointer.
func hostPtr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

func toBF16(src []float32) []uint16 {
	out := make([]uint16, len(src))
	for i, v := range src {
		out[i] = safetensors.Float32ToBF16(v)
	}
	return out
}

func fromBF16(dst []float32, bits []uint16) {
	for i, h := range bits {
		dst[i] = safetensors.BF16ToFloat32(h)
	}
}
