//! A reader for `torch.save(state_dict)` files, the format torchvision publishes weights in.
//!
//! Since PyTorch 1.6 such a file is a zip archive `NAME/data.pkl` + `NAME/data/KEY`: the
//! pickle describes an `OrderedDict` of tensors, each a `torch._utils._rebuild_tensor_v2`
//! call on a persistent storage id `('storage', torch.FloatStorage, KEY, location, numel)`
//! plus offset, size and stride; the storage bytes are the zip entry `NAME/data/KEY`,
//! little-endian. Only the pickle opcodes that `torch.save` emits for plain data are
//! interpreted: no Python object is ever constructed, so an untrusted file can at worst be
//! rejected.

use std::collections::HashMap;
use std::io::Read;

use crate::weights::{Tensor, bf16_to_f32, f16_to_f32};

type R<T> = std::result::Result<T, String>;

/// Parses the bytes of a `.pth` zip archive into named `f32` tensors. Entries that are
/// not tensors are ignored; a checkpoint dict holding the weights under `state_dict` or
/// `model` is unwrapped.
pub fn parse_state_dict(bytes: &[u8]) -> R<HashMap<String, Tensor>> {
    let zip = Zip::parse(bytes)?;
    let pkl_name = zip
        .names()
        .find(|n| n.ends_with("data.pkl"))
        .ok_or("zip archive has no data.pkl: not a torch.save file")?
        .to_string();
    let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];
    if let Some(order) = zip.entry(&format!("{prefix}byteorder"))? {
        if order.as_ref() != b"little" {
            return Err("big-endian torch.save files are not supported".into());
        }
    }
    let pickle = zip.entry(&pkl_name)?.ok_or("data.pkl vanished")?;
    let root = Unpickler::new(&pickle).run()?;
    let dict = match find_state_dict(&root) {
        Some(d) => d,
        None => return Err("data.pkl does not hold a dict of tensors (state_dict)".into()),
    };
    let mut out = HashMap::new();
    for (key, value) in dict {
        let (Val::Str(name), Val::Tensor(t)) = (key, value) else {
            continue;
        };
        let storage = zip
            .entry(&format!("{prefix}data/{}", t.storage_key))?
            .ok_or_else(|| format!("tensor {name}: storage data/{} missing", t.storage_key))?;
        let tensor = materialize(name, t, &storage)?;
        out.insert(name.clone(), tensor);
    }
    if out.is_empty() {
        return Err("data.pkl holds no tensors".into());
    }
    Ok(out)
}

fn find_state_dict(root: &Val) -> Option<&Vec<(Val, Val)>> {
    let Val::Dict(items) = root else { return None };
    if items.iter().any(|(_, v)| matches!(v, Val::Tensor(_))) {
        return Some(items);
    }
    items.iter().find_map(|(k, v)| match k {
        Val::Str(s) if s == "state_dict" || s == "model" => find_state_dict(v),
        _ => None,
    })
}

fn materialize(name: &str, t: &TensorRef, storage: &[u8]) -> R<Tensor> {
    let (width, decode): (usize, fn(&[u8]) -> f32) = match t.storage_type.as_str() {
        "FloatStorage" => (4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        "DoubleStorage" => (8, |c| {
            f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
        }),
        "HalfStorage" => (2, |c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        "BFloat16Storage" => (2, |c| bf16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        "LongStorage" => (8, |c| {
            i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
        }),
        "IntStorage" => (4, |c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32),
        other => return Err(format!("tensor {name}: unsupported storage type {other}")),
    };
    if t.shape.len() != t.stride.len() {
        return Err(format!("tensor {name}: size and stride differ in length"));
    }
    let numel = storage.len() / width;
    let count = t
        .shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("tensor {name}: shape overflows"))?;
    // The largest element index touched must lie inside the storage.
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(t.offset, |acc, (&d, &s)| {
            acc.checked_add(d.saturating_sub(1).checked_mul(s)?)
        })
        .ok_or_else(|| format!("tensor {name}: stride overflows"))?;
    if count > 0 && last >= numel {
        return Err(format!(
            "tensor {name}: shape {:?} needs storage element {last}, storage has {numel} (truncated?)",
            t.shape
        ));
    }
    let mut data = Vec::with_capacity(count);
    let mut index = vec![0usize; t.shape.len()];
    for _ in 0..count {
        let at = t.offset
            + index
                .iter()
                .zip(&t.stride)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        data.push(decode(&storage[at * width..(at + 1) * width]));
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < t.shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(Tensor {
        shape: t.shape.clone(),
        data,
    })
}

/// The entries of a zip archive (stored or deflated; zip64 records understood).
struct Zip<'a> {
    bytes: &'a [u8],
    entries: Vec<ZipEntry>,
}

struct ZipEntry {
    name: String,
    method: u16,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
}

/// `len` bytes at `at`, or a truncation error (never an overflow, whatever the offsets).
fn bytes_at(b: &[u8], at: usize, len: usize) -> R<&[u8]> {
    at.checked_add(len)
        .and_then(|end| b.get(at..end))
        .ok_or_else(|| "zip archive truncated or corrupt (offset out of range)".to_string())
}
fn le16(b: &[u8], at: usize) -> R<u16> {
    bytes_at(b, at, 2).map(|s| u16::from_le_bytes([s[0], s[1]]))
}
fn le32(b: &[u8], at: usize) -> R<u32> {
    bytes_at(b, at, 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}
fn le64(b: &[u8], at: usize) -> R<u64> {
    bytes_at(b, at, 8).map(|s| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
}
/// `a + b`, or an error on overflow.
fn add(a: usize, b: usize) -> R<usize> {
    a.checked_add(b)
        .ok_or_else(|| "zip offsets overflow".to_string())
}
fn to_usize(v: u64) -> R<usize> {
    usize::try_from(v).map_err(|_| "zip offset too large".to_string())
}

impl<'a> Zip<'a> {
    fn parse(bytes: &'a [u8]) -> R<Self> {
        const EOCD: u32 = 0x0605_4b50;
        let search_from = bytes.len().saturating_sub(22 + 65_535);
        let eocd = (search_from..bytes.len().saturating_sub(21))
            .rev()
            .find(|&i| le32(bytes, i) == Ok(EOCD))
            .ok_or("zip end-of-directory record not found (truncated file?)")?;
        let mut count = u64::from(le16(bytes, eocd + 10)?);
        let mut cd_offset = u64::from(le32(bytes, eocd + 16)?);
        if cd_offset == 0xffff_ffff || count == 0xffff {
            // Zip64: the locator just before the EOCD points at the zip64 EOCD record.
            let locator = eocd.checked_sub(20).ok_or("zip64 locator missing")?;
            if le32(bytes, locator)? != 0x0706_4b50 {
                return Err("zip64 locator missing".into());
            }
            let rec = to_usize(le64(bytes, locator + 8)?)?;
            if le32(bytes, rec)? != 0x0606_4b50 {
                return Err("zip64 end-of-directory record corrupt".into());
            }
            count = le64(bytes, add(rec, 32)?)?;
            cd_offset = le64(bytes, add(rec, 48)?)?;
        }
        let mut at = to_usize(cd_offset)?;
        let mut entries = Vec::new();
        for _ in 0..count {
            if le32(bytes, at)? != 0x0201_4b50 {
                return Err("zip central directory corrupt".into());
            }
            // The fixed 46-byte header is in range (signature checked at `at`, and
            // `bytes_at` below checks the rest), so offsets inside it cannot overflow.
            let header = bytes_at(bytes, at, 46)?;
            let method = le16(header, 10)?;
            let mut compressed = u64::from(le32(header, 20)?);
            let mut uncompressed = u64::from(le32(header, 24)?);
            let name_len = usize::from(le16(header, 28)?);
            let extra_len = usize::from(le16(header, 30)?);
            let comment_len = usize::from(le16(header, 32)?);
            let mut local_offset = u64::from(le32(header, 42)?);
            let name_bytes = bytes_at(bytes, at + 46, name_len)?;
            let name = String::from_utf8_lossy(name_bytes).into_owned();
            let extra = bytes_at(bytes, at + 46 + name_len, extra_len)?;
            // Zip64 extra field: the 64-bit values of the fields saturated at 0xffffffff.
            let mut e = 0;
            while e + 4 <= extra.len() {
                let id = le16(extra, e)?;
                let size = usize::from(le16(extra, e + 2)?);
                if id == 1 {
                    let mut f = e + 4;
                    for field in [&mut uncompressed, &mut compressed, &mut local_offset] {
                        if *field == 0xffff_ffff {
                            *field = le64(extra, f)?;
                            f += 8;
                        }
                    }
                }
                e += 4 + size;
            }
            entries.push(ZipEntry {
                name,
                method,
                compressed,
                uncompressed,
                local_offset,
            });
            at += 46 + name_len + extra_len + comment_len;
        }
        Ok(Self { bytes, entries })
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// The uncompressed contents of entry `name`, or `None` if the archive lacks it.
    fn entry(&self, name: &str) -> R<Option<std::borrow::Cow<'a, [u8]>>> {
        let Some(e) = self.entries.iter().find(|e| e.name == name) else {
            return Ok(None);
        };
        let local = to_usize(e.local_offset)?;
        if le32(self.bytes, local)? != 0x0403_4b50 {
            return Err(format!("zip entry {name}: local header corrupt"));
        }
        let header = bytes_at(self.bytes, local, 30)?;
        let start = local + 30 + usize::from(le16(header, 26)?) + usize::from(le16(header, 28)?);
        let raw = bytes_at(self.bytes, start, to_usize(e.compressed)?)
            .map_err(|_| format!("zip entry {name} is truncated"))?;
        match e.method {
            0 => Ok(Some(std::borrow::Cow::Borrowed(raw))),
            8 => {
                let mut out = Vec::with_capacity(to_usize(e.uncompressed)?);
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut out)
                    .map_err(|err| format!("zip entry {name}: {err}"))?;
                Ok(Some(std::borrow::Cow::Owned(out)))
            }
            m => Err(format!(
                "zip entry {name}: unsupported compression method {m}"
            )),
        }
    }
}

/// A tensor reference as the pickle describes it (data still in the zip).
#[derive(Debug, Clone, PartialEq)]
struct TensorRef {
    storage_type: String,
    storage_key: String,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

/// The plain values a state-dict pickle is made of.
#[derive(Debug, Clone, PartialEq)]
enum Val {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Val>),
    List(Vec<Val>),
    Dict(Vec<(Val, Val)>),
    Global(String, String),
    Storage {
        storage_type: String,
        key: String,
    },
    Tensor(TensorRef),
    /// The result of calling something this reader does not model.
    Opaque,
    Mark,
}

struct Unpickler<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    memo: HashMap<u32, Val>,
    /// Values copied by BINGET/DUP so far: a hostile pickle that re-fetches nested
    /// values exponentially is stopped here instead of exhausting memory.
    copied: usize,
}

/// Far above what a state dict needs (a few values per tensor).
const MAX_COPIED_VALUES: usize = 1_000_000;

impl Val {
    /// Number of values in this tree.
    fn count(&self) -> usize {
        1 + match self {
            Val::Tuple(v) | Val::List(v) => v.iter().map(Val::count).sum(),
            Val::Dict(v) => v.iter().map(|(k, x)| k.count() + x.count()).sum(),
            _ => 0,
        }
    }
}

impl<'a> Unpickler<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            pos: 0,
            stack: Vec::new(),
            memo: HashMap::new(),
            copied: 0,
        }
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or("pickle truncated")?;
        let s = self.bytes.get(self.pos..end).ok_or("pickle truncated")?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> R<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> R<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> R<u64> {
        let s = self.take(8)?;
        Ok(u64::from_le_bytes([
            s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
        ]))
    }
    fn line(&mut self) -> R<String> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("pickle truncated")?;
        self.pos += end + 1;
        Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
    fn text(&mut self, n: usize) -> R<Val> {
        let s = self.take(n)?;
        Ok(Val::Str(String::from_utf8_lossy(s).into_owned()))
    }
    fn pop(&mut self) -> R<Val> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }
    fn top(&mut self) -> R<&mut Val> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }
    /// Pops everything above the topmost mark, and the mark.
    fn pop_mark(&mut self) -> R<Vec<Val>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| *v == Val::Mark)
            .ok_or("pickle MARK missing")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn memo_get(&mut self, key: u32) -> R<Val> {
        let missing = || format!("pickle memo {key} missing");
        // Charged before copying, so an oversized value is refused without being built.
        let values = self.memo.get(&key).ok_or_else(missing)?.count();
        self.charge(values)?;
        self.memo.get(&key).cloned().ok_or_else(missing)
    }
    fn charge(&mut self, values: usize) -> R<()> {
        self.copied = self.copied.saturating_add(values);
        if self.copied > MAX_COPIED_VALUES {
            return Err("pickle too large or self-referential (value copy limit exceeded)".into());
        }
        Ok(())
    }
    fn memo_put(&mut self, key: u32) -> R<()> {
        let v = self.stack.last().cloned().ok_or("pickle stack underflow")?;
        self.memo.insert(key, v);
        Ok(())
    }

    fn run(mut self) -> R<Val> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME: length only, frames are read sequentially anyway
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Val::Mark),
                b'N' => self.stack.push(Val::None),
                0x88 => self.stack.push(Val::Bool(true)),
                0x89 => self.stack.push(Val::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Val::Int(i64::from(v)));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.stack.push(Val::Int(i64::from(v)));
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.stack.push(Val::Int(i64::from(v)));
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes.
                    let n = usize::from(self.u8()?);
                    if n > 8 {
                        return Err("pickle integer too large".into());
                    }
                    let s = self.take(n)?;
                    let mut buf = if s.last().is_some_and(|&b| b & 0x80 != 0) {
                        [0xffu8; 8]
                    } else {
                        [0u8; 8]
                    };
                    buf[..n].copy_from_slice(s);
                    self.stack.push(Val::Int(i64::from_le_bytes(buf)));
                }
                b'G' => {
                    let s = self.take(8)?;
                    let v = f64::from_be_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
                    self.stack.push(Val::Float(v));
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = usize::try_from(self.u64()?).map_err(|_| "pickle string too long")?;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'U' => {
                    let n = usize::from(self.u8()?);
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'T' => {
                    let n = self.u32()? as usize;
                    let v = self.text(n)?;
                    self.stack.push(v);
                }
                b'C' => {
                    let n = usize::from(self.u8()?);
                    let v = self.take(n)?.to_vec();
                    self.stack.push(Val::Bytes(v));
                }
                b'B' => {
                    let n = self.u32()? as usize;
                    let v = self.take(n)?.to_vec();
                    self.stack.push(Val::Bytes(v));
                }
                b')' => self.stack.push(Val::Tuple(Vec::new())),
                b']' => self.stack.push(Val::List(Vec::new())),
                b'}' => self.stack.push(Val::Dict(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Val::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Val::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.stack.push(Val::Dict(pairs));
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let at = self
                        .stack
                        .len()
                        .checked_sub(n)
                        .ok_or("pickle stack underflow")?;
                    let items = self.stack.split_off(at);
                    self.stack.push(Val::Tuple(items));
                }
                b'q' => {
                    let k = u32::from(self.u8()?);
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).map_err(|_| "pickle memo too large")?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = u32::from(self.u8()?);
                    let v = self.memo_get(k)?;
                    self.stack.push(v);
                }
                b'j' => {
                    let k = self.u32()?;
                    let v = self.memo_get(k)?;
                    self.stack.push(v);
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let values = self.top()?.count();
                    self.charge(values)?;
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.stack.push(Val::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Val::Str(m), Val::Str(n)) => self.stack.push(Val::Global(m, n)),
                        _ => return Err("pickle STACK_GLOBAL on non-strings".into()),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(persistent_load(pid)?);
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.stack.push(reduce(callable, args)?);
                }
                0x81 => {
                    self.pop()?; // NEWOBJ args
                    self.pop()?; // class
                    self.stack.push(Val::Opaque);
                }
                b'b' => {
                    // BUILD sets attributes (e.g. an OrderedDict's `_metadata`): not needed.
                    self.pop()?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let Val::Dict(items) = self.top()? {
                        items.push((k, v));
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let new = pairs(items)?;
                    if let Val::Dict(items) = self.top()? {
                        items.extend(new);
                    }
                }
                b'a' => {
                    let v = self.pop()?;
                    if let Val::List(items) = self.top()? {
                        items.push(v);
                    }
                }
                b'e' => {
                    let new = self.pop_mark()?;
                    if let Val::List(items) = self.top()? {
                        items.extend(new);
                    }
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at byte {}",
                        self.pos - 1
                    ));
                }
            }
        }
    }
}

fn pairs(items: Vec<Val>) -> R<Vec<(Val, Val)>> {
    if items.len() % 2 != 0 {
        return Err("pickle dict with an odd number of items".into());
    }
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// `('storage', torch.FloatStorage, '0', 'cpu', numel)` → a storage reference.
fn persistent_load(pid: Val) -> R<Val> {
    let Val::Tuple(items) = pid else {
        return Err("persistent id is not a tuple".into());
    };
    match items.as_slice() {
        [
            Val::Str(kind),
            Val::Global(_, storage_type),
            Val::Str(key),
            ..,
        ] if kind == "storage" => Ok(Val::Storage {
            storage_type: storage_type.clone(),
            key: key.clone(),
        }),
        _ => Err("unrecognised persistent id (expected a torch storage)".into()),
    }
}

fn reduce(callable: Val, args: Val) -> R<Val> {
    let Val::Global(module, name) = &callable else {
        return Ok(Val::Opaque);
    };
    let args = match args {
        Val::Tuple(a) => a,
        _ => return Ok(Val::Opaque),
    };
    match (module.as_str(), name.as_str()) {
        ("collections", "OrderedDict") => Ok(Val::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            let [storage, offset, size, stride, ..] = args.as_slice() else {
                return Err("_rebuild_tensor_v2 with too few arguments".into());
            };
            let Val::Storage { storage_type, key } = storage else {
                return Err("_rebuild_tensor_v2 without a storage".into());
            };
            Ok(Val::Tensor(TensorRef {
                storage_type: storage_type.clone(),
                storage_key: key.clone(),
                offset: as_usize(offset)?,
                shape: as_usize_tuple(size)?,
                stride: as_usize_tuple(stride)?,
            }))
        }
        // A saved nn.Parameter wraps the tensor: keep the tensor.
        ("torch._utils", "_rebuild_parameter")
        | ("torch._utils", "_rebuild_parameter_with_state") => {
            Ok(args.into_iter().next().unwrap_or(Val::Opaque))
        }
        _ => Ok(Val::Opaque),
    }
}

fn as_usize(v: &Val) -> R<usize> {
    match v {
        Val::Int(i) => usize::try_from(*i).map_err(|_| format!("negative size {i} in pickle")),
        _ => Err("expected an integer in a tensor description".into()),
    }
}

fn as_usize_tuple(v: &Val) -> R<Vec<usize>> {
    match v {
        Val::Tuple(items) => items.iter().map(as_usize).collect(),
        _ => Err("expected a tuple in a tensor description".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a minimal torch.save-style zip (stored entries) by hand.
    pub(crate) fn make_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in files {
            let offset = out.len() as u32;
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(files.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    /// The pickle torch.save writes for `{'w': tensor of shape [2, 2]}` (protocol 2).
    fn state_dict_pickle() -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend_from_slice(b"ccollections\nOrderedDict\nq\x00)Rq\x01(");
        p.extend_from_slice(b"X\x01\x00\x00\x00w");
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\nq\x02((X\x07\x00\x00\x00storage");
        p.extend_from_slice(b"ctorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x04tQ");
        p.extend_from_slice(
            b"K\x00K\x02K\x02\x86K\x01K\x02\x86\x89ccollections\nOrderedDict\n)RtR",
        );
        p.extend_from_slice(b"u.");
        p
    }

    #[test]
    fn reads_a_transposed_view() {
        let storage: Vec<u8> = [1f32, 2., 3., 4.]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let pkl = state_dict_pickle();
        let zip = make_zip(&[
            ("m/data.pkl", &pkl),
            ("m/byteorder", b"little"),
            ("m/data/0", &storage),
        ]);
        let t = parse_state_dict(&zip).expect("parse");
        // stride (1, 2) on [1, 2, 3, 4] is the transpose [[1, 3], [2, 4]].
        assert_eq!(t["w"].shape, vec![2, 2]);
        assert_eq!(t["w"].data, vec![1., 3., 2., 4.]);
    }

    #[test]
    fn every_truncation_and_byte_flip_is_handled() {
        let storage: Vec<u8> = [1f32, 2., 3., 4.]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let pkl = state_dict_pickle();
        let zip = make_zip(&[("m/data.pkl", &pkl), ("m/data/0", &storage)]);
        for cut in 0..zip.len() {
            assert!(parse_state_dict(&zip[..cut]).is_err(), "cut {cut}");
        }
        // Flipped bytes may still parse (e.g. inside float data); they must never panic.
        for at in 0..zip.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut z = zip.clone();
                z[at] ^= flip;
                let _ = parse_state_dict(&z);
            }
        }
    }

    #[test]
    fn exponential_pickle_is_refused() {
        // t0 = (); t(i+1) = (t(i), t(i)) fetched from the memo 60 times: 2^60 values.
        let mut p = vec![0x80, 2, b')', b'q', 0];
        for i in 0u8..60 {
            p.extend_from_slice(&[b'h', i, b'h', i, 0x86, b'q', i + 1]);
        }
        p.push(b'.');
        let err = Unpickler::new(&p).run().expect_err("bomb");
        assert!(err.contains("limit"), "{err}");
    }

    #[test]
    fn corrupt_archives_are_errors() {
        let storage = [0u8; 8]; // two floats where four are needed
        let pkl = state_dict_pickle();
        let zip = make_zip(&[("m/data.pkl", &pkl), ("m/data/0", &storage)]);
        let err = parse_state_dict(&zip).expect_err("short storage");
        assert!(err.contains("truncated"), "{err}");

        let zip = make_zip(&[("m/data.pkl", &pkl)]);
        assert!(
            parse_state_dict(&zip)
                .expect_err("no storage")
                .contains("missing")
        );

        let zip = make_zip(&[("m/data.pkl", &pkl[..pkl.len() / 2])]);
        assert!(parse_state_dict(&zip).is_err());

        let full = make_zip(&[("m/data.pkl", &pkl), ("m/data/0", &[0u8; 16])]);
        for cut in [10, full.len() / 2, full.len() - 5] {
            assert!(parse_state_dict(&full[..cut]).is_err(), "cut at {cut}");
        }
    }
}
