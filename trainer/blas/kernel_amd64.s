#include "textflag.h"

// func sgemmKernel6x16(kc int, a *float32, rsA, csA int, b *float32, ldb int, c *float32, ldc int, alpha float32, accumulate bool)
//
// Y0..Y11 hold the 6×16 tile (row r in Y(2r), Y(2r+1)); Y12, Y13 hold 16
// values of B; Y14, Y15 take turns holding a broadcast value of A. A's rows
// 0-2 are addressed from AX and rows 3-5 from R10, as base + {0,1,2}·rsA.

#define STEP \
	VMOVUPS (BX), Y12; \
	VMOVUPS 32(BX), Y13; \
	VBROADCASTSS (AX), Y14; \
	VFMADD231PS Y12, Y14, Y0; \
	VFMADD231PS Y13, Y14, Y1; \
	VBROADCASTSS (AX)(SI*1), Y15; \
	VFMADD231PS Y12, Y15, Y2; \
	VFMADD231PS Y13, Y15, Y3; \
	VBROADCASTSS (AX)(SI*2), Y14; \
	VFMADD231PS Y12, Y14, Y4; \
	VFMADD231PS Y13, Y14, Y5; \
	VBROADCASTSS (R10), Y15; \
	VFMADD231PS Y12, Y15, Y6; \
	VFMADD231PS Y13, Y15, Y7; \
	VBROADCASTSS (R10)(SI*1), Y14; \
	VFMADD231PS Y12, Y14, Y8; \
	VFMADD231PS Y13, Y14, Y9; \
	VBROADCASTSS (R10)(SI*2), Y15; \
	VFMADD231PS Y12, Y15, Y10; \
	VFMADD231PS Y13, Y15, Y11; \
	ADDQ DI, AX; \
	ADDQ DI, R10; \
	ADDQ R9, BX

// ROW stores (or adds into C, then stores) one row of the tile, scaled by
// alpha in Y14, and moves DX to the next row.
#define ROWSET(lo, hi) \
	VMULPS Y14, lo, lo; \
	VMULPS Y14, hi, hi; \
	VMOVUPS lo, (DX); \
	VMOVUPS hi, 32(DX); \
	ADDQ R8, DX

#define ROWADD(lo, hi) \
	VFMADD213PS (DX), Y14, lo; \
	VFMADD213PS 32(DX), Y14, hi; \
	VMOVUPS lo, (DX); \
	VMOVUPS hi, 32(DX); \
	ADDQ R8, DX

TEXT ·sgemmKernel6x16(SB), NOSPLIT, $0-69
	MOVQ kc+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ rsA+16(FP), SI
	SHLQ $2, SI
	MOVQ csA+24(FP), DI
	SHLQ $2, DI
	MOVQ b+32(FP), BX
	MOVQ ldb+40(FP), R9
	SHLQ $2, R9
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8
	LEAQ (AX)(SI*2), R10
	ADDQ SI, R10
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	CMPQ CX, $4
	JLT tail
loop4:
	STEP
	STEP
	STEP
	STEP
	SUBQ $4, CX
	CMPQ CX, $4
	JGE loop4
tail:
	TESTQ CX, CX
	JEQ store
loop1:
	STEP
	DECQ CX
	JNZ loop1
store:
	VBROADCASTSS alpha+64(FP), Y14
	MOVBLZX accumulate+68(FP), R11
	TESTQ R11, R11
	JEQ overwrite
	ROWADD(Y0, Y1)
	ROWADD(Y2, Y3)
	ROWADD(Y4, Y5)
	ROWADD(Y6, Y7)
	ROWADD(Y8, Y9)
	ROWADD(Y10, Y11)
	VZEROUPPER
	RET
overwrite:
	ROWSET(Y0, Y1)
	ROWSET(Y2, Y3)
	ROWSET(Y4, Y5)
	ROWSET(Y6, Y7)
	ROWSET(Y8, Y9)
	ROWSET(Y10, Y11)
	VZEROUPPER
	RET
