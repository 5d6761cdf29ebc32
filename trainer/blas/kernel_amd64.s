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

// func transpose8Panel(blocks int, src *float32, lds int, dst *float32)
//
// For each of blocks groups of 8 steps p: loads 8 values from each of 8
// source rows (row r at src + r·lds), transposes the 8×8 block in
// registers and stores step p's 8 values at dst + p·16 floats (a 16-wide
// packed B panel; call again with dst+8 for its other half).
TEXT ·transpose8Panel(SB), NOSPLIT, $0-32
	MOVQ blocks+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), DX
	SHLQ $2, DX
	MOVQ dst+24(FP), DI
	LEAQ (SI)(DX*2), AX
	ADDQ DX, AX             // AX = row 3
	LEAQ (AX)(DX*2), BX
	ADDQ DX, BX             // BX = row 6
	TESTQ CX, CX
	JEQ tdone
tloop:
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(DX*1), Y1
	VMOVUPS (SI)(DX*2), Y2
	VMOVUPS (AX), Y3
	VMOVUPS (SI)(DX*4), Y4
	VMOVUPS (AX)(DX*2), Y5
	VMOVUPS (BX), Y6
	VMOVUPS (BX)(DX*1), Y7
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS Y8, 0(DI)
	VMOVUPS Y9, 64(DI)
	VMOVUPS Y10, 128(DI)
	VMOVUPS Y11, 192(DI)
	VMOVUPS Y12, 256(DI)
	VMOVUPS Y13, 320(DI)
	VMOVUPS Y14, 384(DI)
	VMOVUPS Y15, 448(DI)
	ADDQ $32, SI
	ADDQ $32, AX
	ADDQ $32, BX
	ADDQ $512, DI
	DECQ CX
	JNZ tloop
tdone:
	VZEROUPPER
	RET

// func packCols6(kc int, src *float32, lds int, dst *float32)
//
// Packs a 6-row panel of a transposed A: for each step p, the 6 contiguous
// values at src + p·lds go to dst + p·6 (a 16-byte and an 8-byte move, so
// nothing past them is read).
TEXT ·packCols6(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), DX
	SHLQ $2, DX
	MOVQ dst+24(FP), DI
	TESTQ CX, CX
	JEQ cdone
cloop:
	MOVUPS (SI), X0
	MOVQ 16(SI), X1
	MOVUPS X0, (DI)
	MOVQ X1, 16(DI)
	ADDQ DX, SI
	ADDQ $24, DI
	DECQ CX
	JNZ cloop
cdone:
	RET
