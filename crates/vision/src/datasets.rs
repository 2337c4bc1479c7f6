//! Labelled image sources: MNIST and Fashion-MNIST IDX files (gzip or raw), CIFAR-10
//! binary batches, and folders of PNG/JPEG images with one sub-folder per class.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Result, VisionError};
use crate::preprocess::RawImage;

/// Labelled images, read by index. Decoding may be lazy (image folders), so `image` can
/// fail on a corrupt file.
pub trait ImageSource: Send + Sync {
    /// Number of images.
    fn len(&self) -> usize;
    /// True when there is no image.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The class label of image `index`.
    fn label(&self, index: usize) -> u32;
    /// Image `index`, decoded.
    fn image(&self, index: usize) -> Result<RawImage>;
}

/// Which half of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training set.
    Train,
    /// The test set.
    Test,
}

/// The supported dataset layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetKind {
    /// MNIST IDX files.
    Mnist,
    /// Fashion-MNIST (same file names and format as MNIST).
    FashionMnist,
    /// CIFAR-10 "binary version" batches.
    Cifar10,
    /// `DIR/CLASS/*.png|jpg|jpeg`, classes numbered in sorted order.
    Folder,
}

/// Opens `kind` under `dir`.
pub fn open_dataset(kind: DatasetKind, dir: &Path, split: Split) -> Result<Box<dyn ImageSource>> {
    Ok(match kind {
        DatasetKind::Mnist => Box::new(load_mnist(dir, split, "MNIST")?),
        DatasetKind::FashionMnist => Box::new(load_mnist(dir, split, "FashionMNIST")?),
        DatasetKind::Cifar10 => Box::new(load_cifar10(dir, split)?),
        DatasetKind::Folder => Box::new(ImageFolder::open(dir)?),
    })
}

/// Images of one size held in memory, grey or RGB (interleaved).
#[derive(Debug, Clone)]
pub struct InMemoryImages {
    width: usize,
    height: usize,
    rgb: bool,
    pixels: Vec<u8>,
    labels: Vec<u32>,
}

impl InMemoryImages {
    /// Grey images `width x height`, `pixels` holding them one after another.
    pub fn grey(width: usize, height: usize, pixels: Vec<u8>, labels: Vec<u32>) -> Result<Self> {
        Self::new(width, height, false, pixels, labels)
    }

    fn new(
        width: usize,
        height: usize,
        rgb: bool,
        pixels: Vec<u8>,
        labels: Vec<u32>,
    ) -> Result<Self> {
        let per = width * height * if rgb { 3 } else { 1 };
        if per == 0 || pixels.len() != per * labels.len() {
            return Err(VisionError::Invalid(format!(
                "{} bytes of pixels for {} images of {width}x{height}",
                pixels.len(),
                labels.len()
            )));
        }
        Ok(Self {
            width,
            height,
            rgb,
            pixels,
            labels,
        })
    }

    /// All labels.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }
}

impl ImageSource for InMemoryImages {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn label(&self, index: usize) -> u32 {
        self.labels[index]
    }

    fn image(&self, index: usize) -> Result<RawImage> {
        if index >= self.labels.len() {
            return Err(VisionError::Invalid(format!("image {index} out of range")));
        }
        let (width, height) = (self.width, self.height);
        if self.rgb {
            let per = 3 * width * height;
            Ok(RawImage::Rgb {
                width,
                height,
                pixels: self.pixels[index * per..(index + 1) * per].to_vec(),
            })
        } else {
            let per = width * height;
            Ok(RawImage::Grey {
                width,
                height,
                pixels: self.pixels[index * per..(index + 1) * per].to_vec(),
            })
        }
    }
}

/// Largest decompressed file accepted (the MNIST training images are 47 MB).
const MAX_FILE_BYTES: u64 = 1 << 30;

/// Reads a file, gunzipping it if it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| VisionError::io(path, e))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .take(MAX_FILE_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| VisionError::format(path, format!("gzip data corrupt or truncated: {e}")))?;
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses an IDX image file (magic 0x00000803): `(count, rows, cols, pixels)`.
pub fn parse_idx_images(
    bytes: &[u8],
) -> std::result::Result<(usize, usize, usize, Vec<u8>), String> {
    if bytes.len() < 16 {
        return Err("IDX image file truncated in its header".into());
    }
    let magic = be32(bytes, 0);
    if magic != 0x0803 {
        return Err(format!(
            "bad IDX magic 0x{magic:08x} (expected 0x00000803 for images)"
        ));
    }
    let (n, rows, cols) = (
        be32(bytes, 4) as usize,
        be32(bytes, 8) as usize,
        be32(bytes, 12) as usize,
    );
    let need = n
        .checked_mul(rows)
        .and_then(|v| v.checked_mul(cols))
        .ok_or("IDX header is absurd")?;
    let data = &bytes[16..];
    if data.len() != need {
        return Err(format!(
            "IDX header says {n} images of {rows}x{cols} ({need} bytes), the file has {} (truncated or corrupt)",
            data.len()
        ));
    }
    Ok((n, rows, cols, data.to_vec()))
}

/// Parses an IDX label file (magic 0x00000801).
pub fn parse_idx_labels(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if bytes.len() < 8 {
        return Err("IDX label file truncated in its header".into());
    }
    let magic = be32(bytes, 0);
    if magic != 0x0801 {
        return Err(format!(
            "bad IDX magic 0x{magic:08x} (expected 0x00000801 for labels)"
        ));
    }
    let n = be32(bytes, 4) as usize;
    if bytes.len() - 8 != n {
        return Err(format!(
            "IDX header says {n} labels, the file has {} (truncated or corrupt)",
            bytes.len() - 8
        ));
    }
    Ok(bytes[8..].to_vec())
}

/// Reads an IDX image file, gzip or raw.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    parse_idx_images(&read_maybe_gz(path)?).map_err(|r| VisionError::format(path, r))
}

/// Reads an IDX label file, gzip or raw.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    parse_idx_labels(&read_maybe_gz(path)?).map_err(|r| VisionError::format(path, r))
}

/// The standard MNIST / Fashion-MNIST file names (without `.gz`) of a split:
/// `(images, labels)`.
pub fn mnist_file_names(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        Split::Test => ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }
}

/// Finds `stem` or `stem.gz` in `dir`, or in torchvision's `dir/NAME/raw/` layout.
fn find_file(dir: &Path, stem: &str, torchvision_name: &str) -> Result<PathBuf> {
    let mut tried = Vec::new();
    for base in [dir.to_path_buf(), dir.join(torchvision_name).join("raw")] {
        for name in [format!("{stem}.gz"), stem.to_string()] {
            let p = base.join(&name);
            if p.is_file() {
                return Ok(p);
            }
            tried.push(p.display().to_string());
        }
    }
    Err(VisionError::Invalid(format!(
        "no {stem}[.gz] found (tried {})",
        tried.join(", ")
    )))
}

/// Loads an MNIST-format split from `dir` (files `train-images-idx3-ubyte[.gz]` etc.).
pub fn load_mnist(dir: &Path, split: Split, torchvision_name: &str) -> Result<InMemoryImages> {
    let (img_stem, lbl_stem) = mnist_file_names(split);
    let img_path = find_file(dir, img_stem, torchvision_name)?;
    let lbl_path = find_file(dir, lbl_stem, torchvision_name)?;
    let (n, rows, cols, pixels) = read_idx_images(&img_path)?;
    let labels = read_idx_labels(&lbl_path)?;
    if labels.len() != n {
        return Err(VisionError::format(
            &lbl_path,
            format!(
                "{} labels for {n} images in {}",
                labels.len(),
                img_path.display()
            ),
        ));
    }
    InMemoryImages::new(
        cols,
        rows,
        false,
        pixels,
        labels.into_iter().map(u32::from).collect(),
    )
}

/// Loads CIFAR-10's binary batches: `data_batch_1.bin`..`data_batch_5.bin` (train) or
/// `test_batch.bin`, from `dir` or `dir/cifar-10-batches-bin`. Records are a label byte
/// and 3072 bytes of 32x32 planar R, G, B.
pub fn load_cifar10(dir: &Path, split: Split) -> Result<InMemoryImages> {
    let names: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    let base = if dir.join(&names[0]).is_file() {
        dir.to_path_buf()
    } else {
        dir.join("cifar-10-batches-bin")
    };
    const RECORD: usize = 1 + 3072;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for name in &names {
        let path = base.join(name);
        let bytes = std::fs::read(&path).map_err(|e| VisionError::io(&path, e))?;
        if bytes.is_empty() || bytes.len() % RECORD != 0 {
            return Err(VisionError::format(
                &path,
                format!(
                    "{} bytes is not a whole number of 3073-byte CIFAR-10 records (truncated?)",
                    bytes.len()
                ),
            ));
        }
        for record in bytes.chunks_exact(RECORD) {
            if record[0] > 9 {
                return Err(VisionError::format(
                    &path,
                    format!("label {} is not a CIFAR-10 class", record[0]),
                ));
            }
            labels.push(u32::from(record[0]));
            let planes = &record[1..];
            for p in 0..1024 {
                pixels.extend_from_slice(&[planes[p], planes[1024 + p], planes[2048 + p]]);
            }
        }
    }
    InMemoryImages::new(32, 32, true, pixels, labels)
}

/// `DIR/CLASS/IMAGE` with PNG or JPEG images, decoded on demand. Classes are the
/// sub-folder names in sorted order (label 0 = first), as torchvision's `ImageFolder`.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    classes: Vec<String>,
    files: Vec<(PathBuf, u32)>,
}

impl ImageFolder {
    /// Lists the images under `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let mut classes: Vec<(String, PathBuf)> = std::fs::read_dir(dir)
            .map_err(|e| VisionError::io(dir, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        classes.sort();
        let mut files = Vec::new();
        for (label, (_, path)) in classes.iter().enumerate() {
            let mut images: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| VisionError::io(path, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                        ["png", "jpg", "jpeg"]
                            .iter()
                            .any(|x| e.eq_ignore_ascii_case(x))
                    })
                })
                .collect();
            images.sort();
            let label = u32::try_from(label)
                .map_err(|_| VisionError::Invalid("too many classes".into()))?;
            files.extend(images.into_iter().map(|p| (p, label)));
        }
        if files.is_empty() {
            return Err(VisionError::Invalid(format!(
                "{}: no PNG/JPEG images in class sub-folders",
                dir.display()
            )));
        }
        Ok(Self {
            classes: classes.into_iter().map(|(name, _)| name).collect(),
            files,
        })
    }

    /// Class names; label `i` is `classes()[i]`.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
}

impl ImageSource for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn label(&self, index: usize) -> u32 {
        self.files[index].1
    }

    fn image(&self, index: usize) -> Result<RawImage> {
        let path = &self.files[index].0;
        decode_image(path)
    }
}

/// Decodes a PNG or JPEG file: grey images stay grey, anything else becomes RGB.
pub fn decode_image(path: &Path) -> Result<RawImage> {
    let img = image::ImageReader::open(path)
        .map_err(|e| VisionError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| VisionError::io(path, e))?
        .decode()
        .map_err(|e| VisionError::Image {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    Ok(if img.color().has_color() {
        RawImage::Rgb {
            width,
            height,
            pixels: img.into_rgb8().into_raw(),
        }
    } else {
        RawImage::Grey {
            width,
            height,
            pixels: img.into_luma8().into_raw(),
        }
    })
}

/// The indices `offset..offset+limit` of a source of `len` images (`limit` `None` = to
/// the end); an empty or out-of-range selection is an error.
pub fn select(len: usize, offset: usize, limit: Option<usize>) -> Result<Range<usize>> {
    if offset >= len {
        return Err(VisionError::Invalid(format!(
            "offset {offset} is past the {len} images"
        )));
    }
    let end = match limit {
        Some(0) => return Err(VisionError::Invalid("limit must be positive".into())),
        Some(n) => offset.saturating_add(n).min(len),
        None => len,
    };
    Ok(offset..end)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn idx_images(n: u32, rows: u32, cols: u32, data: &[u8]) -> Vec<u8> {
        let mut v = 0x0803u32.to_be_bytes().to_vec();
        for x in [n, rows, cols] {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut v = 0x0801u32.to_be_bytes().to_vec();
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).expect("gz");
        e.finish().expect("gz")
    }

    #[test]
    fn idx_errors() {
        assert!(parse_idx_images(&idx_images(2, 2, 2, &[0; 8])).is_ok());
        let e = parse_idx_images(&idx_images(2, 2, 2, &[0; 7])).expect_err("short");
        assert!(e.contains("truncated"), "{e}");
        let mut bad = idx_images(1, 1, 1, &[0]);
        bad[3] = 0x01;
        assert!(parse_idx_images(&bad).expect_err("magic").contains("magic"));
        assert!(parse_idx_images(&[0, 0, 8]).is_err());
        assert!(
            parse_idx_labels(&idx_images(1, 1, 1, &[0]))
                .expect_err("magic")
                .contains("magic")
        );
        let mut short = idx_labels(&[1, 2, 3]);
        short.pop();
        assert!(parse_idx_labels(&short).is_err());
    }

    #[test]
    fn mnist_layout_gz_and_raw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pixels: Vec<u8> = (0..3 * 4).map(|v| v as u8).collect();
        std::fs::write(
            dir.path().join("t10k-images-idx3-ubyte.gz"),
            gz(&idx_images(3, 2, 2, &pixels)),
        )
        .expect("w");
        std::fs::write(
            dir.path().join("t10k-labels-idx1-ubyte"),
            idx_labels(&[7, 2, 1]),
        )
        .expect("w");
        let ds = load_mnist(dir.path(), Split::Test, "MNIST").expect("load");
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.label(1), 2);
        assert_eq!(
            ds.image(2).expect("img"),
            RawImage::Grey {
                width: 2,
                height: 2,
                pixels: vec![8, 9, 10, 11]
            }
        );
        // Mismatched counts and a truncated gzip stream are errors.
        std::fs::write(
            dir.path().join("t10k-labels-idx1-ubyte"),
            idx_labels(&[7, 2]),
        )
        .expect("w");
        assert!(load_mnist(dir.path(), Split::Test, "MNIST").is_err());
        let full = gz(&idx_images(3, 2, 2, &pixels));
        std::fs::write(
            dir.path().join("t10k-images-idx3-ubyte.gz"),
            &full[..full.len() - 6],
        )
        .expect("w");
        assert!(read_idx_images(&dir.path().join("t10k-images-idx3-ubyte.gz")).is_err());
        let err = load_mnist(dir.path(), Split::Train, "MNIST").expect_err("missing");
        assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
    }

    #[test]
    fn cifar_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rec = vec![3u8];
        rec.extend((0..3072).map(|i| (i / 1024) as u8 * 100));
        std::fs::write(dir.path().join("test_batch.bin"), &rec).expect("w");
        let ds = load_cifar10(dir.path(), Split::Test).expect("load");
        assert_eq!(ds.len(), 1);
        assert_eq!(ds.label(0), 3);
        let RawImage::Rgb { pixels, .. } = ds.image(0).expect("img") else {
            panic!("rgb expected")
        };
        assert_eq!(&pixels[..6], &[0, 100, 200, 0, 100, 200]);
        std::fs::write(dir.path().join("test_batch.bin"), &rec[..100]).expect("w");
        assert!(load_cifar10(dir.path(), Split::Test).is_err());
    }

    #[test]
    fn image_folder_and_unreadable_images() {
        let dir = tempfile::tempdir().expect("tempdir");
        for class in ["cat", "ant"] {
            std::fs::create_dir(dir.path().join(class)).expect("mkdir");
        }
        image::GrayImage::from_pixel(3, 2, image::Luma([9]))
            .save(dir.path().join("cat/a.png"))
            .expect("png");
        image::RgbImage::from_pixel(2, 2, image::Rgb([1, 2, 3]))
            .save(dir.path().join("ant/b.png"))
            .expect("png");
        std::fs::write(dir.path().join("cat/broken.jpg"), b"not a jpeg").expect("w");
        std::fs::write(dir.path().join("cat/notes.txt"), b"ignored").expect("w");
        let ds = ImageFolder::open(dir.path()).expect("open");
        assert_eq!(ds.classes(), &["ant".to_string(), "cat".to_string()]);
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.label(0), 0);
        assert!(matches!(ds.image(0).expect("rgb"), RawImage::Rgb { .. }));
        assert_eq!(
            ds.image(1).expect("grey"),
            RawImage::Grey {
                width: 3,
                height: 2,
                pixels: vec![9; 6]
            }
        );
        let err = ds.image(2).expect_err("broken");
        assert!(matches!(err, VisionError::Image { .. }), "{err}");
        assert!(err.to_string().contains("broken.jpg"));
    }

    #[test]
    fn selections() {
        assert_eq!(select(10, 0, Some(3)).expect("s"), 0..3);
        assert_eq!(select(10, 8, Some(5)).expect("s"), 8..10);
        assert_eq!(select(10, 2, None).expect("s"), 2..10);
        assert!(select(10, 10, None).is_err());
        assert!(select(10, 0, Some(0)).is_err());
    }
}
