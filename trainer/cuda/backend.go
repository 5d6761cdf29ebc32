package cuda

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/eftml/eft/trainer/backend"
	"github.com/eftml/eft/trainer/quant"
	"github.com/eftml/eft/trainer/tensor"
)

// Precision chooses how matrix products compute.
type Precision uint8

const (
	// PrecisionBF16 reads both operands of every matrix product as bfloat16
	// and accumulates in float32 (tensor cores); attention's products may
	// use TF32. The training default.
	PrecisionBF16 Precision = iota
	// PrecisionFP32 computes every product in full float32: slower, and
	// what the parity tests hold against the CPU backend at 1e-4.
	PrecisionFP32
)

func (p Precision) String() string {
	if p == PrecisionFP32 {
		return "fp32"
	}
	return "bf16"
}

// Options configure New. The zero value is device 0, bf16 products and the
// default kernel cache.
type Options struct {
	Device    int
	Precision Precision
	// KernelCache is the folder compiled kernels are kept in between runs
	// ("" for DefaultKernelCache(), "off" for none).
	KernelCache string
}

// Backend runs the engine's ops on one CUDA device. All CUDA calls happen
// on its executor goroutine; methods may be called from any goroutine, one
// at a time per model (as with every backend). A CUDA failure panics with an
// error that names the call and the CUDA error.
type Backend struct {
	opts Options
	name string
	ex   *executor

	// Owned by the executor goroutine:
	g       gpu
	info    deviceInfo
	mem     *allocator
	fns     map[string]uintptr
	args    *kernelArgs
	uploads uploadCache
	scratch [numScratch]scratchBuf
	gemmOp  gemmOp
	closed  bool
	flash   bool // $EFT_CUDA_FLASH is not "0" (read at open)
	// GEMM operands converted to bf16 (or float32), kept until they may
	// have changed (see converted).
	conversions [6]conversion
	convTick    int
	// 4-bit weights' device copies (quant.go), kept until Close.
	quants map[*quant.Matrix]*quantOnDevice
	dcode  *buffer
}

// buffer is a device allocation: the handle device tensors carry in
// tensor.Tensor.Device.
type buffer struct {
	ptr   uintptr
	bytes int
	owner *Backend
}

var _ backend.Backend = (*Backend)(nil)
var _ tensor.DeviceMemory = (*Backend)(nil)

// New opens CUDA device opts.Device: loads the driver, cuBLASLt and NVRTC,
// creates the context and stream on a locked OS thread, and compiles (or
// loads from the cache) the kernels for the device's architecture. Without
// a GPU or the libraries it returns an error saying what is missing.
func New(opts Options) (*Backend, error) {
	if !supported {
		return nil, errUnsupportedPlatform
	}
	cache := opts.KernelCache
	switch cache {
	case "":
		cache = DefaultKernelCache()
	case "off":
		cache = ""
	}
	return open(opts, func() (gpu, error) { return openReal(opts.Device, cache) })
}

var errUnsupportedPlatform = errors.New("cuda: the CUDA backend runs on linux/amd64 and linux/arm64 only")

// Available reports whether New would find a usable device (nil) or why
// not, without compiling kernels.
func Available() error {
	if !supported {
		return errUnsupportedPlatform
	}
	drv, err := loadDriver()
	if err != nil {
		return err
	}
	var count int32
	ex, err := startExecutor(func() error {
		if err := drv.check("cuInit", call(drv.cuInit, 0)); err != nil {
			return err
		}
		return drv.check("cuDeviceGetCount", call(drv.cuDeviceGetCount, uintptr(unsafe.Pointer(&count))))
	})
	if err != nil {
		return err
	}
	ex.stop()
	if count == 0 {
		return errors.New("cuda: the driver sees no CUDA device")
	}
	return nil
}

// open starts the executor, opens the device on it with mk and loads the
// kernels.
func open(opts Options, mk func() (gpu, error)) (*Backend, error) {
	b := &Backend{opts: opts, args: newKernelArgs(), flash: os.Getenv(envFlash) != "0"}
	ex, err := startExecutor(func() error {
		g, err := mk()
		if err != nil {
			return err
		}
		b.g, b.info = g, g.info()
		b.mem = newAllocator(g)
		b.uploads.init()
		src := kernelSource()
		if b.fns, err = g.loadKernels(src, kernelNames(src)); err != nil {
			return err
		}
		if profilingRequested() {
			b.g = newProfiledGPU(g, b.fns)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.ex = ex
	b.name = fmt.Sprintf("cuda:%d", opts.Device)
	return b, nil
}

// Close frees the device memory this backend holds and ends its executor.
// Tensors it made are invalid afterwards.
func (b *Backend) Close() {
	if b.ex == nil {
		return
	}
	b.do(func() {
		b.g.sync()
		b.uploads.clear(b)
		for i := range b.scratch {
			b.scratch[i] = scratchBuf{}
		}
		b.conversions = [len(b.conversions)]conversion{}
		b.quants, b.dcode = nil, nil
		b.mem.release()
		b.closed = true
	})
	b.ex.stop()
	b.ex = nil
}

// Name implements backend.Backend.
func (b *Backend) Name() string { return b.name }

// Device describes the GPU: name, compute capability, multiprocessors,
// memory and driver version.
func (b *Backend) Device() string {
	d := b.info
	return fmt.Sprintf("%s (sm_%d%d, %d SMs, %.0f GiB, driver %s)", d.Name, d.Major, d.Minor, d.SMs, float64(d.TotalMemory)/(1<<30), d.Driver)
}

// Precision is the matrix-product precision the backend was opened with.
func (b *Backend) Precision() Precision { return b.opts.Precision }

// MemoryStats are the caching allocator's figures in bytes.
type MemoryStats struct {
	InUse, Reserved         int // handed out now; held from the driver now
	PeakInUse, PeakReserved int
	Mallocs                 int // cuMemAlloc calls so far
}

// Memory returns the allocator's current and peak figures.
func (b *Backend) Memory() MemoryStats {
	var s MemoryStats
	b.ex.do(func() { // read-only: b.do's forgetting is not needed
		a := b.mem
		s = MemoryStats{a.inUse, a.reserved, a.peakInUse, a.peakReserved, a.mallocs}
	})
	return s
}

// ResetPeakMemory starts the peak figures again from the current ones.
func (b *Backend) ResetPeakMemory() {
	b.ex.do(func() { b.mem.peakInUse, b.mem.peakReserved = b.mem.inUse, b.mem.reserved })
}

// Synchronize waits for all queued device work.
func (b *Backend) Synchronize() { b.ex.do(func() { b.must(b.g.sync()) }) }

// Timer measures device time between two points of the queued work with
// CUDA events.
type Timer struct {
	b          *Backend
	start, end uintptr
}

// NewTimer returns a timer; Start and Stop mark the interval.
func (b *Backend) NewTimer() *Timer {
	t := &Timer{b: b}
	b.do(func() {
		var err error
		t.start, err = b.g.newEvent()
		b.must(err)
		t.end, err = b.g.newEvent()
		b.must(err)
	})
	return t
}

// Start marks the beginning of the interval in the stream.
func (t *Timer) Start() { t.b.do(func() { t.b.must(t.b.g.record(t.start)) }) }

// Stop marks its end and returns the device milliseconds between the two.
func (t *Timer) Stop() float32 {
	var ms float32
	t.b.do(func() {
		t.b.must(t.b.g.record(t.end))
		var err error
		ms, err = t.b.g.elapsed(t.start, t.end)
		t.b.must(err)
	})
	return ms
}

// must panics with err (on the executor; do raises it in the caller).
func (b *Backend) must(err error) {
	if err != nil {
		panic(err)
	}
}

// buf returns t's device buffer, panicking when t is not this backend's.
func (b *Backend) buf(op string, t *tensor.Tensor) *buffer {
	buf, ok := t.Device.(*buffer)
	if !ok || buf.owner != b {
		panic(fmt.Sprintf("cuda.%s: tensor %v is not on %s (a host tensor, or another device's)", op, t, b.name))
	}
	return buf
}

// addr is the device address of t's first element.
func (b *Backend) addr(op string, t *tensor.Tensor) uintptr {
	buf := b.buf(op, t)
	off := t.DeviceOffset * t.DType.Size()
	if off+t.Len()*t.DType.Size() > buf.bytes {
		panic(fmt.Sprintf("cuda.%s: view %v at element %d runs past its %d-byte buffer", op, t, t.DeviceOffset, buf.bytes))
	}
	return buf.ptr + uintptr(off)
}

// allocBuffer returns a device buffer of bytes (uninitialised).
func (b *Backend) allocBuffer(bytes int) *buffer {
	p, err := b.mem.alloc(bytes)
	b.must(err)
	return &buffer{ptr: p, bytes: bytes, owner: b}
}

// Alloc implements backend.Backend: a zeroed float32 tensor in device memory.
func (b *Backend) Alloc(shape ...int) *tensor.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	var t *tensor.Tensor
	b.do(func() {
		buf := b.allocBuffer(max(4*n, 4))
		b.must(b.g.memset32(buf.ptr, 0, n))
		t = tensor.OnDevice(tensor.F32, buf, shape...)
	})
	return t
}

// Free implements tensor.DeviceMemory: t's memory goes back to the cache.
// t must be a tensor Alloc returned, not a view.
func (b *Backend) Free(t *tensor.Tensor) {
	buf := b.buf("Free", t)
	if t.DeviceOffset != 0 {
		panic(fmt.Sprintf("cuda.Free: %v is a view, not an allocation", t))
	}
	b.do(func() {
		if buf.ptr != 0 {
			b.mem.put(buf.ptr)
			buf.ptr = 0
		}
	})
}

// Upload implements backend.Backend; a bf16 tensor gets the values rounded.
func (b *Backend) Upload(t *tensor.Tensor, src []float32) {
	if len(src) != t.Len() {
		panic(fmt.Sprintf("cuda.Upload: %d values into %v", len(src), t))
	}
	dst := b.addr("Upload", t)
	if len(src) == 0 {
		return
	}
	if t.DType == tensor.BF16 {
		bits := toBF16(src)
		b.do(func() { b.must(b.g.htodPageable(dst, unsafe.Pointer(&bits[0]), 2*len(bits))) })
		return
	}
	b.do(func() { b.must(b.g.htodPageable(dst, unsafe.Pointer(&src[0]), 4*len(src))) })
}

// Download implements backend.Backend; it waits for the work before it.
func (b *Backend) Download(dst []float32, t *tensor.Tensor) {
	if len(dst) != t.Len() {
		panic(fmt.Sprintf("cuda.Download: %v into %d values", t, len(dst)))
	}
	src := b.addr("Download", t)
	if len(dst) == 0 {
		return
	}
	if t.DType == tensor.BF16 {
		bits := make([]uint16, len(dst))
		b.ex.do(func() { b.must(b.g.dtoh(unsafe.Pointer(&bits[0]), src, 2*len(bits))) }) // writes no tensor
		fromBF16(dst, bits)
		return
	}
	b.ex.do(func() { b.must(b.g.dtoh(unsafe.Pointer(&dst[0]), src, 4*len(dst))) }) // writes no tensor
}

func checkF32(op string, ts ...*tensor.Tensor) {
	for _, t := range ts {
		if t != nil && t.DType != tensor.F32 {
			panic(fmt.Sprintf("cuda.%s: %v must be float32", op, t))
		}
	}
}

func checkLen(op string, a, c *tensor.Tensor) {
	if a.Len() != c.Len() {
		panic(fmt.Sprintf("cuda.%s: %v and %v differ in size", op, a, c))
	}
}

// debugSync, when EFT_CUDA_SYNC=1, waits after every op so a failing kernel
// is reported by the op that launched it.
var debugSync = os.Getenv("EFT_CUDA_SYNC") == "1"
