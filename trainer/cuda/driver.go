package cuda

import (
	"fmt"
	"unsafe"
)

// driverAPI holds libcuda's entry points (the driver API, no runtime
// library). Every call must run on the executor's locked OS thread with the
// device's context current.
type driverAPI struct {
	path string

	cuInit, cuDriverGetVersion, cuGetErrorName                             uintptr
	cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute   uintptr
	cuDeviceTotalMem, cuDevicePrimaryCtxRetain, cuCtxSetCurrent            uintptr
	cuStreamCreate, cuStreamSynchronize                                    uintptr
	cuMemAlloc, cuMemFree, cuMemAllocHost, cuMemFreeHost, cuMemGetInfo     uintptr
	cuMemcpyHtoDAsync, cuMemcpyDtoHAsync, cuMemcpyDtoDAsync, cuMemsetD32A  uintptr
	cuModuleLoadData, cuModuleGetFunction, cuLaunchKernel, cuFuncSetAttrib uintptr
	cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime   uintptr
}

// driverSymbols maps each field to its symbol; versioned names are the ones
// cuda.h binds its macros to.
func (d *driverAPI) symbols() map[string]*uintptr {
	return map[string]*uintptr{
		"cuInit": &d.cuInit, "cuDriverGetVersion": &d.cuDriverGetVersion, "cuGetErrorName": &d.cuGetErrorName,
		"cuDeviceGetCount": &d.cuDeviceGetCount, "cuDeviceGet": &d.cuDeviceGet, "cuDeviceGetName": &d.cuDeviceGetName,
		"cuDeviceGetAttribute": &d.cuDeviceGetAttribute, "cuDeviceTotalMem_v2": &d.cuDeviceTotalMem,
		"cuDevicePrimaryCtxRetain": &d.cuDevicePrimaryCtxRetain, "cuCtxSetCurrent": &d.cuCtxSetCurrent,
		"cuStreamCreate": &d.cuStreamCreate, "cuStreamSynchronize": &d.cuStreamSynchronize,
		"cuMemAlloc_v2": &d.cuMemAlloc, "cuMemFree_v2": &d.cuMemFree, "cuMemAllocHost_v2": &d.cuMemAllocHost,
		"cuMemFreeHost": &d.cuMemFreeHost, "cuMemGetInfo_v2": &d.cuMemGetInfo,
		"cuMemcpyHtoDAsync_v2": &d.cuMemcpyHtoDAsync, "cuMemcpyDtoHAsync_v2": &d.cuMemcpyDtoHAsync,
		"cuMemcpyDtoDAsync_v2": &d.cuMemcpyDtoDAsync, "cuMemsetD32Async": &d.cuMemsetD32A,
		"cuModuleLoadData": &d.cuModuleLoadData, "cuModuleGetFunction": &d.cuModuleGetFunction,
		"cuLaunchKernel": &d.cuLaunchKernel, "cuFuncSetAttribute": &d.cuFuncSetAttrib,
		"cuEventCreate": &d.cuEventCreate, "cuEventRecord": &d.cuEventRecord,
		"cuEventSynchronize": &d.cuEventSynchronize, "cuEventElapsedTime": &d.cuEventElapsedTime,
	}
}

func loadDriver() (*driverAPI, error) {
	d := &driverAPI{}
	syms := d.symbols()
	h, path, err := openLibrary(libDriver, []string{"cuInit", "cuLaunchKernel", "cuMemAlloc_v2"})
	if err != nil {
		return nil, err
	}
	d.path = path
	for name, p := range syms {
		if *p, err = dlsym(h, name); err != nil {
			return nil, fmt.Errorf("cuda: %s has no %s (driver too old?)", path, name)
		}
	}
	return d, nil
}

// Device attributes (CUdevice_attribute) read at start.
const (
	attrMultiprocessors     = 16
	attrL2CacheSize         = 38
	attrComputeMajor        = 75
	attrComputeMinor        = 76
	attrMaxSharedOptin      = 97
	funcAttrMaxDynamicShmem = 8 // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
	streamNonBlocking       = 1
	eventDefault            = 0
)

// cuError is a failed driver call.
type cuError struct {
	call string
	code uintptr
	name string
}

func (e *cuError) Error() string {
	hint := ""
	switch e.code {
	case 2:
		hint = " (out of device memory)"
	case 100:
		hint = " (no CUDA-capable device is visible)"
	case 201:
		hint = " (no current context on this OS thread: a CUDA call ran off the executor)"
	case 34:
		hint = " (this libcuda is the toolkit's stub, not the driver's)"
	case 35:
		hint = " (the driver is older than these libraries need)"
	}
	return fmt.Sprintf("cuda: %s failed: %s (%d)%s", e.call, e.name, e.code, hint)
}

func (d *driverAPI) check(what string, r uintptr) error {
	if r == 0 {
		return nil
	}
	var name uintptr
	call(d.cuGetErrorName, r, uintptr(unsafe.Pointer(&name)))
	n := cString(name)
	if n == "" {
		n = "CUDA_ERROR_UNKNOWN"
	}
	return &cuError{call: what, code: r, name: n}
}
