//! The ciphertext container (`.cts` files: upload groups, models, snapshots, and the body of
//! a checkpoint): magic `VLYCTS01`, u32 count, then per ciphertext a u64 length and its
//! serialized bytes (little-endian). Decoding trusts nothing: every length is checked
//! against the bytes present before anything is sized by it, and every ciphertext against
//! the receiver's parameters.

use crate::error::{Result, TrainError};
use std::io::{Read, Write};
use std::sync::Arc;
use volley_ckks::{Ciphertext, Params, Serializable};

/// Magic of a container.
pub const CTS_MAGIC: &[u8; 8] = b"VLYCTS01";

/// Writes ciphertexts as a container, one at a time (no whole-file buffer).
pub fn write_ciphertexts<'a>(
    w: &mut impl Write,
    cts: impl IntoIterator<Item = &'a Ciphertext, IntoIter: ExactSizeIterator>,
) -> std::io::Result<()> {
    let cts = cts.into_iter();
    let count = u32::try_from(cts.len())
        .map_err(|_| std::io::Error::other("more than 2^32 ciphertexts in one container"))?;
    w.write_all(CTS_MAGIC)?;
    w.write_all(&count.to_le_bytes())?;
    for ct in cts {
        let b = ct.to_bytes();
        w.write_all(&(b.len() as u64).to_le_bytes())?;
        w.write_all(&b)?;
    }
    Ok(())
}

/// Serializes ciphertexts into a container.
pub fn ciphertexts_to_bytes(cts: &[Ciphertext]) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail below 2^32 ciphertexts.
    let _ = write_ciphertexts(&mut out, cts);
    out
}

/// Parses a container, validating every ciphertext against `params` (the stream reader
/// over the bytes: one implementation of the checks).
pub fn ciphertexts_from_bytes(params: &Arc<Params>, bytes: &[u8]) -> Result<Vec<Ciphertext>> {
    let mut r = CiphertextReader::open(params, bytes)?;
    let cts = r.by_ref().collect::<Result<Vec<_>>>()?;
    r.finish()?;
    Ok(cts)
}

/// Reads a container one ciphertext at a time (bounded memory for any count): the header
/// first ([`Self::open`]), then each ciphertext, its length checked against the largest a
/// ciphertext of the parameters can be before anything is allocated.
pub struct CiphertextReader<R: Read> {
    src: R,
    params: Arc<Params>,
    count: usize,
    read: usize,
}

impl<R: Read> CiphertextReader<R> {
    /// Reads and checks the header.
    pub fn open(params: &Arc<Params>, mut src: R) -> Result<Self> {
        let mut head = [0u8; 12];
        if src.read_exact(&mut head).is_err() || &head[..8] != CTS_MAGIC {
            return Err(TrainError::Data(
                "not a volley ciphertext container (bad magic)".into(),
            ));
        }
        let count = u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as usize;
        Ok(Self {
            src,
            params: params.clone(),
            count,
            read: 0,
        })
    }

    /// The number of ciphertexts the header announces.
    pub fn announced(&self) -> usize {
        self.count
    }

    /// Checks that nothing follows the last ciphertext.
    pub fn finish(mut self) -> Result<()> {
        if self.read != self.count {
            return Err(TrainError::Data(format!(
                "{} of {} ciphertexts read",
                self.read, self.count
            )));
        }
        let mut extra = [0u8; 1];
        match self.src.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(TrainError::Data(
                "trailing bytes after the last ciphertext".into(),
            )),
            Err(e) => Err(TrainError::Data(format!("unreadable: {e}"))),
        }
    }
}

impl<R: Read> Iterator for CiphertextReader<R> {
    type Item = Result<Ciphertext>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.read == self.count {
            return None;
        }
        let i = self.read;
        self.read += 1;
        let count = self.count;
        let mut len = [0u8; 8];
        if self.src.read_exact(&mut len).is_err() {
            return Some(Err(TrainError::Data(format!(
                "truncated before ciphertext {i} of {count}"
            ))));
        }
        let len = u64::from_le_bytes(len);
        let max = volley_ckks::serialization::max_ciphertext_size(&self.params);
        let Some(len) = usize::try_from(len).ok().filter(|&l| l <= max) else {
            return Some(Err(TrainError::Data(format!(
                "ciphertext {i} of {count} claims {len} bytes, more than any ciphertext of these parameters ({max})"
            ))));
        };
        let mut buf = vec![0u8; len];
        if self.src.read_exact(&mut buf).is_err() {
            return Some(Err(TrainError::Data(format!(
                "ciphertext {i} of {count} is truncated"
            ))));
        }
        Some(
            Ciphertext::from_bytes(&self.params, &buf)
                .map_err(|e| TrainError::Data(format!("ciphertext {i}: {e}"))),
        )
    }
}

/// Writes a container one ciphertext at a time: the count first (it must be known), then
/// each ciphertext as it comes; [`Self::finish`] checks that exactly `count` were written.
pub struct CiphertextWriter<W: Write> {
    dst: W,
    count: usize,
    written: usize,
}

impl<W: Write> CiphertextWriter<W> {
    /// Writes the header of a container of `count` ciphertexts.
    pub fn create(mut dst: W, count: usize) -> std::io::Result<Self> {
        let c = u32::try_from(count)
            .map_err(|_| std::io::Error::other("more than 2^32 ciphertexts in one container"))?;
        dst.write_all(CTS_MAGIC)?;
        dst.write_all(&c.to_le_bytes())?;
        Ok(Self {
            dst,
            count,
            written: 0,
        })
    }

    /// Appends one ciphertext.
    pub fn push(&mut self, ct: &Ciphertext) -> std::io::Result<()> {
        if self.written == self.count {
            return Err(std::io::Error::other(
                "more ciphertexts than the container's count",
            ));
        }
        let b = ct.to_bytes();
        self.dst.write_all(&(b.len() as u64).to_le_bytes())?;
        self.dst.write_all(&b)?;
        self.written += 1;
        Ok(())
    }

    /// Flushes, after checking the count.
    pub fn finish(mut self) -> std::io::Result<W> {
        if self.written != self.count {
            return Err(std::io::Error::other(format!(
                "{} of {} ciphertexts written",
                self.written, self.count
            )));
        }
        self.dst.flush()?;
        Ok(self.dst)
    }
}

#[cfg(all(test, feature = "client"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use volley_ckks::client::{KeyGenerator, encrypt_secret};
    use volley_ckks::{Encoder, ParamsLiteral, SecretDistribution};

    fn some_ciphertexts(n: usize) -> (Arc<Params>, Vec<Ciphertext>) {
        let params = Params::new_insecure(ParamsLiteral {
            log_n: 5,
            log_q: vec![45, 36],
            log_p: vec![50],
            dnum: 2,
            secret: SecretDistribution::Ternary,
            log_scale: 30,
            sigma: 3.19,
        })
        .unwrap();
        let mut kg = KeyGenerator::new_deterministic_for_tests(params.clone(), [3u8; 32]);
        let sk = kg.gen_secret_key();
        let enc = Encoder::new(params.clone());
        let cts = (0..n)
            .map(|i| {
                let v = vec![i as f64 / 10.0; 16];
                let pt = enc.encode(&v, 1, params.default_scale(), 16).unwrap();
                encrypt_secret(&sk, &pt).unwrap()
            })
            .collect();
        (params, cts)
    }

    /// The streaming reader and writer agree with the whole-buffer functions, and the reader
    /// refuses truncations, absurd lengths, missing and trailing ciphertexts.
    #[test]
    fn streaming_reader_and_writer() {
        let (params, cts) = some_ciphertexts(3);
        let bytes = ciphertexts_to_bytes(&cts);
        let mut w = CiphertextWriter::create(Vec::new(), 3).unwrap();
        for ct in &cts {
            w.push(ct).unwrap();
        }
        assert!(w.push(&cts[0]).is_err(), "a fourth of three");
        assert_eq!(w.finish().unwrap(), bytes);
        assert!(
            CiphertextWriter::create(Vec::new(), 2)
                .unwrap()
                .finish()
                .is_err()
        );
        let mut r = CiphertextReader::open(&params, &bytes[..]).unwrap();
        assert_eq!(r.announced(), 3);
        let back: Vec<Ciphertext> = r.by_ref().collect::<Result<_>>().unwrap();
        r.finish().unwrap();
        assert_eq!(ciphertexts_to_bytes(&back), bytes);
        let read_all = |b: &[u8]| -> Result<()> {
            let mut r = CiphertextReader::open(&params, b)?;
            for ct in r.by_ref() {
                ct?;
            }
            r.finish()
        };
        for cut in [0, 5, 12, 19, 40, bytes.len() - 1] {
            assert!(read_all(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(read_all(&long).is_err(), "trailing byte");
        let mut absurd = bytes.clone();
        absurd[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = read_all(&absurd).unwrap_err().to_string();
        assert!(e.contains("more than any ciphertext"), "{e}");
        let mut fewer = bytes.clone();
        fewer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(
            read_all(&fewer).is_err(),
            "a third ciphertext past the count"
        );
    }
}
