package quant

import "math"

// nf4Code is bitsandbytes' NF4 table (get_4bit_type("nf4"), the CUDA
// kernels' nf4_dequantization_lut): quantiles of N(0,1) scaled to [-1, 1],
// 8 negative values, 0 and 7 positive ones, sorted, so code i is table
// index i.
var nf4Code = [16]float32{
	-1.0,
	-0.6961928009986877,
	-0.5250730514526367,
	-0.39491748809814453,
	-0.28444138169288635,
	-0.18477343022823334,
	-0.09105003625154495,
	0.0,
	0.07958029955625534,
	0.16093020141124725,
	0.24611230194568634,
	0.33791524171829224,
	0.44070982933044434,
	0.5626170039176941,
	0.7229568362236023,
	1.0,
}

// nf4Thresholds[i] (i < 15) separates codes i and i+1: a scaled value x gets the
// number of thresholds it exceeds (x == threshold takes the lower code).
// They are the literals of bitsandbytes' CUDA dQuantizeNF4 decision tree
// (midpoints computed in float64, rounded to float32). Four of them
// (0, 8, 12, 14) are one float32 ulp away from the midpoints its pure-torch
// reference backend computes in float32; see TestNF4ThresholdsAreMidpoints.
var nf4Thresholds = [16]float32{
	-0.8480964004993439,
	-0.6106329262256622,
	-0.4599952697753906,
	-0.33967943489551544,
	-0.23460740596055984,
	-0.13791173323988914,
	-0.045525018125772476,
	0.03979014977812767,
	0.1202552504837513,
	0.2035212516784668,
	0.2920137718319893,
	0.3893125355243683,
	0.5016634166240692,
	0.6427869200706482,
	0.8614784181118011,
	float32(math.Inf(1)), // no code above 15: quantizeNF4 compares with it
}

// quantizeNF4 is the code of a scaled value x (nominally in [-1, 1]): the
// number of thresholds x exceeds, as the CUDA kernel's decision tree finds
// it. NaN (an all-zero block scaled by 1/0) exceeds none and gets code 0,
// as on the GPU; it dequantizes to -1·0.
//
// Rather than the tree's four data-dependent branches it looks x's bucket
// of width 1/128 up in nf4Buckets, which says how many thresholds lie in
// lower buckets, and compares x with the one threshold that may share its
// bucket (thresholds are at least 0.079 apart): 4× faster on random
// weights, and exactly the same count.
func quantizeNF4(x float32) byte {
	if !(x > -1) { // also NaN
		return 0
	}
	if x >= 1 {
		return 15
	}
	q := nf4Buckets[int((x+1)*128)] // x+1 may round up to 2: bucket 256
	if x > nf4Thresholds[q] {
		q++
	}
	return q
}

// nf4Buckets[b] counts the NF4 thresholds in buckets below b, bucket(x) =
// ⌊(x+1)·128⌋ computed in float32 as quantizeNF4 does. Bucketing is
// monotonic, so a value in bucket b exceeds every threshold of a lower
// bucket and none of a higher one.
var nf4Buckets = func() (lut [257]byte) {
	for b := range lut {
		for _, t := range nf4Thresholds[:15] {
			if int((t+1)*128) < b {
				lut[b]++
			}
		}
	}
	return lut
}()

// fp4Code is bitsandbytes' FP4 table in code order (1 sign bit, 2 exponent
// bits, 1 mantissa bit, exponent bias 3; get_4bit_type("fp4")), divided by
// its largest magnitude, 12, as get_4bit_type does.
var fp4Code = func() [16]float32 {
	raw := [16]float32{0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3}
	var c [16]float32
	for i, v := range raw {
		c[i] = v / 12
	}
	c[8] = float32(math.Copysign(0, -1))
	return c
}()

// quantizeFP4 is bitsandbytes' CUDA dQuantizeFP4: the sign in bit 3, then
// the magnitude by its decision tree (the pivots are its literals; one,
// 0.583333, is 3e-7 below the true midpoint of 0.5 and 2/3).
func quantizeFP4(x float32) byte {
	var sign byte
	if x < 0 {
		sign = 0b1000
	}
	x = float32(math.Abs(float64(x)))
	switch {
	case x > 0.29166667:
		switch {
		case x > 0.583333:
			if x > 0.8333333 {
				return 0b0011 + sign
			}
			return 0b0010 + sign
		case x > 0.4166667:
			return 0b0101 + sign
		default:
			return 0b0100 + sign
		}
	case x > 0.0859375:
		if x > 0.20833333 {
			return 0b0111 + sign
		}
		return 0b0110 + sign
	case x > 0.00260417:
		return 0b0001 + sign
	default:
		return 0b0000 + sign
	}
}

// dynamicCode is bitsandbytes' signed 8-bit dynamic map
// (create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)), the
// code double quantization stores the absmax values in: for i = 0..6 the
// midpoints of torch.linspace(0.1, 1, 2^i+1) in float32, times 10^(i-6),
// both signs, plus 0 and 1, sorted. torch.linspace is reproduced by its
// scalar CPU kernel (start+step·i for the first half, end−step·(n−1−i) for
// the second); torch's vectorized kernel can round a few entries
// differently on some CPUs, and bitsandbytes stores the map with every
// quantized state, so a map read from a file would win over this one.
var dynamicCode = func() [256]float32 {
	var data []float32
	for i := range 7 {
		n := 1<<i + 1
		b := linspaceF32(0.1, 1, n)
		scale := float32(math.Pow10(i - 6))
		for j := 0; j+1 < n; j++ {
			mean := (b[j] + b[j+1]) / 2
			v := mean
			if i != 6 { // 10**0 is the integer 1: no float32 product
				v = scale * mean
			}
			data = append(data, v, -v)
		}
	}
	data = append(data, 0, 1)
	sortF32(data)
	var c [256]float32
	copy(c[:], data)
	return c
}()

// linspaceF32 is torch.linspace(start, end, steps, dtype=float32) as its
// scalar CPU kernel computes it.
func linspaceF32(start64, end64 float64, steps int) []float32 {
	start, end := float32(start64), float32(end64)
	step := (end - start) / float32(steps-1)
	out := make([]float32, steps)
	half := steps / 2
	for i := range out {
		if i < half {
			out[i] = start + float32(step*float32(i)) // float32(): no fused multiply-add
		} else {
			out[i] = end - float32(step*float32(steps-i-1))
		}
	}
	return out
}

func sortF32(s []float32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// quantizeDynamic is bitsandbytes' CUDA dQuantize<0> over the 256-entry
// dynamicCode: a binary search from entry 127, then the nearer of the two
// neighbours by their float32 midpoint.
func quantizeDynamic(x float32) byte {
	code := &dynamicCode
	pivot, upperPivot, lowerPivot := 127, 255, 0
	lower, upper := float32(-1), float32(1)
	val := code[pivot]
	for i := 64; i > 0; i >>= 1 {
		if x > val {
			lowerPivot, lower = pivot, val
			pivot += i
		} else {
			upperPivot, upper = pivot, val
			pivot -= i
		}
		val = code[pivot]
	}
	if upperPivot == 255 {
		upper = code[upperPivot]
	}
	if lowerPivot == 0 {
		lower = code[lowerPivot]
	}
	if x > val {
		if x > (upper+val)*0.5 {
			return byte(upperPivot)
		}
		return byte(pivot)
	}
	if x < (lower+val)*0.5 {
		return byte(lowerPivot)
	}
	return byte(pivot)
}
