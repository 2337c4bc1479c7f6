//! Word-sized modular arithmetic for primes below 2^62.
//!
//! Barrett reduction of 128-bit values (SEAL's `barrett_reduce_128`) and Shoup
//! multiplication by a fixed operand (Shoup 2001, as in every NTT library). Products of two
//! residues fit in 124 bits, so up to 16 of them can be summed in a `u128` before one
//! reduction: the key-switching inner products and base conversions rely on this.

/// A prime modulus q < 2^62 with its Barrett constant floor(2^128 / q).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Modulus {
    value: u64,
    ratio_hi: u64,
    ratio_lo: u64,
}

/// Largest number of products of two residues that may be summed in a `u128` before reducing.
/// Each product is below 2^124 for q < 2^62.
pub const LAZY_PRODUCTS: usize = 16;

impl Modulus {
    /// Builds the Barrett constants. `value` must be odd, > 2 and < 2^62 (checked by callers
    /// that take parameters from users; here it is a programming error).
    pub fn new(value: u64) -> Self {
        debug_assert!(value > 2 && value < (1 << 62));
        let ratio = u128::MAX / value as u128; // floor((2^128 - 1)/q) == floor(2^128/q) for q not a power of 2
        Self {
            value,
            ratio_hi: (ratio >> 64) as u64,
            ratio_lo: ratio as u64,
        }
    }

    /// The modulus itself.
    #[inline(always)]
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Number of bits of q.
    pub fn bits(&self) -> u32 {
        64 - self.value.leading_zeros()
    }

    /// Reduces any 128-bit value mod q.
    #[inline(always)]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let x0 = x as u64;
        let x1 = (x >> 64) as u64;
        // Estimate floor(x * ratio / 2^128) keeping only the needed words.
        let carry = ((x0 as u128 * self.ratio_lo as u128) >> 64) as u64;
        let t = x0 as u128 * self.ratio_hi as u128 + carry as u128;
        let t2 = x1 as u128 * self.ratio_lo as u128 + (t as u64) as u128;
        let quotient = x1
            .wrapping_mul(self.ratio_hi)
            .wrapping_add((t >> 64) as u64)
            .wrapping_add((t2 >> 64) as u64);
        let mut r = x0.wrapping_sub(quotient.wrapping_mul(self.value));
        // The estimate is short by at most 2.
        if r >= self.value {
            r -= self.value;
        }
        if r >= self.value {
            r -= self.value;
        }
        r
    }

    /// Reduces a 64-bit value mod q.
    #[inline(always)]
    pub fn reduce(&self, x: u64) -> u64 {
        if x < self.value {
            x
        } else {
            self.reduce_u128(x as u128)
        }
    }

    /// Reduces a signed value mod q.
    #[inline(always)]
    pub fn reduce_i64(&self, x: i64) -> u64 {
        if x >= 0 {
            self.reduce(x as u64)
        } else {
            self.neg(self.reduce(x.unsigned_abs()))
        }
    }

    /// Reduces a signed 128-bit value mod q.
    pub fn reduce_i128(&self, x: i128) -> u64 {
        if x >= 0 {
            self.reduce_u128(x as u128)
        } else {
            self.neg(self.reduce_u128(x.unsigned_abs()))
        }
    }

    /// a + b mod q for reduced inputs.
    #[inline(always)]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        if s >= self.value { s - self.value } else { s }
    }

    /// a - b mod q for reduced inputs.
    #[inline(always)]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        if a >= b { a - b } else { a + self.value - b }
    }

    /// -a mod q for a reduced input.
    #[inline(always)]
    pub fn neg(&self, a: u64) -> u64 {
        if a == 0 { 0 } else { self.value - a }
    }

    /// a * b mod q for reduced inputs.
    #[inline(always)]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// Precomputes floor(w * 2^64 / q) for Shoup multiplication by the fixed operand w < q.
    #[inline(always)]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.value as u128) as u64
    }

    /// a * w mod q with w's Shoup constant; a may be any u64.
    #[inline(always)]
    pub fn mul_shoup(&self, a: u64, w: u64, w_shoup: u64) -> u64 {
        let q = ((a as u128 * w_shoup as u128) >> 64) as u64;
        let r = a.wrapping_mul(w).wrapping_sub(q.wrapping_mul(self.value));
        if r >= self.value { r - self.value } else { r }
    }

    /// a^e mod q.
    pub fn pow(&self, mut a: u64, mut e: u64) -> u64 {
        let mut r = 1u64;
        a = self.reduce(a);
        while e > 0 {
            if e & 1 == 1 {
                r = self.mul(r, a);
            }
            a = self.mul(a, a);
            e >>= 1;
        }
        r
    }

    /// a^-1 mod q (q prime), or None for a = 0 mod q.
    pub fn inv(&self, a: u64) -> Option<u64> {
        let a = self.reduce(a);
        if a == 0 {
            None
        } else {
            Some(self.pow(a, self.value - 2))
        }
    }

    /// Centered representative of a reduced value: in (-q/2, q/2].
    #[inline(always)]
    pub fn center(&self, a: u64) -> i64 {
        if a > self.value >> 1 {
            a as i64 - self.value as i64
        } else {
            a as i64
        }
    }

    /// Reduces a real number (rounded to the nearest integer) mod q, exactly for every
    /// finite f64 however large: x = m * 2^e with an integer mantissa m.
    pub fn reduce_f64(&self, x: f64) -> u64 {
        let r = x.round();
        if r.abs() < 9.2e18 {
            return self.reduce_i64(r as i64);
        }
        let bits = r.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i64 - 1075;
        let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
        // exponent > 0 here because |r| >= 2^63 > 2^53.
        let m = self.mul(self.reduce(mantissa), self.pow(2, exponent as u64));
        if r < 0.0 { self.neg(m) } else { m }
    }
}

/// Deterministic Miller-Rabin for 64-bit integers (bases valid for all n < 2^64).
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n % p == 0 {
            return n == p;
        }
    }
    let mut d = n - 1;
    let mut s = 0;
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let powmod = |mut a: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, a);
            }
            a = mulmod(a, a);
            e >>= 1;
        }
        r
    };
    'witness: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// Generates NTT-friendly primes (q = 1 mod 2n) of exactly `bits` bits, largest first,
/// skipping any in `exclude`. Deterministic: the same request always gives the same primes.
pub fn generate_primes(bits: u32, two_n: u64, count: usize, exclude: &[u64]) -> Option<Vec<u64>> {
    if !(20..=61).contains(&bits) {
        return None;
    }
    let top = 1u64 << bits;
    let low = 1u64 << (bits - 1);
    // Largest candidate below 2^bits with candidate = 1 mod 2n.
    let mut candidate = top - two_n + 1;
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        if candidate < low {
            return None;
        }
        if is_prime(candidate) && !exclude.contains(&candidate) {
            out.push(candidate);
        }
        candidate = candidate.checked_sub(two_n)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A 61-bit Mersenne prime, a 50-bit NTT prime and a small Fermat prime.
    const PRIMES: [u64; 3] = [(1 << 61) - 1, 1_125_899_906_842_597, 65537];

    proptest! {
        #[test]
        fn reduce_u128_matches_reference(x in any::<u128>(), i in 0usize..3) {
            let m = Modulus::new(PRIMES[i]);
            prop_assert_eq!(m.reduce_u128(x) as u128, x % PRIMES[i] as u128);
        }

        #[test]
        fn mul_add_sub_match_reference(a in any::<u64>(), b in any::<u64>(), i in 0usize..3) {
            let q = PRIMES[i];
            let m = Modulus::new(q);
            let (a, b) = (a % q, b % q);
            prop_assert_eq!(m.mul(a, b) as u128, a as u128 * b as u128 % q as u128);
            prop_assert_eq!(m.add(a, b) as u128, (a as u128 + b as u128) % q as u128);
            prop_assert_eq!(m.sub(a, b) as u128, (a as u128 + q as u128 - b as u128) % q as u128);
            let ws = m.shoup(b);
            prop_assert_eq!(m.mul_shoup(a, b, ws), m.mul(a, b));
        }

        #[test]
        fn lazy_sums_fit(xs in proptest::collection::vec(any::<u64>(), LAZY_PRODUCTS), i in 0usize..3) {
            let q = PRIMES[i];
            let m = Modulus::new(q);
            let mut acc = 0u128;
            let mut reference = 0u128;
            for &x in &xs {
                let r = x % q;
                acc += r as u128 * (q - 1) as u128;
                reference = (reference + r as u128 * (q - 1) as u128 % q as u128) % q as u128;
            }
            prop_assert_eq!(m.reduce_u128(acc) as u128, reference);
        }

        #[test]
        fn reduce_f64_exact(m in -(1i64 << 52)..(1i64 << 52), e in 0u32..70, i in 0usize..3) {
            let q = PRIMES[i];
            let md = Modulus::new(q);
            let x = m as f64 * 2f64.powi(e as i32);
            let expected = (m as i128).rem_euclid(q as i128) as u128 * md.pow(2, e as u64) as u128 % q as u128;
            prop_assert_eq!(md.reduce_f64(x) as u128, expected);
        }
    }

    #[test]
    fn inverse_and_primes() {
        let m = Modulus::new(PRIMES[1]);
        let a = 123_456_789;
        assert_eq!(m.mul(a, m.inv(a).unwrap_or(0)), 1);
        assert!(m.inv(0).is_none());
        let ps = generate_primes(50, 1 << 17, 5, &[]).unwrap_or_default();
        assert_eq!(ps.len(), 5);
        for p in ps {
            assert!(is_prime(p));
            assert_eq!(p % (1 << 17), 1);
            assert_eq!(64 - p.leading_zeros(), 50);
        }
        assert!(is_prime(65537) && !is_prime(65535) && is_prime(PRIMES[0]) && is_prime(PRIMES[1]));
    }
}
