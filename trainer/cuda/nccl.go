package cuda

// NCCL, the collective library data-parallel ranks on GPUs sum their
// gradients with, opened at run time like the other CUDA libraries.
//
// UNVERIFIED ON TWO GPUS: the machines this was written on lend one GPU at
// most, and NCCL refuses two ranks on one device, so only a world of one
// (TestNCCLWorldOfOne: load, unique id, communicator, an in-place all-reduce
// on the backend's stream) can run here. The trainer service falls back to
// summing over NATS (shared/rendezvous) when any rank lacks NCCL.
//
// ncclCommInitRank takes the 128-byte ncclUniqueId by value, which purego
// cannot pass (more stack words than it allows), so the communicator comes
// from ncclCommInitRankScalable (NCCL 2.23 and newer), which takes a pointer
// to the ids; with one id it is ncclCommInitRankConfig with defaults.

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/eftml/eft/trainer/model"
	"github.com/eftml/eft/trainer/tensor"
)

var libNCCL = libSpec{what: "NCCL 2.23 or newer (libnccl)", prefix: "libnccl.so", sonames: []string{"libnccl.so.2", "libnccl.so"}}

// NCCLUniqueIDBytes is the size of ncclUniqueId.
const NCCLUniqueIDBytes = 128

// nccl.h's enums this file uses.
const (
	ncclFloat32 = 7
	ncclSum     = 0
)

// ncclAPI holds libnccl's entry points.
type ncclAPI struct {
	path    string
	version int

	getVersion, getUniqueID, commInitRankScalable, commDestroy, commAbort uintptr
	allReduce, groupStart, groupEnd, getErrorString                       uintptr
}

var loadNCCL = sync.OnceValues(func() (*ncclAPI, error) {
	h, path, err := openLibrary(libNCCL, []string{"ncclCommInitRankScalable", "ncclAllReduce"})
	if err != nil {
		return nil, err
	}
	n := &ncclAPI{path: path}
	for name, p := range map[string]*uintptr{
		"ncclGetVersion": &n.getVersion, "ncclGetUniqueId": &n.getUniqueID, "ncclCommInitRankScalable": &n.commInitRankScalable,
		"ncclCommDestroy": &n.commDestroy, "ncclCommAbort": &n.commAbort, "ncclAllReduce": &n.allReduce,
		"ncclGroupStart": &n.groupStart, "ncclGroupEnd": &n.groupEnd, "ncclGetErrorString": &n.getErrorString,
	} {
		if *p, err = dlsym(h, name); err != nil {
			return nil, fmt.Errorf("cuda: %s has no %s", path, name)
		}
	}
	var v int32
	if err := n.check("ncclGetVersion", call(n.getVersion, uintptr(unsafe.Pointer(&v)))); err != nil {
		return nil, err
	}
	n.version = int(v)
	return n, nil
})

func (n *ncclAPI) check(what string, r uintptr) error {
	if int32(r) == 0 {
		return nil
	}
	return fmt.Errorf("cuda: %s: %s (ncclResult %d)", what, cString(call(n.getErrorString, r)), int32(r))
}

// NCCLAvailable says whether NCCL loads here, and which file and version.
func NCCLAvailable() (string, error) {
	if !supported {
		return "", errUnsupportedPlatform
	}
	n, err := loadNCCL()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s (NCCL %d.%d.%d)", n.path, n.version/10000, n.version/100%100, n.version%100), nil
}

// NCCLUniqueID makes the id rank 0 hands to its peers (through the
// rendezvous) before they all call NewComm with it.
func NCCLUniqueID() ([]byte, error) {
	if !supported {
		return nil, errUnsupportedPlatform
	}
	n, err := loadNCCL()
	if err != nil {
		return nil, err
	}
	id := make([]byte, NCCLUniqueIDBytes)
	if err := n.check("ncclGetUniqueId", call(n.getUniqueID, uintptr(unsafe.Pointer(&id[0])))); err != nil {
		return nil, err
	}
	return id, nil
}

// Comm is this backend's device's place in an NCCL communicator.
type Comm struct {
	b           *Backend
	n           *ncclAPI
	comm        uintptr
	stream      uintptr
	Rank, World int
}

// NewComm joins the communicator of world ranks named by id (rank 0's
// NCCLUniqueID) as rank. It blocks until every rank has joined; after
// timeout it gives up with an error (the joining thread may stay blocked
// inside NCCL; the backend itself stays usable).
func (b *Backend) NewComm(id []byte, world, rank int, timeout time.Duration) (*Comm, error) {
	if len(id) != NCCLUniqueIDBytes {
		return nil, fmt.Errorf("cuda: NCCL unique id of %d bytes, want %d", len(id), NCCLUniqueIDBytes)
	}
	if rank < 0 || rank >= world {
		return nil, fmt.Errorf("cuda: NCCL rank %d of %d", rank, world)
	}
	n, err := loadNCCL()
	if err != nil {
		return nil, err
	}
	g, err := b.realGPU()
	if err != nil {
		return nil, err
	}
	c := &Comm{b: b, n: n, stream: g.stream, Rank: rank, World: world}
	done := make(chan error, 1)
	idCopy := append([]byte(nil), id...)
	// Not on the executor: init blocks until every rank has joined, and a
	// rank that never comes must not leave the executor blocked. A thread
	// of its own with the device's context current, which NCCL takes the
	// device from.
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := g.drv.check("cuCtxSetCurrent", call(g.drv.cuCtxSetCurrent, g.ctx)); err != nil {
			done <- err
			return
		}
		done <- n.check("ncclCommInitRankScalable", call(n.commInitRankScalable,
			uintptr(unsafe.Pointer(&c.comm)), uintptr(world), uintptr(rank), 1, uintptr(unsafe.Pointer(&idCopy[0])), 0))
	}()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		return c, nil
	case <-time.After(timeout):
		return nil, fmt.Errorf("cuda: NCCL: rank %d of %d: the other ranks did not join within %s", rank, world, timeout)
	}
}

// realGPU is the backend's device (not the emulator).
func (b *Backend) realGPU() (*realGPU, error) {
	g := b.g
	if p, ok := g.(*profiledGPU); ok {
		g = p.gpu
	}
	r, ok := g.(*realGPU)
	if !ok {
		return nil, errors.New("cuda: NCCL needs a real GPU (this backend is an emulator)")
	}
	return r, nil
}

// SumGradients replaces the gradient of every parameter by its sum over the
// ranks: one in-place float32 ncclAllReduce per gradient, grouped, on the
// backend's stream (after the backward kernels, before the optimizer's).
// Every rank gets the same bits.
func (c *Comm) SumGradients(params []*model.Param) error {
	var err error
	c.b.do(func() { // writes the gradients: kept GEMM-operand conversions are dropped
		if err = c.n.check("ncclGroupStart", call(c.n.groupStart)); err != nil {
			return
		}
		for _, p := range params {
			if p.G == nil || p.G.DType != tensor.F32 {
				err = fmt.Errorf("cuda: NCCL: the gradient of %s is not a float32 device tensor", p.Name)
				break
			}
			ptr := c.b.addr("SumGradients", p.G)
			if err = c.n.check("ncclAllReduce "+p.Name, call(c.n.allReduce, ptr, ptr, uintptr(p.G.Len()), ncclFloat32, ncclSum, c.comm, c.stream)); err != nil {
				break
			}
		}
		if gerr := c.n.check("ncclGroupEnd", call(c.n.groupEnd)); err == nil {
			err = gerr
		}
	})
	return err
}

// Close frees the communicator; Abort is for a world that lost a rank
// (ncclCommDestroy would wait for it).
func (c *Comm) Close() {
	if c.comm != 0 {
		c.b.ex.do(func() { call(c.n.commDestroy, c.comm) })
		c.comm = 0
	}
}

// Abort ends the communicator at once, whatever the other ranks do.
func (c *Comm) Abort() {
	if c.comm != 0 {
		c.b.ex.do(func() { call(c.n.commAbort, c.comm) })
		c.comm = 0
	}
}
