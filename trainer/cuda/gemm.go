package cuda

import (
	"fmt"
	"runtime"
	"unsafe"
)

// elemType is a device buffer's element type as the GEMM sees it.
type elemType uint8

const (
	elemF32 elemType = iota
	elemBF16
)

func (e elemType) size() int {
	if e == elemBF16 {
		return 2
	}
	return 4
}

// gemmOp is one (batched) product in cuBLAS's column-major terms:
// C[i] = alpha·op(A[i])·op(B[i]) + beta·C[i] for i < batch, with C m×n,
// op(A) m×k, op(B) k×n, leading dimensions in elements and batch strides in
// elements. A and B have one type; C is float32 or bf16.
type gemmOp struct {
	transA, transB            bool
	m, n, k                   int
	a, b, c                   uintptr
	lda, ldb, ldc             int
	batch                     int
	strideA, strideB, strideC int
	ab, ct                    elemType
	tf32                      bool // float32 inputs may use TF32 tensor cores
	alpha, beta               float32
}

// cublasLt holds cuBLASLt's entry points, its handle, a workspace and the
// plans made so far (descriptors and the chosen algorithm per shape).
type cublasLt struct {
	path                                                 string
	create, descCreate, descSet, layoutCreate, layoutSet uintptr
	prefCreate, prefSet, heuristic, matmulFn, version    uintptr
	handle, stream, workspace                            uintptr
	workspaceBytes                                       int
	plans                                                map[gemmKey]*gemmPlan
	scalars                                              *[2]float32
}

// gemmKey is everything about a gemmOp but its pointers and scalars.
type gemmKey struct {
	transA, transB            bool
	m, n, k, lda, ldb, ldc    int
	batch                     int
	strideA, strideB, strideC int
	ab, ct                    elemType
	tf32                      bool
	alignA, alignB, alignC    int // bytes the pointers are aligned to, up to 256
}

type gemmPlan struct {
	desc, la, lb, lc uintptr
	algo             [96]byte // cublasLtMatmulHeuristicResult_t; the algo is its first 64 bytes
}

// cuBLASLt and CUDA enum values used here (cublasLt.h, library_types.h).
const (
	cudaR32F             = 0
	cudaR16BF            = 14
	computeF32           = 68
	computeF32FastTF32   = 77
	descTransA           = 3
	descTransB           = 4
	layoutBatchCount     = 5
	layoutBatchStride    = 6
	prefMaxWorkspace     = 1
	prefMinAlignA        = 5        // ... B 6, C 7, D 8
	ltWorkspaceBytes     = 32 << 20 // what NVIDIA suggests for Hopper
	ltHeuristicResultLen = 96
)

func loadCublasLt(drv *driverAPI, stream uintptr) (*cublasLt, error) {
	h, path, err := openLibrary(libCublasLt, []string{"cublasLtMatmul"})
	if err != nil {
		return nil, err
	}
	lt := &cublasLt{path: path, stream: stream, plans: map[gemmKey]*gemmPlan{}, scalars: new([2]float32)}
	for name, p := range map[string]*uintptr{
		"cublasLtCreate": &lt.create, "cublasLtMatmulDescCreate": &lt.descCreate, "cublasLtMatmulDescSetAttribute": &lt.descSet,
		"cublasLtMatrixLayoutCreate": &lt.layoutCreate, "cublasLtMatrixLayoutSetAttribute": &lt.layoutSet,
		"cublasLtMatmulPreferenceCreate": &lt.prefCreate, "cublasLtMatmulPreferenceSetAttribute": &lt.prefSet,
		"cublasLtMatmulAlgoGetHeuristic": &lt.heuristic, "cublasLtMatmul": &lt.matmulFn, "cublasLtGetVersion": &lt.version,
	} {
		if *p, err = dlsym(h, name); err != nil {
			return nil, fmt.Errorf("cuda: %s has no %s", path, name)
		}
	}
	if err := ltCheck("cublasLtCreate", call(lt.create, uintptr(unsafe.Pointer(&lt.handle)))); err != nil {
		return nil, err
	}
	if err := drv.check("cuMemAlloc(cuBLASLt workspace)", call(drv.cuMemAlloc, uintptr(unsafe.Pointer(&lt.workspace)), ltWorkspaceBytes)); err != nil {
		return nil, err
	}
	lt.workspaceBytes = ltWorkspaceBytes
	return lt, nil
}

// Version is cuBLASLt's version number (e.g. 130000).
func (lt *cublasLt) Version() int { return int(call(lt.version)) }

func ltCheck(what string, status uintptr) error {
	if status == 0 {
		return nil
	}
	names := map[uintptr]string{1: "NOT_INITIALIZED", 3: "ALLOC_FAILED", 7: "INVALID_VALUE", 8: "ARCH_MISMATCH",
		11: "MAPPING_ERROR", 13: "EXECUTION_FAILED", 14: "INTERNAL_ERROR", 15: "NOT_SUPPORTED", 16: "LICENSE_ERROR"}
	return fmt.Errorf("cuda: %s failed: CUBLAS_STATUS_%s (%d)", what, names[status], status)
}

func cudaType(e elemType) uintptr {
	if e == elemBF16 {
		return cudaR16BF
	}
	return cudaR32F
}

// plan returns the descriptors and algorithm for op's shape, making them
// the first time the shape is seen.
func (lt *cublasLt) plan(op *gemmOp) (*gemmPlan, error) {
	key := gemmKey{op.transA, op.transB, op.m, op.n, op.k, op.lda, op.ldb, op.ldc, op.batch,
		op.strideA, op.strideB, op.strideC, op.ab, op.ct, op.tf32, alignment(op.a), alignment(op.b), alignment(op.c)}
	if p := lt.plans[key]; p != nil {
		return p, nil
	}
	p := &gemmPlan{}
	compute := uintptr(computeF32)
	if op.tf32 && op.ab == elemF32 {
		compute = computeF32FastTF32
	}
	if err := ltCheck("cublasLtMatmulDescCreate", call(lt.descCreate, uintptr(unsafe.Pointer(&p.desc)), compute, cudaR32F)); err != nil {
		return nil, err
	}
	setOp := func(attr uintptr, trans bool) error {
		v := int32(0)
		if trans {
			v = 1
		}
		return ltCheck("cublasLtMatmulDescSetAttribute", call(lt.descSet, p.desc, attr, uintptr(unsafe.Pointer(&v)), 4))
	}
	if err := setOp(descTransA, op.transA); err != nil {
		return nil, err
	}
	if err := setOp(descTransB, op.transB); err != nil {
		return nil, err
	}
	layout := func(out *uintptr, t elemType, rows, cols, ld, stride int) error {
		if err := ltCheck("cublasLtMatrixLayoutCreate", call(lt.layoutCreate, uintptr(unsafe.Pointer(out)), cudaType(t), uintptr(rows), uintptr(cols), uintptr(ld))); err != nil {
			return err
		}
		if op.batch <= 1 {
			return nil
		}
		count, off := int32(op.batch), int64(stride)
		if err := ltCheck("cublasLtMatrixLayoutSetAttribute", call(lt.layoutSet, *out, layoutBatchCount, uintptr(unsafe.Pointer(&count)), 4)); err != nil {
			return err
		}
		return ltCheck("cublasLtMatrixLayoutSetAttribute", call(lt.layoutSet, *out, layoutBatchStride, uintptr(unsafe.Pointer(&off)), 8))
	}
	// A layout describes A as stored: m×k, or k×m when transposed.
	ar, ac := op.m, op.k
	if op.transA {
		ar, ac = op.k, op.m
	}
	br, bc := op.k, op.n
	if op.transB {
		br, bc = op.n, op.k
	}
	if err := layout(&p.la, op.ab, ar, ac, op.lda, op.strideA); err != nil {
		return nil, err
	}
	if err := layout(&p.lb, op.ab, br, bc, op.ldb, op.strideB); err != nil {
		return nil, err
	}
	if err := layout(&p.lc, op.ct, op.m, op.n, op.ldc, op.strideC); err != nil {
		return nil, err
	}
	var pref uintptr
	if err := ltCheck("cublasLtMatmulPreferenceCreate", call(lt.prefCreate, uintptr(unsafe.Pointer(&pref)))); err != nil {
		return nil, err
	}
	ws := uint64(lt.workspaceBytes)
	if err := ltCheck("cublasLtMatmulPreferenceSetAttribute", call(lt.prefSet, pref, prefMaxWorkspace, uintptr(unsafe.Pointer(&ws)), 8)); err != nil {
		return nil, err
	}
	// cuBLASLt assumes 256-byte aligned matrices unless told otherwise;
	// views (a head's columns, a chunk of rows) are often less aligned.
	for i, al := range []int{key.alignA, key.alignB, key.alignC, key.alignC} {
		v := uint32(al)
		if err := ltCheck("cublasLtMatmulPreferenceSetAttribute", call(lt.prefSet, pref, uintptr(prefMinAlignA+i), uintptr(unsafe.Pointer(&v)), 4)); err != nil {
			return nil, err
		}
	}
	var found int32
	if err := ltCheck("cublasLtMatmulAlgoGetHeuristic", call(lt.heuristic, lt.handle, p.desc, p.la, p.lb, p.lc, p.lc, pref, 1,
		uintptr(unsafe.Pointer(&p.algo[0])), uintptr(unsafe.Pointer(&found)))); err != nil {
		return nil, fmt.Errorf("%w (gemm %+v)", err, key)
	}
	if found == 0 {
		return nil, fmt.Errorf("cuda: cuBLASLt has no algorithm for gemm %+v", key)
	}
	lt.plans[key] = p
	return p, nil
}

func (lt *cublasLt) matmul(op *gemmOp) error {
	p, err := lt.plan(op)
	if err != nil {
		return err
	}
	lt.scalars[0], lt.scalars[1] = op.alpha, op.beta
	r := call(lt.matmulFn, lt.handle, p.desc,
		uintptr(unsafe.Pointer(&lt.scalars[0])), op.a, p.la, op.b, p.lb,
		uintptr(unsafe.Pointer(&lt.scalars[1])), op.c, p.lc, op.c, p.lc,
		uintptr(unsafe.Pointer(&p.algo[0])), lt.workspace, uintptr(lt.workspaceBytes), lt.stream)
	runtime.KeepAlive(p)
	return ltCheck(fmt.Sprintf("cublasLtMatmul(m=%d n=%d k=%d batch=%d)", op.m, op.n, op.k, op.batch), r)
}

// alignment is the largest power of two, up to 256, that divides p.
func alignment(p uintptr) int {
	a := 256
	for a > 1 && p%uintptr(a) != 0 {
		a /= 2
	}
	return a
}
