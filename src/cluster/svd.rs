//! Truncated SVD of a sparse matrix (latent semantic analysis of the TF-IDF
//! rows) by randomized subspace iteration (Halko, Martinsson and Tropp 2011,
//! algorithms 4.4 and 5.1): a seeded +-1 test matrix, a few power
//! iterations with re-orthonormalisation after every product, then the SVD
//! of the small projected matrix. What comes out is each row's coordinates
//! on the top right singular vectors scaled by the singular values (`U S`,
//! what scikit-learn's `TruncatedSVD.transform` returns).
//!
//! Only the sparse products touch the big matrix (O(nnz * l) each, on all
//! cores); the dense work is `l x l` (l = rank + oversampling):
//! orthonormalisation by the eigen-decomposition of the Gram matrix (done
//! twice, which also drops directions of a rank-deficient matrix) and a
//! cyclic Jacobi eigen-solver, so no LAPACK is needed. Deterministic for a
//! seed and a thread count-independent result (each output row is summed
//! by one thread in a fixed order).

use ndarray::{Array2, ArrayView2};

/// Options of [`lsa`].
#[derive(Debug, Clone)]
pub struct SvdOptions {
    /// Singular directions kept. Default 200.
    pub rank: usize,
    /// Extra directions carried through the iteration. Default 10.
    pub oversample: usize,
    /// Power iterations (each one product with A^T and one with A). Default 3.
    pub power_iters: usize,
    /// Seed of the test matrix.
    pub seed: u64,
}

impl Default for SvdOptions {
    fn default() -> Self {
        SvdOptions {
            rank: 200,
            oversample: 10,
            power_iters: 3,
            seed: 42,
        }
    }
}

/// A sparse matrix in compressed rows.
#[derive(Debug, Clone)]
pub struct Csr {
    pub rows: usize,
    pub cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    /// From rows of (column, value); columns must be `< cols` (others are
    /// dropped).
    pub fn from_rows(rows: &[Vec<(u32, f32)>], cols: usize) -> Csr {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        let mut indices = Vec::new();
        let mut values = Vec::new();
        indptr.push(0);
        for r in rows {
            for &(c, v) in r {
                if (c as usize) < cols && v != 0.0 && v.is_finite() {
                    indices.push(c);
                    values.push(v);
                }
            }
            indptr.push(indices.len());
        }
        Csr {
            rows: rows.len(),
            cols,
            indptr,
            indices,
            values,
        }
    }

    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    pub fn transpose(&self) -> Csr {
        let mut count = vec![0usize; self.cols + 1];
        for &c in &self.indices {
            count[c as usize + 1] += 1;
        }
        for i in 0..self.cols {
            count[i + 1] += count[i];
        }
        let indptr = count.clone();
        let mut next = count;
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        for r in 0..self.rows {
            for k in self.indptr[r]..self.indptr[r + 1] {
                let c = self.indices[k] as usize;
                indices[next[c]] = r as u32;
                values[next[c]] = self.values[k];
                next[c] += 1;
            }
        }
        Csr {
            rows: self.cols,
            cols: self.rows,
            indptr,
            indices,
            values,
        }
    }

    /// `self * d` for a dense `cols x l` matrix, on all cores.
    fn mul(&self, d: &ArrayView2<f32>) -> Array2<f32> {
        let l = d.ncols();
        let mut out = Array2::<f32>::zeros((self.rows, l));
        if l == 0 || self.rows == 0 {
            return out;
        }
        let d = d.as_standard_layout();
        let d = d.as_slice().expect("standard layout");
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = self.rows.div_ceil(threads).max(1);
        let flat = out.as_slice_mut().expect("standard layout");
        std::thread::scope(|sc| {
            for (ci, block) in flat.chunks_mut(chunk * l).enumerate() {
                sc.spawn(move || {
                    for (i, o) in block.chunks_mut(l).enumerate() {
                        let r = ci * chunk + i;
                        for k in self.indptr[r]..self.indptr[r + 1] {
                            let c = self.indices[k] as usize;
                            let v = self.values[k];
                            for (a, &b) in o.iter_mut().zip(&d[c * l..(c + 1) * l]) {
                                *a += v * b;
                            }
                        }
                    }
                });
            }
        });
        out
    }
}

/// The rows of `a` in its top `rank` singular directions, scaled by the
/// singular values (n x r, r <= rank: fewer when the matrix has fewer rows,
/// columns or non-zero directions), row-major, and r.
pub fn lsa(a: &Csr, opts: &SvdOptions) -> (Vec<f32>, usize) {
    let (us, r, _) = lsa_inner(a, opts, false);
    (us, r)
}

/// As [`lsa`], plus the column basis `V` (cols x r, row-major: the top
/// right singular vectors), so a row that was not in `a` can be *folded
/// in*: its coordinates are `row · V`, which for a row of `a` gives back
/// its row of `U S` (`A V = U S`). What extending topics projects new
/// papers through.
pub fn lsa_with_basis(a: &Csr, opts: &SvdOptions) -> (Vec<f32>, usize, Vec<f32>) {
    lsa_inner(a, opts, true)
}

fn lsa_inner(a: &Csr, opts: &SvdOptions, basis: bool) -> (Vec<f32>, usize, Vec<f32>) {
    let l = (opts.rank + opts.oversample).min(a.rows).min(a.cols);
    if l == 0 || a.nnz() == 0 {
        return (Vec::new(), 0, Vec::new());
    }
    let at = a.transpose();
    let omega = signs(a.cols, l, opts.seed);
    let mut q = orthonormal(a.mul(&omega.view()));
    for _ in 0..opts.power_iters {
        let z = orthonormal(at.mul(&q.view()));
        q = orthonormal(a.mul(&z.view()));
    }
    // B = Q^T A = (A^T Q)^T; B B^T = Z^T Z = W diag(s^2) W^T, A ~ Q W S V^T.
    let z = at.mul(&q.view());
    let gram = gram64(&z.view());
    let (vals, vecs) = jacobi_eigen(gram);
    let r = opts
        .rank
        .min(vals.iter().filter(|&&v| v > vals[0] * 1e-10).count());
    if r == 0 {
        return (Vec::new(), 0, Vec::new());
    }
    let mut w = Array2::<f32>::zeros((q.ncols(), r));
    for j in 0..r {
        let sigma = vals[j].max(0.0).sqrt();
        for i in 0..q.ncols() {
            w[(i, j)] = (vecs[(i, j)] * sigma) as f32;
        }
    }
    let us = q.dot(&w);
    // V = B^T W S^-1 = Z W S^-1.
    let v = if basis {
        let mut wi = Array2::<f32>::zeros((q.ncols(), r));
        for j in 0..r {
            let sigma = vals[j].max(0.0).sqrt();
            let inv = if sigma > 0.0 { 1.0 / sigma } else { 0.0 };
            for i in 0..q.ncols() {
                wi[(i, j)] = (vecs[(i, j)] * inv) as f32;
            }
        }
        z.dot(&wi).as_standard_layout().iter().copied().collect()
    } else {
        Vec::new()
    };
    (us.into_raw_vec_and_offset().0, r, v)
}

/// A seeded `rows x cols` matrix of +-1 (splitmix64 bits).
fn signs(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut h = seed ^ 0x5EED_5EED_0000_0001;
    let mut out = Array2::<f32>::zeros((rows, cols));
    for row in out.rows_mut() {
        let mut bits = 0u64;
        for (j, o) in row.into_iter().enumerate() {
            if j % 64 == 0 {
                h = h.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = h;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                bits = z ^ (z >> 31);
            }
            *o = if (bits >> (j % 64)) & 1 == 1 {
                1.0
            } else {
                -1.0
            };
        }
    }
    out
}

/// `y^T y` (the threaded f32 matrix multiply) as f64 for the eigen-solver.
fn gram64(y: &ArrayView2<f32>) -> Array2<f64> {
    y.t().dot(y).mapv(f64::from)
}

/// An orthonormal basis of the columns of `y` (twice: the second pass
/// repairs the rounding of the first), dropping directions whose share of
/// the largest eigenvalue of `y^T y` is below 1e-10.
fn orthonormal(mut y: Array2<f32>) -> Array2<f32> {
    for _ in 0..2 {
        let (vals, vecs) = jacobi_eigen(gram64(&y.view()));
        let top = vals.first().copied().unwrap_or(0.0);
        let keep = vals
            .iter()
            .filter(|&&v| top > 0.0 && v > top * 1e-10)
            .count();
        let mut w = Array2::<f32>::zeros((y.ncols(), keep));
        for j in 0..keep {
            let inv = 1.0 / vals[j].sqrt();
            for i in 0..y.ncols() {
                w[(i, j)] = (vecs[(i, j)] * inv) as f32;
            }
        }
        y = y.dot(&w);
    }
    y
}

/// Eigenvalues (descending) and eigenvectors (columns) of a symmetric
/// matrix by cyclic Jacobi rotations (on flat row-major buffers: the
/// matrix is symmetric, so a rotated column is copied into its row).
fn jacobi_eigen(a: Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut a: Vec<f64> = a.as_standard_layout().iter().copied().collect();
    // Eigenvectors as rows of `vt` (contiguous rotations).
    let mut vt = vec![0f64; n * n];
    for i in 0..n {
        vt[i * n + i] = 1.0;
    }
    let scale: f64 = a.iter().map(|x| x * x).sum::<f64>().max(f64::MIN_POSITIVE);
    for _sweep in 0..60 {
        let mut off = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    off += a[i * n + j] * a[i * n + j];
                }
            }
        }
        if off <= scale * 1e-26 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= f64::MIN_POSITIVE {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = if theta == 0.0 {
                    1.0
                } else {
                    theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt())
                };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let sn = t * c;
                // A <- J^T A J: rows p and q rotated, copied into columns p
                // and q (symmetry), and the 2 x 2 block set to its known
                // values (the pair is annihilated).
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                rotate_rows(&mut a, n, p, q, c, sn);
                for k in 0..n {
                    a[k * n + p] = a[p * n + k];
                    a[k * n + q] = a[q * n + k];
                }
                a[p * n + p] = app - t * apq;
                a[q * n + q] = aqq + t * apq;
                a[p * n + q] = 0.0;
                a[q * n + p] = 0.0;
                rotate_rows(&mut vt, n, p, q, c, sn);
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]).then(i.cmp(&j)));
    let vals = order.iter().map(|&i| a[i * n + i]).collect();
    let vecs = Array2::from_shape_fn((n, n), |(k, j)| vt[order[j] * n + k]);
    (vals, vecs)
}

/// Rows p < q of a flat `n x n` buffer replaced by `c p - s q` and `s p + c q`.
fn rotate_rows(m: &mut [f64], n: usize, p: usize, q: usize, c: f64, sn: f64) {
    let (lo, hi) = m.split_at_mut(q * n);
    let rp = &mut lo[p * n..(p + 1) * n];
    let rq = &mut hi[..n];
    for (x, y) in rp.iter_mut().zip(rq.iter_mut()) {
        let (xp, xq) = (*x, *y);
        *x = c * xp - sn * xq;
        *y = sn * xp + c * xq;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jacobi_finds_known_eigenpairs() {
        // [[2,1],[1,2]]: eigenvalues 3 and 1, vectors (1,1)/sqrt2, (1,-1)/sqrt2.
        let a = ndarray::arr2(&[[2.0, 1.0], [1.0, 2.0]]);
        let (vals, vecs) = jacobi_eigen(a.clone());
        assert!((vals[0] - 3.0).abs() < 1e-12 && (vals[1] - 1.0).abs() < 1e-12);
        let v0 = vecs.column(0);
        assert!((v0[0].abs() - 0.5f64.sqrt()).abs() < 1e-12 && (v0[0] - v0[1]).abs() < 1e-12);
        // A V = V diag(vals) on a random-ish symmetric 6 x 6.
        let b = Array2::from_shape_fn((6, 6), |(i, j)| ((i * 7 + j * 3) % 5) as f64);
        let m = &b + &b.t();
        let (vals, vecs) = jacobi_eigen(m.clone());
        let av = m.dot(&vecs);
        for j in 0..6 {
            for i in 0..6 {
                assert!((av[(i, j)] - vecs[(i, j)] * vals[j]).abs() < 1e-9);
            }
        }
        assert!(vals.windows(2).all(|w| w[0] >= w[1]));
    }

    /// A dense low-rank-plus-noise matrix as sparse rows.
    fn test_matrix() -> (Vec<Vec<(u32, f32)>>, Array2<f64>) {
        let (n, m) = (60, 40);
        let mut dense = Array2::<f64>::zeros((n, m));
        for i in 0..n {
            for j in 0..m {
                let a = ((i % 3) as f64 + 1.0) * (((j * 5) % 7) as f64 - 3.0);
                let b = ((i % 5) as f64 - 2.0) * (((j * 3) % 4) as f64);
                let noise = (((i * 31 + j * 17) % 11) as f64 - 5.0) * 0.01;
                if (i + j) % 4 != 0 {
                    dense[(i, j)] = a + 0.5 * b + noise;
                }
            }
        }
        let rows = (0..n)
            .map(|i| {
                (0..m)
                    .filter(|&j| dense[(i, j)] != 0.0)
                    .map(|j| (j as u32, dense[(i, j)] as f32))
                    .collect()
            })
            .collect();
        (rows, dense)
    }

    #[test]
    fn lsa_matches_the_exact_top_singular_values_and_gram() {
        let (rows, dense) = test_matrix();
        let a = Csr::from_rows(&rows, 40);
        let (us, r) = lsa(
            &a,
            &SvdOptions {
                rank: 3,
                oversample: 5,
                power_iters: 4,
                seed: 7,
            },
        );
        assert_eq!(r, 3);
        let us = Array2::from_shape_vec((60, 3), us).unwrap().mapv(f64::from);
        // Exact: eigenvalues of A^T A are the squared singular values.
        let (exact, _) = jacobi_eigen(dense.t().dot(&dense));
        let got = us.t().dot(&us); // diag(s^2) for U S
        for j in 0..3 {
            let rel = (got[(j, j)] - exact[j]).abs() / exact[j];
            assert!(rel < 1e-3, "sigma^2 {j}: {} vs {}", got[(j, j)], exact[j]);
            for k in 0..3 {
                if k != j {
                    assert!(got[(j, k)].abs() < 1e-3 * exact[0]);
                }
            }
        }
    }

    #[test]
    fn a_row_folded_in_through_the_basis_lands_on_its_lsa_row() {
        let (rows, _) = test_matrix();
        let a = Csr::from_rows(&rows, 40);
        let o = SvdOptions {
            rank: 3,
            oversample: 5,
            power_iters: 4,
            seed: 7,
        };
        let (us, r, v) = lsa_with_basis(&a, &o);
        assert_eq!((us.clone(), r), lsa(&a, &o));
        assert_eq!(v.len(), 40 * r);
        for (i, row) in rows.iter().enumerate() {
            let mut got = vec![0f32; r];
            for &(c, x) in row {
                for (g, b) in got.iter_mut().zip(&v[c as usize * r..(c as usize + 1) * r]) {
                    *g += x * b;
                }
            }
            let want = &us[i * r..(i + 1) * r];
            let scale = want.iter().map(|x| x * x).sum::<f32>().sqrt().max(1.0);
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 0.02 * scale, "row {i}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn lsa_is_deterministic_and_handles_tiny_and_empty_input() {
        let (rows, _) = test_matrix();
        let a = Csr::from_rows(&rows, 40);
        let o = SvdOptions {
            rank: 5,
            ..Default::default()
        };
        assert_eq!(lsa(&a, &o), lsa(&a, &o));
        // Rank 1 matrix: one direction survives whatever rank is asked.
        let one = Csr::from_rows(&[vec![(0, 1.0)], vec![(0, 2.0)], vec![(0, 3.0)]], 2);
        let (us, r) = lsa(&one, &o);
        assert_eq!(r, 1);
        assert!((us.iter().map(|x| x * x).sum::<f32>() - 14.0).abs() < 1e-3);
        assert_eq!(lsa(&Csr::from_rows(&[], 5), &o), (Vec::new(), 0));
        assert_eq!(
            lsa(&Csr::from_rows(&[vec![], vec![]], 3), &o),
            (Vec::new(), 0)
        );
        // Out-of-range and non-finite entries are dropped, not a panic.
        let bad = Csr::from_rows(&[vec![(9, 1.0), (0, f32::NAN)], vec![(1, 1.0)]], 2);
        assert_eq!(bad.nnz(), 1);
        assert_eq!(lsa(&bad, &o).1, 1);
    }

    #[test]
    fn sparse_products_match_dense() {
        let (rows, dense) = test_matrix();
        let a = Csr::from_rows(&rows, 40);
        let d = Array2::from_shape_fn((40, 3), |(i, j)| (i as f32 - j as f32) * 0.1);
        let got = a.mul(&d.view());
        let want = dense.mapv(|x| x as f32).dot(&d);
        assert!((&got - &want).iter().all(|x| x.abs() < 1e-3));
        let t = a.transpose();
        let e = Array2::from_shape_fn((60, 2), |(i, j)| ((i + j) % 3) as f32);
        let got = t.mul(&e.view());
        let want = dense.t().mapv(|x| x as f32).dot(&e);
        assert!((&got - &want).iter().all(|x| x.abs() < 1e-3));
    }
}
