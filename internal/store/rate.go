package store

import "math"

// rate16 is a non-negative rate (per second) in 16 bits: an unsigned
// floating-point number with 6 bits of exponent and 10 of mantissa whose
// smallest normal value is 2^rateMinExp, with gradual underflow below it.
//
//   - 0 is code 0, exactly; codes are in the order of their values, so
//     comparing codes compares rates.
//   - From 2^-20 (about 9.5·10⁻⁷) to the largest code (2^43·(1-2^-11),
//     about 8.8·10¹²), rounding to the nearest code is off by at most
//     2^-11 (0.049 %) of the value; below 2^-20 codes are evenly spaced
//     2^-30 apart (≤ 0.5 % from 10⁻⁷ up).
//   - Values past the largest code saturate to it (8.8·10¹² bytes per
//     second, 70 Tbit/s); they never wrap.
//
// Integers of up to 11 significant bits (every integer up to 2,048) are
// exact. Decoding is a few integer operations (no table, no Exp2).
type rate16 uint16

const (
	// rateMinExp is the exponent of the smallest normal code (1<<10).
	rateMinExp = -20
	// rateMantBits is the number of mantissa bits.
	rateMantBits = 10
	// rateShift moves a float64's mantissa to the code's.
	rateShift = 52 - rateMantBits
	// rateBias is the float64 bit pattern that code 0 of the normal
	// range (exponent field 0) stands for: 2^(rateMinExp-1), in float64's
	// exponent field.
	rateBias = uint64(rateMinExp-1+1023) << 52
	// rateMaxCode is the largest code.
	rateMaxCode = math.MaxUint16
	// rateSubScale turns a value below 2^rateMinExp into its code
	// (2^(rateMantBits-rateMinExp)).
	rateSubScale = 1 << (rateMantBits - rateMinExp)
	// rateMinNormal is the value of the smallest normal code.
	rateMinNormal = 1.0 / (1 << -rateMinExp)
)

// rateMax is the value of the largest code.
var rateMax = rate16(rateMaxCode).float()

// float returns the value of code c.
func (c rate16) float() float64 {
	// Both forms, then a select the compiler makes a conditional move:
	// sorting by rate decodes two codes per flow, zero and not mixed, and
	// a branch there would be mispredicted half the time.
	b := uint64(c)<<rateShift + rateBias
	sub := math.Float64bits(float64(c) / rateSubScale)
	if c < 1<<rateMantBits {
		b = sub
	}
	return math.Float64frombits(b)
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
	// code is the top of v's bits, the fraction the rest.
	b := math.Float64bits(v) - rateBias
	return rate16(b >> rateShift), b & (1<<rateShift - 1)
}

// encodeRate returns the code nearest to v (ties away from zero; 0 for v
// ≤ 0 or NaN; the largest code for v beyond it).
func encodeRate(v float64) rate16 {
	c, frac := floorRate(v)
	if frac >= 1<<(rateShift-1) {
		c++ // never past the largest code: frac is 0 there
	}
	return c
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
	target := encodeRate(inst)
	if target == c {
		return c
	}
	if alpha >= 1 {
		return target
	}
	old := c.float()
	lo, frac := floorRate(old + (inst-old)*alpha)
	if frac != 0 && rateDither(seed) < frac {
		lo++
	}
	return lo
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
