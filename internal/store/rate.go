package store

import "math"

// rate16 is a non-negative rate (per second) in 16 bits: the 16 bits
// after the sign of a float64 (11 of exponent, 52 of mantissa) cut to 6 of
// exponent and 10 of mantissa, scaled by 2^rateScale. Codes of exponent 0
// are evenly spaced from 0 (gradual underflow, as in IEEE 754).
//
//   - 0 is code 0, exactly; codes are in the order of their values, so
//     comparing codes compares rates.
//   - From 2^-21 (about 4.8·10⁻⁷, code 1024) to the largest code
//     (2^42·(1-2^-11), about 4.4·10¹²), rounding to the nearest code is
//     off by at most 2^-11 (0.049 %) of the value; below 2^-21 codes are
//     2^-31 apart (≤ 0.5 % from 4.7·10⁻⁸ up).
//   - Values past the largest code saturate to it (4.4·10¹² bytes per
//     second, 35 Tbit/s); they never wrap.
//
// Integers of up to 11 significant bits (every integer up to 2,048) are
// exact. Decoding is a shift and a multiplication by a power of two
// (exact): no table, no Exp2, no branch.
type rate16 uint16

const (
	// rateScale is the power of two that turns a code in a float64's top
	// bits into its value: the largest code is 2^(63-1023+rateScale)·(2-2^-10).
	rateScale = 1001
	// rateMantBits is the number of mantissa bits.
	rateMantBits = 10
	// rateShift moves a float64's mantissa to the code's.
	rateShift = 52 - rateMantBits
	// rateMaxCode is the largest code.
	rateMaxCode = math.MaxUint16
	// rateMax is the value of the largest code.
	rateMax float64 = 1<<(64-1023+rateScale) - 1<<(63-1023+rateScale-rateMantBits)
	// rateMinNormal is the value of code 1<<rateMantBits, the smallest
	// code of exponent 1: 2^(1-1023+rateScale).
	rateMinNormal = 1.0 / (1 << (1023 - 1 - rateScale))
	// rateSubScale turns a value below rateMinNormal into its code.
	rateSubScale = (1 << rateMantBits) / rateMinNormal
	// rateScaleF is 2^rateScale.
	rateScaleF = 0x1p1001
	// rateExpBias is rateScale in a float64's exponent field.
	rateExpBias = uint64(rateScale) << 52
)

// float returns the value of code c.
func (c rate16) float() float64 {
	// Exact: the product of a float64 with 11 significant bits at most
	// and a power of two, in range. (Sorting by rate decodes two codes per
	// flow: no branch here.)
	return math.Float64frombits(uint64(c)<<rateShift) * rateScaleF
}

// floorRate returns the largest code whose value is at most v (0 for v
// ≤ 0 or NaN, the largest code for v beyond it) and v's distance above
// it in units of 2^-rateShift of the gap to the next code.
func floorRate(v float64) (c rate16, frac uint64) {
	switch {
	case !(v > 0):
		return 0, 0
	case v < rateMinNormal:
		x := v * rateSubScale
		c = rate16(x)
		return c, uint64((x - float64(c)) * (1 << rateShift))
	case v >= rateMax:
		return rateMaxCode, 0
	}
	// Codes are evenly spaced within a binade, and so are float64s: the
	// code is the top of v's bits (its exponent less rateScale), the
	// fraction the rest.
	b := math.Float64bits(v) - rateExpBias
	return rate16(b >> rateShift), b & (1<<rateShift - 1)
}

// encodeRate returns the code nearest to v (ties away from zero; 0 for v
// ≤ 0 or NaN; the largest code for v beyond it).
func encodeRate(v float64) rate16 {
	c, frac := floorRate(v)
	// Up when frac is at least half (its top bit), without a branch: the
	// direction is random. Never past the largest code: frac is 0 there.
	return c + rate16(frac>>(rateShift-1))
}

// smoothRate moves rate c a fraction alpha (0 < alpha ≤ 1) of the way
// towards inst, an exponentially weighted moving average kept in 16 bits;
// seed feeds the rounding (rateDither).
//
// Rounding the average to the nearest code after every sample would get
// stuck: with a small alpha a step shorter than half a code's width
// rounds back to where it started, however far inst is. So the new value
// old+(inst-old)·alpha, computed in float64, is rounded stochastically to
// one of the two codes around it, up with a probability equal to its
// distance from the lower one in units of their gap: the rounded average
// is unbiased, and one that keeps receiving the same inst reaches the
// code nearest to it. Once there it stays (a steady rate does not flicker
// between two codes).
func smoothRate(c rate16, inst, alpha float64, seed uint64) rate16 {
	if alpha >= 1 {
		return encodeRate(inst)
	}
	old := c.float()
	if inst == old || encodeRate(inst) == c {
		return c
	}
	lo, frac := floorRate(old + (inst-old)*alpha)
	// Up when the dither is below frac (both below 2^rateShift, so the
	// difference wraps to its top bit), without a branch: the direction
	// is random. Never past the largest code: frac is 0 there.
	return lo + rate16((rateDither(seed)-frac)>>63)
}

// rateDither returns a pseudo-random number in [0, 2^rateShift) from seed
// (the SplitMix64 finaliser), for smoothRate's rounding: deterministic for
// the same events, independent between flows and samples.
func rateDither(seed uint64) uint64 {
	z := seed + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	return z >> (64 - rateShift)
}
