//! Reed–Solomon erasure coding over GF(2^8), byte-exact with moonlight-common-c's nanors.
//!
//! Why hand-written: no crate on crates.io builds nanors' parity matrix. nanors uses a **Cauchy**
//! matrix `C[j][i] = inv((p + i) XOR j)` over GF(2^8) with the reducing polynomial 0x11D, while
//! `reed-solomon-erasure` derives its rows from a Vandermonde matrix and the FFT crates are other codes
//! entirely (gamestream-protocol-2-media.md §4.3). Audio replaces the parity rows with a fixed OpenFEC
//! matrix (§4.2); [`ReedSolomon::audio`] builds that one.
//!
//! The code is systematic: shards `0..d` are the data, `d..d+p` the parity. Any `d` of the `d+p`
//! shards rebuild the data, because `[I; C]` is MDS; we solve with the inverse of the sub-matrix made
//! of the rows we hold, which yields the same bytes as nanors' own decoder.

use std::sync::OnceLock;

/// nanors' `DATA_SHARDS_MAX`: data + parity must not exceed it.
pub const MAX_TOTAL_SHARDS: usize = 255;

/// Errors of the FEC layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FecError {
    /// Shard counts outside `1 <= d`, `1 <= p`, `d + p <= 255`.
    #[error("invalid shard counts: {data} data + {parity} parity (need d>=1, p>=1, d+p<=255)")]
    InvalidShardCounts { data: usize, parity: usize },
    /// The wrong number of shards was passed.
    #[error("expected {expected} shards, got {got}")]
    WrongShardCount { expected: usize, got: usize },
    /// Shards of one call differ in length.
    #[error("shards differ in length")]
    UnequalShardLengths,
    /// Fewer than `d` shards are present: the block cannot be rebuilt.
    #[error("too few shards to recover: have {have}, need {need}")]
    TooFewShards { have: usize, need: usize },
    /// A custom parity matrix of the wrong size, or one that is not invertible where it must be.
    #[error("invalid parity matrix")]
    InvalidMatrix,
}

/// GF(2^8) with polynomial 0x11D: exp/log tables and a full 64 KiB multiplication table, so that
/// multiplying a slice by a constant is one table row lookup per byte.
struct Field {
    exp: [u8; 512],
    log: [u8; 256],
    mul: Vec<[u8; 256]>,
}

fn field() -> &'static Field {
    static FIELD: OnceLock<Field> = OnceLock::new();
    FIELD.get_or_init(|| {
        let mut exp = [0u8; 512];
        let mut log = [0u8; 256];
        let mut x: u16 = 1;
        for (i, e) in exp.iter_mut().enumerate().take(255) {
            *e = x as u8;
            log[x as usize] = i as u8;
            x <<= 1;
            if x & 0x100 != 0 {
                x ^= 0x11D;
            }
        }
        // exp[i] = exp[i - 255] for i in 255..512, so exp[log a + log b] needs no reduction.
        exp.copy_within(0..257, 255);
        let mut mul = vec![[0u8; 256]; 256];
        for a in 1..256usize {
            for b in 1..256usize {
                mul[a][b] = exp[log[a] as usize + log[b] as usize];
            }
        }
        Field { exp, log, mul }
    })
}

/// `a · b` in GF(2^8)/0x11D.
pub fn gf_mul(a: u8, b: u8) -> u8 {
    field().mul[a as usize][b as usize]
}

/// Multiplicative inverse; `gf_inv(0)` is defined as 0 (never used by valid matrices).
pub fn gf_inv(a: u8) -> u8 {
    if a == 0 {
        return 0;
    }
    let f = field();
    f.exp[255 - f.log[a as usize] as usize]
}

/// `dst[i] ^= c · src[i]` for every byte: the inner loop of both encode and decode.
///
/// Uses AVX2 or SSSE3 split-nibble table lookups when the CPU has them (checked once at run time),
/// else the 64 KiB table; all paths give identical bytes.
pub fn mul_slice_xor(c: u8, src: &[u8], dst: &mut [u8]) {
    let n = src.len().min(dst.len());
    let (src, dst) = (&src[..n], &mut dst[..n]);
    match c {
        0 => {}
        1 => dst.iter_mut().zip(src).for_each(|(d, s)| *d ^= s),
        _ => {
            let done = simd::mul_slice_xor(c, src, dst);
            let row = &field().mul[c as usize];
            dst[done..]
                .iter_mut()
                .zip(&src[done..])
                .for_each(|(d, s)| *d ^= row[*s as usize]);
        }
    }
}

/// The low- and high-nibble product tables of `c`: `c·x = lo[x & 15] ^ hi[x >> 4]`.
fn nibble_tables(c: u8) -> ([u8; 16], [u8; 16]) {
    let row = &field().mul[c as usize];
    (
        core::array::from_fn(|x| row[x]),
        core::array::from_fn(|x| row[x << 4]),
    )
}

/// Vectorised GF(2^8) multiply-accumulate (the only `unsafe` in the crate: `std::arch` intrinsics).
mod simd {
    /// Processes a prefix of `src`/`dst` (equal lengths) with SIMD; returns how many bytes it did.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn mul_slice_xor(c: u8, src: &[u8], dst: &mut [u8]) -> usize {
        use std::sync::atomic::{AtomicU8, Ordering};
        // 0 = unknown, 1 = none, 2 = SSSE3, 3 = AVX2.
        static LEVEL: AtomicU8 = AtomicU8::new(0);
        let mut level = LEVEL.load(Ordering::Relaxed);
        if level == 0 {
            level = if std::arch::is_x86_feature_detected!("avx2") {
                3
            } else if std::arch::is_x86_feature_detected!("ssse3") {
                2
            } else {
                1
            };
            LEVEL.store(level, Ordering::Relaxed);
        }
        if src.len() < 16 || level == 1 {
            return 0;
        }
        let (lo, hi) = super::nibble_tables(c);
        if level == 3 && src.len() >= 32 {
            // SAFETY: AVX2 support was detected at run time just above.
            unsafe { avx2(&lo, &hi, src, dst) }
        } else {
            // SAFETY: SSSE3 support was detected at run time (AVX2 implies it).
            unsafe { ssse3(&lo, &hi, src, dst) }
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub(super) fn mul_slice_xor(_c: u8, _src: &[u8], _dst: &mut [u8]) -> usize {
        0
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx2(lo: &[u8; 16], hi: &[u8; 16], src: &[u8], dst: &mut [u8]) -> usize {
        use std::arch::x86_64::*;
        let n = src.len().min(dst.len()) / 32 * 32;
        // SAFETY: unaligned 16-byte loads from 16-byte arrays.
        let (lo, hi) = unsafe {
            (
                _mm256_broadcastsi128_si256(_mm_loadu_si128(lo.as_ptr().cast())),
                _mm256_broadcastsi128_si256(_mm_loadu_si128(hi.as_ptr().cast())),
            )
        };
        let mask = _mm256_set1_epi8(0x0F);
        for (s, d) in src[..n].chunks_exact(32).zip(dst[..n].chunks_exact_mut(32)) {
            // SAFETY: `s` and `d` are exactly 32 bytes long; loadu/storeu need no alignment.
            unsafe {
                let v = _mm256_loadu_si256(s.as_ptr().cast());
                let l = _mm256_and_si256(v, mask);
                let h = _mm256_and_si256(_mm256_srli_epi64(v, 4), mask);
                let prod = _mm256_xor_si256(_mm256_shuffle_epi8(lo, l), _mm256_shuffle_epi8(hi, h));
                let acc = _mm256_loadu_si256(d.as_ptr().cast());
                _mm256_storeu_si256(d.as_mut_ptr().cast(), _mm256_xor_si256(acc, prod));
            }
        }
        n
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "ssse3")]
    fn ssse3(lo: &[u8; 16], hi: &[u8; 16], src: &[u8], dst: &mut [u8]) -> usize {
        use std::arch::x86_64::*;
        let n = src.len().min(dst.len()) / 16 * 16;
        // SAFETY: unaligned 16-byte loads from 16-byte arrays.
        let (lo, hi) = unsafe {
            (
                _mm_loadu_si128(lo.as_ptr().cast()),
                _mm_loadu_si128(hi.as_ptr().cast()),
            )
        };
        let mask = _mm_set1_epi8(0x0F);
        for (s, d) in src[..n].chunks_exact(16).zip(dst[..n].chunks_exact_mut(16)) {
            // SAFETY: `s` and `d` are exactly 16 bytes long; loadu/storeu need no alignment.
            unsafe {
                let v = _mm_loadu_si128(s.as_ptr().cast());
                let l = _mm_and_si128(v, mask);
                let h = _mm_and_si128(_mm_srli_epi64(v, 4), mask);
                let prod = _mm_xor_si128(_mm_shuffle_epi8(lo, l), _mm_shuffle_epi8(hi, h));
                let acc = _mm_loadu_si128(d.as_ptr().cast());
                _mm_storeu_si128(d.as_mut_ptr().cast(), _mm_xor_si128(acc, prod));
            }
        }
        n
    }
}

/// `dst[i] = c · src[i]` for every byte.
pub fn mul_slice(c: u8, src: &[u8], dst: &mut [u8]) {
    let row = &field().mul[c as usize];
    dst.iter_mut()
        .zip(src)
        .for_each(|(d, s)| *d = row[*s as usize]);
}

/// A systematic `d + p` erasure code with a fixed parity matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReedSolomon {
    data: usize,
    parity: usize,
    /// Parity rows, row-major: `matrix[j * data + i]` (nanors' `rs->p`).
    matrix: Vec<u8>,
}

impl ReedSolomon {
    /// nanors' `reed_solomon_new(data, parity)`: the Cauchy matrix used for video.
    pub fn new(data: usize, parity: usize) -> Result<Self, FecError> {
        check_counts(data, parity)?;
        let mut matrix = Vec::with_capacity(data * parity);
        for j in 0..parity {
            for i in 0..data {
                matrix.push(gf_inv(((parity + i) ^ j) as u8));
            }
        }
        Ok(Self {
            data,
            parity,
            matrix,
        })
    }

    /// A code with an explicit parity matrix (`parity` rows of `data` coefficients, row-major).
    pub fn with_parity_matrix(
        data: usize,
        parity: usize,
        matrix: Vec<u8>,
    ) -> Result<Self, FecError> {
        check_counts(data, parity)?;
        if matrix.len() != data * parity {
            return Err(FecError::InvalidMatrix);
        }
        Ok(Self {
            data,
            parity,
            matrix,
        })
    }

    /// The fixed RS(4,2) code of the audio stream (OpenFEC's matrix, §4.2).
    pub fn audio() -> Self {
        Self {
            data: 4,
            parity: 2,
            matrix: vec![0x77, 0x40, 0x38, 0x0e, 0xc7, 0xa7, 0x0d, 0x6c],
        }
    }

    /// Number of data shards.
    pub fn data_shards(&self) -> usize {
        self.data
    }

    /// Number of parity shards.
    pub fn parity_shards(&self) -> usize {
        self.parity
    }

    /// The parity rows, row-major.
    pub fn parity_matrix(&self) -> &[u8] {
        &self.matrix
    }

    /// Computes every parity shard from the data shards. All shards must have the same length.
    pub fn encode<D: AsRef<[u8]>, P: AsMut<[u8]>>(
        &self,
        data: &[D],
        parity: &mut [P],
    ) -> Result<(), FecError> {
        if data.len() != self.data {
            return Err(FecError::WrongShardCount {
                expected: self.data,
                got: data.len(),
            });
        }
        if parity.len() != self.parity {
            return Err(FecError::WrongShardCount {
                expected: self.parity,
                got: parity.len(),
            });
        }
        let len = data[0].as_ref().len();
        if data.iter().any(|d| d.as_ref().len() != len)
            || parity.iter_mut().any(|p| p.as_mut().len() != len)
        {
            return Err(FecError::UnequalShardLengths);
        }
        for (j, out) in parity.iter_mut().enumerate() {
            let out = out.as_mut();
            out.fill(0);
            let row = &self.matrix[j * self.data..(j + 1) * self.data];
            for (c, d) in row.iter().zip(data) {
                mul_slice_xor(*c, d.as_ref(), out);
            }
        }
        Ok(())
    }

    /// Rebuilds the missing **data** shards in place.
    ///
    /// `shards` holds all `d + p` shards in order (missing ones may hold anything but must have the
    /// common length); `present[k]` says whether shard `k` was received. Parity shards are not rebuilt.
    pub fn reconstruct<S: AsMut<[u8]>>(
        &self,
        shards: &mut [S],
        present: &[bool],
    ) -> Result<(), FecError> {
        let total = self.data + self.parity;
        if shards.len() != total || present.len() != total {
            return Err(FecError::WrongShardCount {
                expected: total,
                got: shards.len().min(present.len()),
            });
        }
        let missing: Vec<usize> = (0..self.data).filter(|&i| !present[i]).collect();
        if missing.is_empty() {
            return Ok(());
        }
        let have = present.iter().filter(|p| **p).count();
        if have < self.data {
            return Err(FecError::TooFewShards {
                have,
                need: self.data,
            });
        }
        let len = shards[0].as_mut().len();
        if shards.iter_mut().any(|s| s.as_mut().len() != len) {
            return Err(FecError::UnequalShardLengths);
        }
        // Rows used: every present data shard, then present parity shards until we have d rows.
        let rows: Vec<usize> = (0..total).filter(|&k| present[k]).take(self.data).collect();
        let mut sub = vec![0u8; self.data * self.data];
        for (r, &k) in rows.iter().enumerate() {
            let dst = &mut sub[r * self.data..(r + 1) * self.data];
            if k < self.data {
                dst[k] = 1;
            } else {
                let j = k - self.data;
                dst.copy_from_slice(&self.matrix[j * self.data..(j + 1) * self.data]);
            }
        }
        let inv = invert(&sub, self.data).ok_or(FecError::InvalidMatrix)?;
        // data_i = sum_r inv[i][r] * shard[rows[r]] for each missing i.
        let mut rebuilt = vec![vec![0u8; len]; missing.len()];
        for (out, &i) in rebuilt.iter_mut().zip(&missing) {
            for (r, &k) in rows.iter().enumerate() {
                mul_slice_xor(inv[i * self.data + r], shards[k].as_mut(), out);
            }
        }
        for (buf, &i) in rebuilt.into_iter().zip(&missing) {
            shards[i].as_mut().copy_from_slice(&buf);
        }
        Ok(())
    }
}

impl ReedSolomon {
    /// Rebuilds the missing data shards of a block stored contiguously (shard `k` is
    /// `buf[k*shard_len..(k+1)*shard_len]`), without allocating per shard.
    ///
    /// Solves only for the `m` missing shards: the parity rows used are first turned into syndromes
    /// **in place** (so the parity shards used are clobbered), then an `m × m` Cauchy sub-matrix is
    /// inverted. Same bytes as [`ReedSolomon::reconstruct`] (the code is MDS), far less work when
    /// few shards are missing.
    pub fn reconstruct_contiguous(
        &self,
        buf: &mut [u8],
        shard_len: usize,
        present: &[bool],
    ) -> Result<(), FecError> {
        let total = self.data + self.parity;
        if present.len() != total {
            return Err(FecError::WrongShardCount {
                expected: total,
                got: present.len(),
            });
        }
        if shard_len == 0 || buf.len() != total * shard_len {
            return Err(FecError::UnequalShardLengths);
        }
        let mut missing = [0u8; MAX_TOTAL_SHARDS];
        let mut m = 0;
        for (i, _) in present[..self.data]
            .iter()
            .enumerate()
            .filter(|(_, p)| !**p)
        {
            missing[m] = i as u8;
            m += 1;
        }
        if m == 0 {
            return Ok(());
        }
        let mut rows = [0u8; MAX_TOTAL_SHARDS];
        let mut r = 0;
        for (j, _) in present[self.data..]
            .iter()
            .enumerate()
            .filter(|(_, p)| **p)
            .take(m)
        {
            rows[r] = j as u8;
            r += 1;
        }
        if r < m {
            let have = present.iter().filter(|p| **p).count();
            return Err(FecError::TooFewShards {
                have,
                need: self.data,
            });
        }
        let (missing, rows) = (&missing[..m], &rows[..m]);
        let (data, parity) = buf.split_at_mut(self.data * shard_len);
        // Syndromes: s_r = parity_{j_r} ^ sum over present data i of C[j_r][i] * data_i.
        for &j in rows {
            let j = j as usize;
            let s = &mut parity[j * shard_len..(j + 1) * shard_len];
            let coeffs = &self.matrix[j * self.data..(j + 1) * self.data];
            for (i, d) in data.chunks_exact(shard_len).enumerate() {
                if present[i] {
                    mul_slice_xor(coeffs[i], d, s);
                }
            }
        }
        // A[r][c] = C[j_r][missing_c]; x = A^-1 s.
        let mut a = vec![0u8; m * m];
        for (ri, &j) in rows.iter().enumerate() {
            for (ci, &i) in missing.iter().enumerate() {
                a[ri * m + ci] = self.matrix[j as usize * self.data + i as usize];
            }
        }
        let inv = invert(&a, m).ok_or(FecError::InvalidMatrix)?;
        for (ci, &i) in missing.iter().enumerate() {
            let out = &mut data[i as usize * shard_len..(i as usize + 1) * shard_len];
            out.fill(0);
            for (ri, &j) in rows.iter().enumerate() {
                let s = &parity[j as usize * shard_len..(j as usize + 1) * shard_len];
                mul_slice_xor(inv[ci * m + ri], s, out);
            }
        }
        Ok(())
    }
}

fn check_counts(data: usize, parity: usize) -> Result<(), FecError> {
    if data == 0 || parity == 0 || data + parity > MAX_TOTAL_SHARDS {
        return Err(FecError::InvalidShardCounts { data, parity });
    }
    Ok(())
}

/// Gauss–Jordan inversion of an `n × n` matrix over GF(2^8); `None` if singular.
fn invert(m: &[u8], n: usize) -> Option<Vec<u8>> {
    let mut a = m.to_vec();
    let mut inv = vec![0u8; n * n];
    for i in 0..n {
        inv[i * n + i] = 1;
    }
    for col in 0..n {
        let pivot = (col..n).find(|&r| a[r * n + col] != 0)?;
        if pivot != col {
            for c in 0..n {
                a.swap(pivot * n + c, col * n + c);
                inv.swap(pivot * n + c, col * n + c);
            }
        }
        let scale = gf_inv(a[col * n + col]);
        for c in 0..n {
            a[col * n + c] = gf_mul(a[col * n + c], scale);
            inv[col * n + c] = gf_mul(inv[col * n + c], scale);
        }
        for r in 0..n {
            let f = a[r * n + col];
            if r != col && f != 0 {
                for c in 0..n {
                    a[r * n + c] ^= gf_mul(f, a[col * n + c]);
                    inv[r * n + c] ^= gf_mul(f, inv[col * n + c]);
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn field_check_values() {
        assert_eq!(gf_mul(2, 0x80), 0x1D);
        assert_eq!(gf_mul(0x53, 0xCA), 0x8F);
        assert_eq!(gf_inv(2), 0x8E);
        assert_eq!(gf_inv(3), 0xF4);
    }

    fn data_8_1() -> Vec<Vec<u8>> {
        (0..4u8)
            .map(|i| (0..16u8).map(|j| i * 16 + j).collect())
            .collect()
    }

    /// A 4+2 vector on the [`data_8_1`] shards: `rs`'s parity `matrix`, both `parity` shards, and
    /// the data rebuilt after the `erased` shards are overwritten (shard index, fill byte).
    fn check_4_2_vector(
        rs: &ReedSolomon,
        matrix: &str,
        parity: [&str; 2],
        erased: [(usize, u8); 2],
    ) {
        assert_eq!(rs.parity_matrix(), &h(matrix)[..]);
        let data = data_8_1();
        let mut encoded = vec![vec![0u8; 16]; 2];
        rs.encode(&data, &mut encoded).unwrap();
        assert_eq!(encoded[0], h(parity[0]));
        assert_eq!(encoded[1], h(parity[1]));
        let mut shards: Vec<Vec<u8>> = data.iter().cloned().chain(encoded).collect();
        let mut present = [true; 6];
        for (i, fill) in erased {
            shards[i] = vec![fill; 16];
            present[i] = false;
        }
        rs.reconstruct(&mut shards, &present).unwrap();
        assert_eq!(&shards[..4], &data[..]);
    }

    #[test]
    fn vector_8_1_video_4_2() {
        // Erase data 0 and 3, rebuild from data 1, 2 and both parities.
        check_4_2_vector(
            &ReedSolomon::new(4, 2).unwrap(),
            "8ef447a7f48ea747",
            [
                "089221bb5ac073e9ac36851ffe64d74d",
                "5dc774ee0f9526bcf963d04aab318218",
            ],
            [(0, 0xAA), (3, 0)],
        );
    }

    #[test]
    fn vector_8_2_video_10_2() {
        let rs = ReedSolomon::new(10, 2).unwrap();
        assert_eq!(
            rs.parity_matrix(),
            &h("8ef447a77abaad9ddd98f48ea747ba7a9dad98dd")[..]
        );
        let data: Vec<Vec<u8>> = (0..10u32)
            .map(|i| {
                (0..8u32)
                    .map(|j| ((i * 37 + j * 11 + 5) & 0xFF) as u8)
                    .collect()
            })
            .collect();
        assert_eq!(data[0], h("05101b26313c4752"));
        assert_eq!(data[9], h("525d68737e89949f"));
        let mut parity = vec![vec![0u8; 8]; 2];
        rs.encode(&data, &mut parity).unwrap();
        assert_eq!(parity[0], h("7c254428ae5ceb91"));
        assert_eq!(parity[1], h("dfa85434cdbe302c"));
    }

    #[test]
    fn vector_8_2_extra_checks() {
        let rs = ReedSolomon::new(3, 1).unwrap();
        assert_eq!(rs.parity_matrix(), &h("018ef4")[..]);
        let data = [
            h("0001020304050607"),
            h("08090a0b0c0d0e0f"),
            h("1011121314151617"),
        ];
        let mut parity = vec![vec![0u8; 8]];
        rs.encode(&data, &mut parity).unwrap();
        assert_eq!(parity[0], h("ff8409720e75f883"));
        let big = ReedSolomon::new(250, 5).unwrap();
        assert_eq!(&big.parity_matrix()[..8], &h("a77abaad9ddd983d")[..]);
        assert!(ReedSolomon::new(200, 55).is_ok());
        assert!(ReedSolomon::new(201, 55).is_err());
        assert!(ReedSolomon::new(0, 1).is_err());
        assert!(ReedSolomon::new(1, 0).is_err());
    }

    #[test]
    fn vector_8_3_audio() {
        check_4_2_vector(
            &ReedSolomon::audio(),
            "7740380ec7a70d6c",
            [
                "1a1b18191e1f1c1d1213101116171415",
                "909192939495969798999a9b9c9d9e9f",
            ],
            [(1, 0), (2, 0)],
        );
    }

    #[test]
    fn simd_matches_table() {
        let src: Vec<u8> = (0..1000u32).map(|i| (i * 131 + 7) as u8).collect();
        for c in [2u8, 3, 0x53, 0x8e, 0xff] {
            for len in [0, 15, 16, 31, 32, 33, 999, 1000] {
                let mut fast = vec![0x5Au8; len];
                let mut slow = fast.clone();
                mul_slice_xor(c, &src[..len], &mut fast);
                let row = &field().mul[c as usize];
                slow.iter_mut()
                    .zip(&src[..len])
                    .for_each(|(d, s)| *d ^= row[*s as usize]);
                assert_eq!(fast, slow, "c={c} len={len}");
            }
        }
    }

    #[test]
    fn contiguous_reconstruct_matches_vectors() {
        let rs = ReedSolomon::new(4, 2).unwrap();
        let data = data_8_1();
        let mut buf: Vec<u8> = data.concat();
        buf.extend(h("089221bb5ac073e9ac36851ffe64d74d"));
        buf.extend(h("5dc774ee0f9526bcf963d04aab318218"));
        buf[..16].fill(0xAA);
        buf[48..64].fill(0);
        rs.reconstruct_contiguous(&mut buf, 16, &[false, true, true, false, true, true])
            .unwrap();
        assert_eq!(&buf[..64], &data.concat()[..]);
        // Random erasures on a bigger code agree with the reference decoder.
        let rs = ReedSolomon::new(20, 5).unwrap();
        let data: Vec<Vec<u8>> = (0..20u32)
            .map(|i| (0..40u32).map(|j| (i * 29 + j * 13 + 1) as u8).collect())
            .collect();
        let mut parity = vec![vec![0u8; 40]; 5];
        rs.encode(&data, &mut parity).unwrap();
        let mut present = vec![true; 25];
        for k in [0, 3, 7, 19, 21] {
            present[k] = false;
        }
        let mut buf: Vec<u8> = data.iter().chain(&parity).flatten().copied().collect();
        for k in [0, 3, 7, 19] {
            buf[k * 40..(k + 1) * 40].fill(0x77);
        }
        rs.reconstruct_contiguous(&mut buf, 40, &present).unwrap();
        assert_eq!(&buf[..800], &data.concat()[..]);
        present[22] = false;
        assert!(rs.reconstruct_contiguous(&mut buf, 40, &present).is_err());
    }

    #[test]
    fn too_few_and_bad_lengths_are_errors() {
        let rs = ReedSolomon::new(4, 2).unwrap();
        let mut shards = vec![vec![0u8; 4]; 6];
        assert_eq!(
            rs.reconstruct(&mut shards, &[false, false, false, true, true, true]),
            Err(FecError::TooFewShards { have: 3, need: 4 })
        );
        let mut uneven = vec![
            vec![0u8; 4],
            vec![0u8; 5],
            vec![0u8; 4],
            vec![0u8; 4],
            vec![0u8; 4],
            vec![0u8; 4],
        ];
        assert_eq!(
            rs.reconstruct(&mut uneven, &[false, true, true, true, true, true]),
            Err(FecError::UnequalShardLengths)
        );
    }
}
