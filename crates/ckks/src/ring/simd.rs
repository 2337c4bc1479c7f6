//! Vectorised modular kernels for the hot loops of key switching, base conversion and
//! rescaling.
//!
//! x86-64 processors with AVX-512 IFMA (Ice Lake and later) run 8-lane kernels through
//! `pulp`'s safe intrinsics, chosen once at run time; every other machine runs the scalar
//! kernels, which are also the reference the tests compare the vector ones against.
//!
//! Sums of products of residues below 2^61 are accumulated exactly in three columns of
//! 52-bit digits with the IFMA instructions (`vpmadd52luq`/`vpmadd52huq` add the low/high
//! 52 bits of a 52x52-bit product): with x = x0 + 2^52 x1 and y = y0 + 2^52 y1,
//! x y = lo(x0 y0) + 2^52 [hi(x0 y0) + lo(x0 y1) + lo(x1 y0)] + 2^104 [hi(x0 y1) + hi(x1 y0) + x1 y1].
//! Residues of primes below 2^52 have x1 = 0, which drops most of the products (the
//! 50-bit ciphertext primes of the presets). Each column holds thousands of terms before
//! it could overflow; the columns are folded modulo q with Shoup multiplications by
//! 1, 2^52 and 2^104 mod q (Shoup 2001), whose 64x64-bit high products are built from four
//! 32-bit ones (AVX-512 has no 64-bit high multiply).

use super::modulus::Modulus;

/// Whether residues modulo `q` can exceed 52 bits (then the upper digit is needed).
#[inline]
fn is_wide(q: &Modulus) -> bool {
    q.value() >= 1 << 52
}

/// Whether the all-IFMA fold applies: 52-bit Shoup remainders in [0, 2q) fit 52 bits.
#[inline]
fn folds_in_52_bits(q: &Modulus) -> bool {
    q.value() < 1 << 51
}

/// floor(w 2^52 / q) for primes below 2^51 (0 otherwise: the constant is then unused).
fn shoup52(w: u64, m: &Modulus) -> u64 {
    if folds_in_52_bits(m) {
        (((w as u128) << 52) / m.value() as u128) as u64
    } else {
        0
    }
}

/// Constants to fold three 52-bit columns modulo q (see the module comment).
#[derive(Clone, Copy, Debug)]
struct Fold {
    q: u64,
    /// floor(2^64 / q): Shoup constant of 1.
    one_s: u64,
    r52: u64,
    r52_s: u64,
    r104: u64,
    r104_s: u64,
    /// 52-bit Shoup constants floor(w 2^52 / q) of 1, 2^52 and 2^104 mod q, for the
    /// all-IFMA fold of primes below 2^51 (zero, unused, for larger primes).
    one_s52: u64,
    r52_s52: u64,
    r104_s52: u64,
}

impl Fold {
    fn new(m: &Modulus) -> Self {
        let r52 = m.reduce_u128(1u128 << 52);
        let r104 = m.reduce_u128(1u128 << 104);
        Self {
            q: m.value(),
            one_s: m.shoup(1),
            r52,
            r52_s: m.shoup(r52),
            r104,
            r104_s: m.shoup(r104),
            one_s52: shoup52(1, m),
            r52_s52: shoup52(r52, m),
            r104_s52: shoup52(r104, m),
        }
    }
}

/// Runs `f` with AVX-512 enabled where the processor has it, so that the compiler can
/// vectorise plain loops in it (`f` must be `#[inline(always)]` to be compiled that way).
pub fn auto_vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = x86::Ifma::try_new() {
        return simd.vectorize(f);
    }
    f()
}

/// `x[i] = x[i] * w mod q` for any 64-bit `x[i]`; `w < q`.
pub fn mul_scalar(x: &mut [u64], w: u64, m: &Modulus) {
    let ws = m.shoup(w);
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = x86::Ifma::try_new() {
        return x86::mul_scalar(simd, x, w, ws, m.value());
    }
    scalar::mul_scalar(x, w, ws, m);
}

/// `out[i] = (out[i] - sub[i]) * w mod q` for reduced `out[i]`, `sub[i]`; `w < q`.
pub fn sub_mul_scalar(out: &mut [u64], sub: &[u64], w: u64, m: &Modulus) {
    sub_mul_add_scalar(out, sub, w, None, m);
}

/// `out[i] = (out[i] - sub[i]) * w + add[i] mod q` (no addend when `add` is `None`) for
/// reduced inputs; `w < q`. The last step of a division by P (ModDown, rescale).
pub fn sub_mul_add_scalar(out: &mut [u64], sub: &[u64], w: u64, add: Option<&[u64]>, m: &Modulus) {
    debug_assert_eq!(out.len(), sub.len());
    debug_assert!(add.is_none_or(|a| a.len() >= out.len()));
    let ws = m.shoup(w);
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = x86::Ifma::try_new() {
        return x86::sub_mul_add_scalar(simd, out, sub, w, ws, add, m.value());
    }
    scalar::sub_mul_add_scalar(out, sub, w, ws, add, m);
}

/// `out[i] = out[i] + x[i] * w mod q` for reduced `out[i]`, `x[i]`; `w < q`.
pub fn mul_add_scalar(out: &mut [u64], x: &[u64], w: u64, m: &Modulus) {
    debug_assert_eq!(out.len(), x.len());
    let ws = m.shoup(w);
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = x86::Ifma::try_new() {
        return x86::mul_add_scalar(simd, out, x, w, ws, m);
    }
    scalar::mul_add_scalar(out, x, w, ws, m);
}

/// `out[c] = sum_i ys[i][c] * ws[i] mod q`: one output prime of a base conversion.
/// `ys[i][c] < 2^61` (residues modulo the source primes), and below 2^52 unless `ys_wide`;
/// `ws[i] < q`.
pub fn dot_scalars(out: &mut [u64], ys: &[&[u64]], ws: &[u64], ys_wide: bool, m: &Modulus) {
    debug_assert_eq!(ys.len(), ws.len());
    debug_assert!(ys.iter().all(|y| y.len() >= out.len()));
    if ys.len() > DOT_MAX_TERMS {
        let (head, tail) = (..DOT_MAX_TERMS, DOT_MAX_TERMS..);
        dot_scalars(out, &ys[head], &ws[head], ys_wide, m);
        let mut t = vec![0u64; out.len()];
        dot_scalars(&mut t, &ys[tail.clone()], &ws[tail], ys_wide, m);
        for (o, t) in out.iter_mut().zip(&t) {
            *o = m.add(*o, *t);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = x86::Ifma::try_new() {
        return x86::dot_scalars(simd, out, ys, ws, ys_wide, m);
    }
    let _ = ys_wide;
    scalar::dot_scalars(out, ys, ws, m);
}

/// The key-switching inner product on one tower: `out_b[c] = sum_j ds[j][c] * bs[j][c]` and
/// `out_a[c] = sum_j ds[j][c] * as_[j][c]`, modulo q. Every input is reduced modulo q.
pub fn dot_pairs(
    out_b: &mut [u64],
    out_a: &mut [u64],
    ds: &[&[u64]],
    bs: &[&[u64]],
    as_: &[&[u64]],
    m: &Modulus,
) {
    debug_assert!(ds.len() == bs.len() && ds.len() == as_.len());
    if ds.len() > DOT_MAX_TERMS {
        // Longer sums in pieces, so that no column of the vector kernel can overflow.
        let (head, tail) = (..DOT_MAX_TERMS, DOT_MAX_TERMS..);
        dot_pairs(out_b, out_a, &ds[head], &bs[head], &as_[head], m);
        let (mut tb, mut ta) = (vec![0u64; out_b.len()], vec![0u64; out_a.len()]);
        dot_pairs(
            &mut tb,
            &mut ta,
            &ds[tail.clone()],
            &bs[tail.clone()],
            &as_[tail],
            m,
        );
        for (o, t) in out_b.iter_mut().zip(&tb).chain(out_a.iter_mut().zip(&ta)) {
            *o = m.add(*o, *t);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = x86::Ifma::try_new() {
        return x86::dot_pairs(simd, out_b, out_a, ds, bs, as_, m);
    }
    scalar::dot_pairs(out_b, out_a, ds, bs, as_, m);
}

/// Terms one call of the vector dot-product kernels sums at most: each 52-bit column then
/// stays below 3 * 256 * 2^52 < 2^62 (longer sums are split by the callers above).
const DOT_MAX_TERMS: usize = 256;

/// The portable kernels (and the reference for the vector ones).
pub(crate) mod scalar {
    use super::Modulus;
    use crate::ring::modulus::LAZY_PRODUCTS;

    pub fn mul_scalar(x: &mut [u64], w: u64, ws: u64, m: &Modulus) {
        for v in x.iter_mut() {
            *v = m.mul_shoup(*v, w, ws);
        }
    }

    pub fn sub_mul_add_scalar(
        out: &mut [u64],
        sub: &[u64],
        w: u64,
        ws: u64,
        add: Option<&[u64]>,
        m: &Modulus,
    ) {
        for (i, (o, &s)) in out.iter_mut().zip(sub).enumerate() {
            let r = m.mul_shoup(m.sub(*o, s), w, ws);
            *o = match add {
                Some(a) => m.add(r, a[i]),
                None => r,
            };
        }
    }

    pub fn mul_add_scalar(out: &mut [u64], x: &[u64], w: u64, ws: u64, m: &Modulus) {
        for (o, &x) in out.iter_mut().zip(x) {
            *o = m.add(*o, m.mul_shoup(x, w, ws));
        }
    }

    pub fn dot_scalars(out: &mut [u64], ys: &[&[u64]], ws: &[u64], m: &Modulus) {
        for (c, o) in out.iter_mut().enumerate() {
            let mut r = 0u64;
            for (yc, wc) in ys.chunks(LAZY_PRODUCTS).zip(ws.chunks(LAZY_PRODUCTS)) {
                let mut acc = 0u128;
                for (y, &w) in yc.iter().zip(wc) {
                    acc += y[c] as u128 * w as u128;
                }
                r = m.add(r, m.reduce_u128(acc));
            }
            *o = r;
        }
    }

    pub fn dot_pairs(
        out_b: &mut [u64],
        out_a: &mut [u64],
        ds: &[&[u64]],
        bs: &[&[u64]],
        as_: &[&[u64]],
        m: &Modulus,
    ) {
        for (c, (ob, oa)) in out_b.iter_mut().zip(out_a.iter_mut()).enumerate() {
            let (mut rb, mut ra) = (0u64, 0u64);
            for start in (0..ds.len()).step_by(LAZY_PRODUCTS) {
                let end = (start + LAZY_PRODUCTS).min(ds.len());
                let (mut accb, mut acca) = (0u128, 0u128);
                for j in start..end {
                    let x = ds[j][c] as u128;
                    accb += x * bs[j][c] as u128;
                    acca += x * as_[j][c] as u128;
                }
                rb = m.add(rb, m.reduce_u128(accb));
                ra = m.add(ra, m.reduce_u128(acca));
            }
            *ob = rb;
            *oa = ra;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // only inside pulp's macro: the token's unchecked constructor
mod token {
    pulp::simd_type! {
        /// AVX-512 with the 52-bit integer multiply-add (IFMA) extension.
        pub struct Ifma {
            pub sse: "sse",
            pub sse2: "sse2",
            pub fxsr: "fxsr",
            pub sse3: "sse3",
            pub ssse3: "ssse3",
            pub sse4_1: "sse4.1",
            pub sse4_2: "sse4.2",
            pub popcnt: "popcnt",
            pub avx: "avx",
            pub avx2: "avx2",
            pub bmi1: "bmi1",
            pub bmi2: "bmi2",
            pub fma: "fma",
            pub lzcnt: "lzcnt",
            pub avx512f: "avx512f",
            pub avx512bw: "avx512bw",
            pub avx512cd: "avx512cd",
            pub avx512dq: "avx512dq",
            pub avx512vl: "avx512vl",
            pub avx512ifma: "avx512ifma",
        }
    }
}

/// The AVX-512 IFMA kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    pub use super::token::Ifma;
    use super::{Fold, Modulus, folds_in_52_bits, is_wide, scalar};
    use core::arch::x86_64::__m512i;
    use pulp::cast;

    type V = __m512i;

    impl Ifma {
        #[inline(always)]
        fn splat(self, x: u64) -> V {
            self.avx512f._mm512_set1_epi64(x as i64)
        }
        #[inline(always)]
        fn add(self, a: V, b: V) -> V {
            self.avx512f._mm512_add_epi64(a, b)
        }
        #[inline(always)]
        fn sub(self, a: V, b: V) -> V {
            self.avx512f._mm512_sub_epi64(a, b)
        }
        #[inline(always)]
        fn min(self, a: V, b: V) -> V {
            self.avx512f._mm512_min_epu64(a, b)
        }
        #[inline(always)]
        fn mullo(self, a: V, b: V) -> V {
            self.avx512dq._mm512_mullo_epi64(a, b)
        }
        #[inline(always)]
        fn shr52(self, a: V) -> V {
            self.avx512f._mm512_srli_epi64::<52>(a)
        }
        #[inline(always)]
        fn lo52(self, acc: V, a: V, b: V) -> V {
            self.avx512ifma._mm512_madd52lo_epu64(acc, a, b)
        }
        #[inline(always)]
        fn hi52(self, acc: V, a: V, b: V) -> V {
            self.avx512ifma._mm512_madd52hi_epu64(acc, a, b)
        }
        /// High 64 bits of the 128-bit products, from four 32x32-bit products.
        #[inline(always)]
        fn mulhi(self, a: V, b: V) -> V {
            let f = self.avx512f;
            let mask32 = self.splat(0xffff_ffff);
            let a_hi = f._mm512_srli_epi64::<32>(a);
            let b_hi = f._mm512_srli_epi64::<32>(b);
            let ll = f._mm512_mul_epu32(a, b);
            let lh = f._mm512_mul_epu32(a, b_hi);
            let hl = f._mm512_mul_epu32(a_hi, b);
            let hh = f._mm512_mul_epu32(a_hi, b_hi);
            let t = self.add(lh, f._mm512_srli_epi64::<32>(ll));
            let u = self.add(hl, f._mm512_and_si512(t, mask32));
            self.add(
                self.add(hh, f._mm512_srli_epi64::<32>(t)),
                f._mm512_srli_epi64::<32>(u),
            )
        }
        /// x * w mod q in [0, 2q) for any 64-bit x (Shoup), w < q, ws = floor(w 2^64 / q).
        #[inline(always)]
        fn shoup_lazy(self, x: V, w: V, ws: V, q: V) -> V {
            self.sub(self.mullo(x, w), self.mullo(self.mulhi(x, ws), q))
        }
        /// x - k if x >= k, for x < 2k.
        #[inline(always)]
        fn reduce_below(self, x: V, k: V) -> V {
            self.min(x, self.sub(x, k))
        }
        /// c0 + 2^52 c1 + 2^104 c2 mod q, in [0, q).
        #[inline(always)]
        fn fold(self, c: &FoldV, c0: V, c1: V, c2: Option<V>) -> V {
            // Shoup by 1: c0 - floor(c0 / q) q, the quotient estimated at most one short.
            let mut s = self.sub(c0, self.mullo(self.mulhi(c0, c.one_s), c.q));
            s = self.add(s, self.shoup_lazy(c1, c.r52, c.r52_s, c.q));
            if let Some(c2) = c2 {
                s = self.add(s, self.shoup_lazy(c2, c.r104, c.r104_s, c.q));
            }
            // s < 6q < 2^64 for q < 2^61.
            s = self.reduce_below(s, c.q4);
            s = self.reduce_below(s, c.q2);
            self.reduce_below(s, c.q)
        }
        /// x * w mod q in [0, 2q) for x < 2^52, w < q < 2^51, ws = floor(w 2^52 / q): Shoup's
        /// multiplication in 52-bit digits, three IFMA instructions. The true remainder is
        /// below 2q < 2^52, so the difference of the two low halves modulo 2^52 is exact.
        #[inline(always)]
        fn shoup52_lazy(self, x: V, w: V, ws: V, q: V, mask: V) -> V {
            let zero = self.splat(0);
            let quot = self.hi52(zero, x, ws);
            let f = self.avx512f;
            f._mm512_and_si512(
                self.sub(self.lo52(zero, x, w), self.lo52(zero, quot, q)),
                mask,
            )
        }
        /// [`Self::fold`] for primes below 2^51 with IFMA only (no 64-bit multiplies, which
        /// AVX-512 lacks or splits into several instructions): carry the columns into 52-bit
        /// digits, then three 52-bit Shoup multiplications by 1, 2^52 and 2^104 mod q.
        /// Needs c2 + (carries) < 2^52, true for any column sums of the kernels below.
        #[inline(always)]
        fn fold_narrow(self, c: &FoldV, c0: V, c1: V, c2: Option<V>) -> V {
            let f = self.avx512f;
            let mask = c.mask52;
            let c1 = self.add(c1, self.shr52(c0));
            let c0 = f._mm512_and_si512(c0, mask);
            let c2 = self.add(c2.unwrap_or(self.splat(0)), self.shr52(c1));
            let c1 = f._mm512_and_si512(c1, mask);
            // c0 * 1: the low product is c0 itself.
            let zero = self.splat(0);
            let r0 = f._mm512_and_si512(
                self.sub(c0, self.lo52(zero, self.hi52(zero, c0, c.one_s52), c.q)),
                mask,
            );
            let r1 = self.shoup52_lazy(c1, c.r52, c.r52_s52, c.q, mask);
            let r2 = self.shoup52_lazy(c2, c.r104, c.r104_s52, c.q, mask);
            // Each remainder is below 2q: the sum is below 6q < 2^64.
            let mut s = self.add(self.add(r0, r1), r2);
            s = self.reduce_below(s, c.q4);
            s = self.reduce_below(s, c.q2);
            self.reduce_below(s, c.q)
        }
        #[inline(always)]
        fn fold_consts(self, f: &Fold) -> FoldV {
            FoldV {
                mask52: self.splat((1 << 52) - 1),
                one_s52: self.splat(f.one_s52),
                r52_s52: self.splat(f.r52_s52),
                r104_s52: self.splat(f.r104_s52),
                q: self.splat(f.q),
                q2: self.splat(2 * f.q),
                q4: self.splat(4 * f.q),
                one_s: self.splat(f.one_s),
                r52: self.splat(f.r52),
                r52_s: self.splat(f.r52_s),
                r104: self.splat(f.r104),
                r104_s: self.splat(f.r104_s),
            }
        }
    }

    struct FoldV {
        mask52: V,
        one_s52: V,
        r52_s52: V,
        r104_s52: V,
        q: V,
        q2: V,
        q4: V,
        one_s: V,
        r52: V,
        r52_s: V,
        r104: V,
        r104_s: V,
    }

    pub fn mul_scalar(simd: Ifma, x: &mut [u64], w: u64, ws: u64, q: u64) {
        simd.vectorize(
            #[inline(always)]
            || {
                let (body, tail) = pulp::as_arrays_mut::<8, u64>(x);
                let (wv, wsv, qv) = (simd.splat(w), simd.splat(ws), simd.splat(q));
                for chunk in body {
                    let v: V = cast(*chunk);
                    *chunk = cast(simd.reduce_below(simd.shoup_lazy(v, wv, wsv, qv), qv));
                }
                scalar::mul_scalar(tail, w, ws, &Modulus::new(q));
            },
        )
    }

    pub fn sub_mul_add_scalar(
        simd: Ifma,
        out: &mut [u64],
        sub: &[u64],
        w: u64,
        ws: u64,
        add: Option<&[u64]>,
        q: u64,
    ) {
        let m = Modulus::new(q);
        if folds_in_52_bits(&m) {
            sub_mul_add_impl::<true>(simd, out, sub, w, ws, add, &m)
        } else {
            sub_mul_add_impl::<false>(simd, out, sub, w, ws, add, &m)
        }
    }

    /// NARROW (q < 2^51): the difference o + q - s < 2q < 2^52 is multiplied with 52-bit
    /// Shoup (three IFMA instructions) instead of the 64-bit one.
    #[inline(always)]
    fn sub_mul_add_impl<const NARROW: bool>(
        simd: Ifma,
        out: &mut [u64],
        sub: &[u64],
        w: u64,
        ws: u64,
        add: Option<&[u64]>,
        m: &Modulus,
    ) {
        let q = m.value();
        let ws52 = super::shoup52(w, m);
        simd.vectorize(
            #[inline(always)]
            || {
                let (ws52v, mask) = (simd.splat(ws52), simd.splat((1 << 52) - 1));
                let n8 = out.len() / 8 * 8;
                let (body, _) = pulp::as_arrays_mut::<8, u64>(&mut out[..n8]);
                let (sbody, _) = pulp::as_arrays::<8, u64>(&sub[..n8]);
                let (wv, wsv, qv) = (simd.splat(w), simd.splat(ws), simd.splat(q));
                let q2 = simd.splat(2 * q);
                for (b, (chunk, s)) in body.iter_mut().zip(sbody).enumerate() {
                    // (o + q - s) < 2q is a valid Shoup input: no reduction before multiplying.
                    let d = simd.sub(simd.add(cast(*chunk), qv), cast(*s));
                    let r = if NARROW {
                        simd.shoup52_lazy(d, wv, ws52v, qv, mask)
                    } else {
                        simd.shoup_lazy(d, wv, wsv, qv)
                    };
                    *chunk = cast(match add {
                        // r + a < 3q.
                        Some(a) => {
                            let (av, _) = pulp::as_arrays::<8, u64>(&a[8 * b..8 * b + 8]);
                            let t = simd.reduce_below(simd.add(r, cast(av[0])), q2);
                            simd.reduce_below(t, qv)
                        }
                        None => simd.reduce_below(r, qv),
                    });
                }
                let add_tail = add.map(|a| &a[n8..out.len()]);
                scalar::sub_mul_add_scalar(&mut out[n8..], &sub[n8..], w, ws, add_tail, m);
            },
        )
    }

    pub fn mul_add_scalar(simd: Ifma, out: &mut [u64], x: &[u64], w: u64, ws: u64, m: &Modulus) {
        if folds_in_52_bits(m) {
            mul_add_impl::<true>(simd, out, x, w, ws, m)
        } else {
            mul_add_impl::<false>(simd, out, x, w, ws, m)
        }
    }

    #[inline(always)]
    fn mul_add_impl<const NARROW: bool>(
        simd: Ifma,
        out: &mut [u64],
        x: &[u64],
        w: u64,
        ws: u64,
        m: &Modulus,
    ) {
        let q = m.value();
        let ws52 = super::shoup52(w, m);
        simd.vectorize(
            #[inline(always)]
            || {
                let n8 = out.len() / 8 * 8;
                let (body, _) = pulp::as_arrays_mut::<8, u64>(&mut out[..n8]);
                let (xbody, _) = pulp::as_arrays::<8, u64>(&x[..n8]);
                let (wv, wsv, ws52v) = (simd.splat(w), simd.splat(ws), simd.splat(ws52));
                let (qv, q2, mask) = (simd.splat(q), simd.splat(2 * q), simd.splat((1 << 52) - 1));
                for (chunk, xv) in body.iter_mut().zip(xbody) {
                    let xv: V = cast(*xv);
                    let r = if NARROW {
                        simd.shoup52_lazy(xv, wv, ws52v, qv, mask)
                    } else {
                        simd.shoup_lazy(xv, wv, wsv, qv)
                    };
                    // o + r < 3q.
                    let t = simd.reduce_below(simd.add(cast(*chunk), r), q2);
                    *chunk = cast(simd.reduce_below(t, qv));
                }
                scalar::mul_add_scalar(&mut out[n8..], &x[n8..], w, ws, m);
            },
        )
    }

    pub fn dot_scalars(
        simd: Ifma,
        out: &mut [u64],
        ys: &[&[u64]],
        ws: &[u64],
        ys_wide: bool,
        m: &Modulus,
    ) {
        let ws_wide = is_wide(m);
        let nf = folds_in_52_bits(m);
        match (ys_wide, ws_wide, nf) {
            (false, false, true) => dot_scalars_impl::<false, false, true>(simd, out, ys, ws, m),
            (true, false, true) => dot_scalars_impl::<true, false, true>(simd, out, ys, ws, m),
            (false, false, false) => dot_scalars_impl::<false, false, false>(simd, out, ys, ws, m),
            (true, false, false) => dot_scalars_impl::<true, false, false>(simd, out, ys, ws, m),
            (false, true, _) => dot_scalars_impl::<false, true, false>(simd, out, ys, ws, m),
            (true, true, _) => dot_scalars_impl::<true, true, false>(simd, out, ys, ws, m),
        }
    }

    #[inline(always)]
    fn dot_scalars_impl<const YW: bool, const WW: bool, const NF: bool>(
        simd: Ifma,
        out: &mut [u64],
        ys: &[&[u64]],
        ws: &[u64],
        m: &Modulus,
    ) {
        let fold = Fold::new(m);
        simd.vectorize(
            #[inline(always)]
            || {
                let c = simd.fold_consts(&fold);
                let w0: Vec<V> = ws.iter().map(|&w| simd.splat(w)).collect();
                let w1: Vec<V> = ws.iter().map(|&w| simd.splat(w >> 52)).collect();
                let n8 = out.len() / 8 * 8;
                let (body, _) = pulp::as_arrays_mut::<8, u64>(&mut out[..n8]);
                for (b, chunk) in body.iter_mut().enumerate() {
                    let at = 8 * b;
                    let zero = simd.splat(0);
                    let (mut c0, mut c1, mut c2) = (zero, zero, zero);
                    for (i, y) in ys.iter().enumerate() {
                        let (arr, _) = pulp::as_arrays::<8, u64>(&y[at..at + 8]);
                        let yv: V = cast(arr[0]);
                        c0 = simd.lo52(c0, yv, w0[i]);
                        c1 = simd.hi52(c1, yv, w0[i]);
                        if WW {
                            c1 = simd.lo52(c1, yv, w1[i]);
                            c2 = simd.hi52(c2, yv, w1[i]);
                        }
                        if YW {
                            let y1 = simd.shr52(yv);
                            c1 = simd.lo52(c1, y1, w0[i]);
                            c2 = simd.hi52(c2, y1, w0[i]);
                            if WW {
                                c2 = simd.lo52(c2, y1, w1[i]);
                            }
                        }
                    }
                    let c2 = (YW || WW).then_some(c2);
                    *chunk = cast(if NF {
                        simd.fold_narrow(&c, c0, c1, c2)
                    } else {
                        simd.fold(&c, c0, c1, c2)
                    });
                }
                let tails: Vec<&[u64]> = ys.iter().map(|y| &y[n8..out.len()]).collect();
                scalar::dot_scalars(&mut out[n8..], &tails, ws, m);
            },
        )
    }

    pub fn dot_pairs(
        simd: Ifma,
        out_b: &mut [u64],
        out_a: &mut [u64],
        ds: &[&[u64]],
        bs: &[&[u64]],
        as_: &[&[u64]],
        m: &Modulus,
    ) {
        if is_wide(m) {
            dot_pairs_impl::<true, false>(simd, out_b, out_a, ds, bs, as_, m)
        } else if folds_in_52_bits(m) {
            dot_pairs_impl::<false, true>(simd, out_b, out_a, ds, bs, as_, m)
        } else {
            dot_pairs_impl::<false, false>(simd, out_b, out_a, ds, bs, as_, m)
        }
    }

    #[inline(always)]
    fn dot_pairs_impl<'a, const WIDE: bool, const NF: bool>(
        simd: Ifma,
        out_b: &mut [u64],
        out_a: &mut [u64],
        ds: &[&'a [u64]],
        bs: &[&'a [u64]],
        as_: &[&'a [u64]],
        m: &Modulus,
    ) {
        let fold = Fold::new(m);
        simd.vectorize(
            #[inline(always)]
            || {
                let c = simd.fold_consts(&fold);
                let n = out_b.len();
                let n8 = n / 8 * 8;
                let load = |s: &[u64], at: usize| -> V {
                    let (arr, _) = pulp::as_arrays::<8, u64>(&s[at..at + 8]);
                    cast(arr[0])
                };
                // One product's contribution to the three columns.
                let mac = |cols: &mut [V; 3], x: V, x1: V, y: V| {
                    cols[0] = simd.lo52(cols[0], x, y);
                    cols[1] = simd.hi52(cols[1], x, y);
                    if WIDE {
                        let y1 = simd.shr52(y);
                        cols[1] = simd.lo52(cols[1], x, y1);
                        cols[1] = simd.lo52(cols[1], x1, y);
                        cols[2] = simd.hi52(cols[2], x, y1);
                        cols[2] = simd.hi52(cols[2], x1, y);
                        cols[2] = simd.lo52(cols[2], x1, y1);
                    }
                };
                let mut at = 0;
                while at < n8 {
                    let zero = simd.splat(0);
                    let mut cb = [zero; 3];
                    let mut ca = [zero; 3];
                    for j in 0..ds.len() {
                        let x = load(ds[j], at);
                        let x1 = if WIDE { simd.shr52(x) } else { zero };
                        mac(&mut cb, x, x1, load(bs[j], at));
                        mac(&mut ca, x, x1, load(as_[j], at));
                    }
                    let wide = WIDE.then_some(());
                    let fold = |cols: [V; 3]| {
                        let c2 = wide.map(|_| cols[2]);
                        if NF {
                            simd.fold_narrow(&c, cols[0], cols[1], c2)
                        } else {
                            simd.fold(&c, cols[0], cols[1], c2)
                        }
                    };
                    let (rb, ra) = (fold(cb), fold(ca));
                    let (ob, _) = pulp::as_arrays_mut::<8, u64>(&mut out_b[at..at + 8]);
                    ob[0] = cast(rb);
                    let (oa, _) = pulp::as_arrays_mut::<8, u64>(&mut out_a[at..at + 8]);
                    oa[0] = cast(ra);
                    at += 8;
                }
                let tails =
                    |s: &[&'a [u64]]| -> Vec<&'a [u64]> { s.iter().map(|v| &v[n8..n]).collect() };
                scalar::dot_pairs(
                    &mut out_b[n8..],
                    &mut out_a[n8..],
                    &tails(ds),
                    &tails(bs),
                    &tails(as_),
                    m,
                );
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::generate_primes;

    /// SplitMix64: reproducible test data without another dependency.
    struct Gen(u64);
    impl Gen {
        fn random(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, q: u64) -> u64 {
            self.random() % q
        }
    }

    fn primes() -> Vec<Modulus> {
        let mut out = Vec::new();
        for bits in [30u32, 50, 51, 52, 53, 59, 60, 61] {
            for q in generate_primes(bits, 1 << 12, 2, &[]).unwrap_or_default() {
                out.push(Modulus::new(q));
            }
        }
        out
    }

    fn residues(rng: &mut Gen, m: &Modulus, len: usize) -> Vec<u64> {
        // Include the extremes, which exercise every carry of the column folds.
        (0..len)
            .map(|i| match i % 5 {
                0 => m.value() - 1,
                1 => 0,
                _ => rng.below(m.value()),
            })
            .collect()
    }

    const LEN: usize = 8 * 9 + 5; // vector body and scalar tail

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_kernels_match_scalar() {
        let Some(simd) = x86::Ifma::try_new() else {
            eprintln!("no AVX-512 IFMA here: only the scalar kernels are in use");
            return;
        };
        let mut rng = Gen(7);
        let all = primes();
        for m in &all {
            let w = rng.below(m.value());
            let ws = m.shoup(w);
            // mul_scalar: any 64-bit input.
            let x: Vec<u64> = (0..LEN)
                .map(|i| if i == 3 { u64::MAX } else { rng.random() })
                .collect();
            let (mut a, mut b) = (x.clone(), x.clone());
            scalar::mul_scalar(&mut a, w, ws, m);
            x86::mul_scalar(simd, &mut b, w, ws, m.value());
            assert_eq!(a, b, "mul_scalar q={}", m.value());
            // sub_mul_scalar.
            let o = residues(&mut rng, m, LEN);
            let s = residues(&mut rng, m, LEN);
            // mul_add_scalar.
            let (mut a, mut b) = (o.clone(), o.clone());
            scalar::mul_add_scalar(&mut a, &s, w, ws, m);
            x86::mul_add_scalar(simd, &mut b, &s, w, ws, m);
            assert_eq!(a, b, "mul_add_scalar q={}", m.value());
            let add = residues(&mut rng, m, LEN);
            for add in [None, Some(add.as_slice())] {
                let (mut a, mut b) = (o.clone(), o.clone());
                scalar::sub_mul_add_scalar(&mut a, &s, w, ws, add, m);
                x86::sub_mul_add_scalar(simd, &mut b, &s, w, ws, add, m.value());
                assert_eq!(a, b, "sub_mul_add_scalar q={}", m.value());
            }
            // dot_scalars with sources of every size (narrow and wide), up to 20 terms.
            for k in [1usize, 3, 7, 20] {
                let srcs: Vec<Vec<u64>> = (0..k)
                    .map(|i| residues(&mut rng, &all[(i * 5) % all.len()], LEN))
                    .collect();
                let ys: Vec<&[u64]> = srcs.iter().map(|v| v.as_slice()).collect();
                let ws: Vec<u64> = (0..k).map(|_| rng.below(m.value())).collect();
                let (mut a, mut b) = (vec![0; LEN], vec![0; LEN]);
                scalar::dot_scalars(&mut a, &ys, &ws, m);
                x86::dot_scalars(simd, &mut b, &ys, &ws, true, m);
                assert_eq!(a, b, "dot_scalars k={k} q={}", m.value());
                let narrow: Vec<Vec<u64>> = srcs
                    .iter()
                    .map(|v| v.iter().map(|x| x >> 12).collect())
                    .collect();
                let ys: Vec<&[u64]> = narrow.iter().map(|v| v.as_slice()).collect();
                scalar::dot_scalars(&mut a, &ys, &ws, m);
                x86::dot_scalars(simd, &mut b, &ys, &ws, false, m);
                assert_eq!(a, b, "dot_scalars (narrow) k={k} q={}", m.value());
            }
            // dot_pairs, including sums longer than one kernel call takes.
            for k in [1usize, 3, 17, DOT_MAX_TERMS + 3] {
                let gen_set = |rng: &mut Gen| -> Vec<Vec<u64>> {
                    (0..k).map(|_| residues(rng, m, LEN)).collect()
                };
                let (d, bb, aa) = (gen_set(&mut rng), gen_set(&mut rng), gen_set(&mut rng));
                fn r(v: &[Vec<u64>]) -> Vec<&[u64]> {
                    v.iter().map(|x| x.as_slice()).collect()
                }
                let (mut ob1, mut oa1, mut ob2, mut oa2) =
                    (vec![0; LEN], vec![0; LEN], vec![0; LEN], vec![0; LEN]);
                scalar::dot_pairs(&mut ob1, &mut oa1, &r(&d), &r(&bb), &r(&aa), m);
                x86::dot_pairs(simd, &mut ob2, &mut oa2, &r(&d), &r(&bb), &r(&aa), m);
                assert_eq!((ob1, oa1), (ob2, oa2), "dot_pairs k={k} q={}", m.value());
            }
        }
    }

    #[test]
    fn scalar_kernels_match_u128_arithmetic() {
        let mut rng = Gen(9);
        for m in primes() {
            let q = m.value() as u128;
            let ys: Vec<Vec<u64>> = (0..3).map(|_| residues(&mut rng, &m, 16)).collect();
            let ws: Vec<u64> = (0..3).map(|_| rng.below(m.value())).collect();
            let refs: Vec<&[u64]> = ys.iter().map(|v| v.as_slice()).collect();
            let mut out = vec![0; 16];
            dot_scalars(&mut out, &refs, &ws, true, &m);
            for (c, &o) in out.iter().enumerate() {
                let want =
                    (0..3).fold(0u128, |acc, i| (acc + ys[i][c] as u128 * ws[i] as u128) % q);
                assert_eq!(o as u128, want);
            }
        }
    }
}
