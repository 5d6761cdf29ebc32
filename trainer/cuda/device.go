package cuda

import (
	"fmt"
	"unsafe"
)

// gpu is one device's raw operations. Backend calls them only from its
// executor goroutine. Two implementations: realGPU (the driver API, cuBLASLt
// and NVRTC) and, in tests, an emulator that runs the same kernel sources
// compiled for the host, so the backend's own logic is tested without a GPU.
type gpu interface {
	info() deviceInfo
	malloc(bytes int) (uintptr, error)
	free(ptr uintptr) error
	// mallocHost returns page-locked host memory (what async uploads need).
	mallocHost(bytes int) (uintptr, error)
	freeHost(ptr uintptr) error
	// htod copies from page-locked host memory, in stream order; src must
	// stay unchanged until the copy has run (wait for an event after it).
	htod(dst, src uintptr, bytes int) error
	// htodPageable copies from Go memory; src may change once it returns.
	htodPageable(dst uintptr, src unsafe.Pointer, bytes int) error
	// dtoh copies to Go memory and waits for the copy (and all work before it).
	dtoh(dst unsafe.Pointer, src uintptr, bytes int) error
	dtod(dst, src uintptr, bytes int) error
	memset32(dst uintptr, value uint32, count int) error
	// loadKernels makes the named kernels of src callable.
	loadKernels(src string, names []string) (map[string]uintptr, error)
	// launch runs fn with params (a C array of pointers to the argument values).
	launch(fn uintptr, grid, block [3]uint32, shmem int, params unsafe.Pointer) error
	gemm(g *gemmOp) error
	sync() error
	newEvent() (uintptr, error)
	record(ev uintptr) error
	// waitEvent blocks until the work before ev's last record has run.
	waitEvent(ev uintptr) error
	// elapsed waits for end and returns the milliseconds between the events.
	elapsed(start, end uintptr) (float32, error)
	memInfo() (free, total int, err error)
}

// deviceInfo describes the device for logs, kernel compilation and figures.
type deviceInfo struct {
	Name           string
	Major, Minor   int // compute capability
	SMs            int
	TotalMemory    int
	L2Bytes        int
	MaxSharedOptin int
	Driver         string // version, "13.0"
}

// Arch is the NVRTC target for this device ("sm_90").
func (d deviceInfo) Arch() string { return fmt.Sprintf("sm_%d%d", d.Major, d.Minor) }

// realGPU is a CUDA device through the driver API.
type realGPU struct {
	drv    *driverAPI
	lt     *cublasLt
	nv     *nvrtc
	dev    uintptr // CUdevice
	ctx    uintptr
	stream uintptr
	desc   deviceInfo
	module uintptr
	cache  string // kernel cache folder, "" for none
}

// openReal opens device ordinal on the calling (locked) OS thread.
func openReal(ordinal int, kernelCache string) (*realGPU, error) {
	drv, err := loadDriver()
	if err != nil {
		return nil, err
	}
	g := &realGPU{drv: drv, cache: kernelCache}
	if err := drv.check("cuInit", call(drv.cuInit, 0)); err != nil {
		return nil, err
	}
	var version, count int32
	drv.check("cuDriverGetVersion", call(drv.cuDriverGetVersion, uintptr(unsafe.Pointer(&version))))
	if err := drv.check("cuDeviceGetCount", call(drv.cuDeviceGetCount, uintptr(unsafe.Pointer(&count)))); err != nil {
		return nil, err
	}
	if ordinal < 0 || ordinal >= int(count) {
		return nil, fmt.Errorf("cuda: device %d requested but %d visible (driver %s)", ordinal, count, drv.path)
	}
	var dev int32
	if err := drv.check("cuDeviceGet", call(drv.cuDeviceGet, uintptr(unsafe.Pointer(&dev)), uintptr(ordinal))); err != nil {
		return nil, err
	}
	g.dev = uintptr(dev)
	name := make([]byte, 256)
	drv.check("cuDeviceGetName", call(drv.cuDeviceGetName, uintptr(unsafe.Pointer(&name[0])), 256, g.dev))
	g.desc.Name = cString(uintptr(unsafe.Pointer(&name[0])))
	g.desc.Driver = fmt.Sprintf("%d.%d", version/1000, version%1000/10)
	for _, a := range []struct {
		attr int
		to   *int
	}{{attrComputeMajor, &g.desc.Major}, {attrComputeMinor, &g.desc.Minor}, {attrMultiprocessors, &g.desc.SMs},
		{attrL2CacheSize, &g.desc.L2Bytes}, {attrMaxSharedOptin, &g.desc.MaxSharedOptin}} {
		var v int32
		if err := drv.check("cuDeviceGetAttribute", call(drv.cuDeviceGetAttribute, uintptr(unsafe.Pointer(&v)), uintptr(a.attr), g.dev)); err != nil {
			return nil, err
		}
		*a.to = int(v)
	}
	var total uint64
	drv.check("cuDeviceTotalMem", call(drv.cuDeviceTotalMem, uintptr(unsafe.Pointer(&total)), g.dev))
	g.desc.TotalMemory = int(total)
	if err := drv.check("cuDevicePrimaryCtxRetain", call(drv.cuDevicePrimaryCtxRetain, uintptr(unsafe.Pointer(&g.ctx)), g.dev)); err != nil {
		return nil, err
	}
	if err := drv.check("cuCtxSetCurrent", call(drv.cuCtxSetCurrent, g.ctx)); err != nil {
		return nil, err
	}
	if err := drv.check("cuStreamCreate", call(drv.cuStreamCreate, uintptr(unsafe.Pointer(&g.stream)), streamNonBlocking)); err != nil {
		return nil, err
	}
	if g.lt, err = loadCublasLt(drv, g.stream); err != nil {
		return nil, err
	}
	if g.nv, err = loadNVRTC(); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *realGPU) info() deviceInfo { return g.desc }

func (g *realGPU) malloc(bytes int) (uintptr, error) {
	var p uintptr
	err := g.drv.check(fmt.Sprintf("cuMemAlloc(%d bytes)", bytes), call(g.drv.cuMemAlloc, uintptr(unsafe.Pointer(&p)), uintptr(bytes)))
	return p, err
}

func (g *realGPU) free(p uintptr) error { return g.drv.check("cuMemFree", call(g.drv.cuMemFree, p)) }

func (g *realGPU) mallocHost(bytes int) (uintptr, error) {
	var p uintptr
	err := g.drv.check(fmt.Sprintf("cuMemAllocHost(%d bytes)", bytes), call(g.drv.cuMemAllocHost, uintptr(unsafe.Pointer(&p)), uintptr(bytes)))
	return p, err
}

func (g *realGPU) freeHost(p uintptr) error {
	return g.drv.check("cuMemFreeHost", call(g.drv.cuMemFreeHost, p))
}

func (g *realGPU) htod(dst, src uintptr, bytes int) error {
	return g.drv.check("cuMemcpyHtoDAsync", call(g.drv.cuMemcpyHtoDAsync, dst, src, uintptr(bytes), g.stream))
}

// htodPageable relies on the driver's rule for pageable sources: the call
// returns once the data has been staged, so src is free to change.
func (g *realGPU) htodPageable(dst uintptr, src unsafe.Pointer, bytes int) error {
	return g.drv.check("cuMemcpyHtoDAsync", call(g.drv.cuMemcpyHtoDAsync, dst, uintptr(src), uintptr(bytes), g.stream))
}

func (g *realGPU) dtoh(dst unsafe.Pointer, src uintptr, bytes int) error {
	if err := g.drv.check("cuMemcpyDtoHAsync", call(g.drv.cuMemcpyDtoHAsync, uintptr(dst), src, uintptr(bytes), g.stream)); err != nil {
		return err
	}
	return g.sync()
}

func (g *realGPU) dtod(dst, src uintptr, bytes int) error {
	return g.drv.check("cuMemcpyDtoDAsync", call(g.drv.cuMemcpyDtoDAsync, dst, src, uintptr(bytes), g.stream))
}

func (g *realGPU) memset32(dst uintptr, v uint32, n int) error {
	return g.drv.check("cuMemsetD32Async", call(g.drv.cuMemsetD32A, dst, uintptr(v), uintptr(n), g.stream))
}

func (g *realGPU) loadKernels(src string, names []string) (map[string]uintptr, error) {
	image, err := compileCached(g.nv, src, g.desc.Arch(), g.cache)
	if err != nil {
		return nil, err
	}
	if err := g.drv.check("cuModuleLoadData", call(g.drv.cuModuleLoadData, uintptr(unsafe.Pointer(&g.module)), uintptr(unsafe.Pointer(&image[0])))); err != nil {
		return nil, err
	}
	fns := map[string]uintptr{}
	for _, n := range names {
		cname := append([]byte(n), 0)
		var fn uintptr
		if err := g.drv.check("cuModuleGetFunction("+n+")", call(g.drv.cuModuleGetFunction, uintptr(unsafe.Pointer(&fn)), g.module, uintptr(unsafe.Pointer(&cname[0])))); err != nil {
			return nil, err
		}
		// No kernel uses dynamic shared memory yet; one that wants more
		// than 48 KB must raise its limit with cuFuncSetAttribute
		// (funcAttrMaxDynamicShmem) up to deviceInfo.MaxSharedOptin.
		fns[n] = fn
	}
	return fns, nil
}

func (g *realGPU) launch(fn uintptr, grid, block [3]uint32, shmem int, params unsafe.Pointer) error {
	r := call(g.drv.cuLaunchKernel, fn, uintptr(grid[0]), uintptr(grid[1]), uintptr(grid[2]),
		uintptr(block[0]), uintptr(block[1]), uintptr(block[2]), uintptr(shmem), g.stream, uintptr(params), 0)
	return g.drv.check("cuLaunchKernel", r)
}

func (g *realGPU) gemm(op *gemmOp) error { return g.lt.matmul(op) }

func (g *realGPU) sync() error {
	return g.drv.check("cuStreamSynchronize", call(g.drv.cuStreamSynchronize, g.stream))
}

func (g *realGPU) newEvent() (uintptr, error) {
	var ev uintptr
	err := g.drv.check("cuEventCreate", call(g.drv.cuEventCreate, uintptr(unsafe.Pointer(&ev)), eventDefault))
	return ev, err
}

func (g *realGPU) record(ev uintptr) error {
	return g.drv.check("cuEventRecord", call(g.drv.cuEventRecord, ev, g.stream))
}

func (g *realGPU) waitEvent(ev uintptr) error {
	return g.drv.check("cuEventSynchronize", call(g.drv.cuEventSynchronize, ev))
}

func (g *realGPU) elapsed(start, end uintptr) (float32, error) {
	if err := g.drv.check("cuEventSynchronize", call(g.drv.cuEventSynchronize, end)); err != nil {
		return 0, err
	}
	var ms float32
	err := g.drv.check("cuEventElapsedTime", call(g.drv.cuEventElapsedTime, uintptr(unsafe.Pointer(&ms)), start, end))
	return ms, err
}

func (g *realGPU) memInfo() (int, int, error) {
	var free, total uint64
	err := g.drv.check("cuMemGetInfo", call(g.drv.cuMemGetInfo, uintptr(unsafe.Pointer(&free)), uintptr(unsafe.Pointer(&total))))
	return int(free), int(total), err
}
