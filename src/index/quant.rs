//! 8-bit codes of the matrix rows for the HNSW traversal: each dimension is
//! scaled symmetrically by its largest magnitude over the library
//! (`code = round(x / scale)`, -127..=127), and a query is turned once into
//! 16-bit weights `q_i * scale_i`, so a distance during the graph walk is an
//! integer dot product over 384 bytes instead of 1,536 (the walk is bound by
//! memory traffic, not arithmetic). The graph search re-scores its final
//! beam with the exact f32 vectors, so the codes only steer the walk; the
//! scores returned are exact.

use super::slab::Slab;

/// Per-dimension scales and the row codes, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Codes {
    pub dim: usize,
    pub scales: Vec<f32>,
    pub codes: Slab<i8>,
}

/// A query prepared for `Codes::dot`: integer weights and the factor that
/// turns the integer sum back into a dot product.
pub struct QueryCodes {
    weights: Vec<i16>,
    factor: f32,
}

impl Codes {
    /// Encodes `rows` rows of `dim` values (row-major).
    pub fn encode(dim: usize, data: &[f32]) -> Codes {
        let mut scales = vec![0f32; dim];
        if dim > 0 {
            for row in data.chunks_exact(dim) {
                for (s, &x) in scales.iter_mut().zip(row) {
                    *s = s.max(x.abs());
                }
            }
        }
        for s in &mut scales {
            *s = if s.is_finite() && *s > 0.0 {
                *s / 127.0
            } else {
                1.0
            };
        }
        let codes = if dim == 0 {
            Vec::new()
        } else {
            data.chunks_exact(dim)
                .flat_map(|row| {
                    row.iter()
                        .zip(&scales)
                        .map(|(&x, &s)| (x / s).round().clamp(-127.0, 127.0) as i8)
                })
                .collect()
        };
        Codes {
            dim,
            scales,
            codes: Slab::Owned(codes),
        }
    }

    /// Appends the codes of more rows (row-major), with the scales the
    /// existing rows were encoded with: a value beyond a dimension's largest
    /// so far is clipped to +-127 (the codes only steer the graph walk; the
    /// final scores are exact).
    pub fn append(&mut self, data: &[f32]) {
        if self.dim == 0 {
            return;
        }
        let codes = std::mem::replace(&mut self.codes, Slab::Owned(Vec::new()));
        let mut codes = codes.into_vec();
        codes.extend(data.chunks_exact(self.dim).flat_map(|row| {
            row.iter()
                .zip(&self.scales)
                .map(|(&x, &s)| (x / s).round().clamp(-127.0, 127.0) as i8)
        }));
        self.codes = Slab::Owned(codes);
    }

    /// The codes of every row but `keep(row) == false` ones, in order
    /// (same scales).
    pub fn retain_rows(&self, keep: impl Fn(usize) -> bool) -> Codes {
        let mut codes = Vec::new();
        if self.dim > 0 {
            for (i, row) in self.codes.as_slice().chunks_exact(self.dim).enumerate() {
                if keep(i) {
                    codes.extend_from_slice(row);
                }
            }
        }
        Codes {
            dim: self.dim,
            scales: self.scales.clone(),
            codes: Slab::Owned(codes),
        }
    }

    pub fn rows(&self) -> usize {
        self.codes
            .as_slice()
            .len()
            .checked_div(self.dim)
            .unwrap_or(0)
    }

    #[inline]
    pub fn row(&self, i: usize) -> &[i8] {
        &self.codes.as_slice()[i * self.dim..(i + 1) * self.dim]
    }

    /// The query's weights `q_i * scale_i`, scaled into i16 so that no sum
    /// of products can overflow an i32.
    pub fn prepare(&self, q: &[f32]) -> QueryCodes {
        let w: Vec<f32> = q.iter().zip(&self.scales).map(|(&x, &s)| x * s).collect();
        let max = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        let sum: f32 = w.iter().map(|x| x.abs()).sum();
        if !(max > 0.0 && max.is_finite() && sum.is_finite()) {
            return QueryCodes {
                weights: vec![0; w.len()],
                factor: 0.0,
            };
        }
        // |sum of c_i * w_i| <= 127 * sum |w_i| must stay below 2^31.
        let scale = (32767.0 / max).min(2.0e9 / (127.0 * sum));
        QueryCodes {
            weights: w.iter().map(|x| (x * scale).round() as i16).collect(),
            factor: 1.0 / scale,
        }
    }

    /// Approximate dot product of row `i` with the prepared query.
    #[inline]
    pub fn dot(&self, i: usize, q: &QueryCodes, f: DotI8) -> f32 {
        f(self.row(i), &q.weights) as f32 * q.factor
    }
}

/// The integer dot product to use on this CPU.
pub type DotI8 = fn(&[i8], &[i16]) -> i32;

pub fn dot_i8_fn() -> DotI8 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            return dot_i8_avx2_checked;
        }
    }
    dot_i8_portable
}

fn dot_i8_portable(c: &[i8], w: &[i16]) -> i32 {
    c.iter().zip(w).map(|(&a, &b)| a as i32 * b as i32).sum()
}

/// Only ever handed out by `dot_i8_fn` after the CPU check.
#[cfg(target_arch = "x86_64")]
fn dot_i8_avx2_checked(c: &[i8], w: &[i16]) -> i32 {
    // SAFETY: `dot_i8_fn` returns this function only when AVX2 is present.
    unsafe { dot_i8_avx2(c, w) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(c: &[i8], w: &[i16]) -> i32 {
    use std::arch::x86_64::*;
    let n = c.len().min(w.len());
    let mut i = 0;
    // SAFETY: every load reads 16 codes / 16 weights at i <= n - 16 (or
    // n - 32) of slices of length >= n.
    unsafe {
        let mut s0 = _mm256_setzero_si256();
        let mut s1 = _mm256_setzero_si256();
        while i + 32 <= n {
            let c0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(c.as_ptr().add(i) as *const __m128i));
            let c1 =
                _mm256_cvtepi8_epi16(_mm_loadu_si128(c.as_ptr().add(i + 16) as *const __m128i));
            let w0 = _mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i);
            let w1 = _mm256_loadu_si256(w.as_ptr().add(i + 16) as *const __m256i);
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(c0, w0));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(c1, w1));
            i += 32;
        }
        while i + 16 <= n {
            let c0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(c.as_ptr().add(i) as *const __m128i));
            let w0 = _mm256_loadu_si256(w.as_ptr().add(i) as *const __m256i);
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(c0, w0));
            i += 16;
        }
        let s = _mm256_add_epi32(s0, s1);
        let mut lanes = [0i32; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, s);
        let mut total: i32 = lanes.iter().sum();
        while i < n {
            total += c[i] as i32 * w[i] as i32;
            i += 1;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_matches_portable_and_approximates_the_dot_product() {
        let dim = 389; // not a multiple of 16: exercises the tails
        let m = crate::index::graph::tests::random_matrix(50, dim, 3);
        let codes = Codes::encode(dim, m.as_slice());
        assert_eq!(codes.rows(), 50);
        let f = dot_i8_fn();
        for i in 0..50 {
            let q = m.row((i * 7) % 50);
            let qc = codes.prepare(q);
            assert_eq!(
                f(codes.row(i), &qc.weights),
                dot_i8_portable(codes.row(i), &qc.weights)
            );
            let exact = crate::index::dot(m.row(i), q);
            let approx = codes.dot(i, &qc, f);
            assert!((exact - approx).abs() < 0.01, "{exact} vs {approx}");
        }
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let codes = Codes::encode(4, &[0.0; 8]);
        assert_eq!(codes.scales, vec![1.0; 4]);
        let qc = codes.prepare(&[0.0; 4]);
        assert_eq!(codes.dot(1, &qc, dot_i8_fn()), 0.0);
        let qc = codes.prepare(&[f32::NAN, 1.0, 0.0, 0.0]);
        assert_eq!(codes.dot(0, &qc, dot_i8_fn()), 0.0);
        assert_eq!(Codes::encode(0, &[]).rows(), 0);
    }
}
