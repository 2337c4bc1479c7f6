//! Checks against `../shared/fixtures/regnet_x_400mf/` (torchvision's own outputs).
//! `#[ignore]`d because the fixture lives outside the repository; CI runs them with
//! `cargo test --release -- --ignored`.

use std::path::PathBuf;

use volley_vision::backbone::{Backbone, RegNet, RegNetConfig};
use volley_vision::npy::{NpyData, read_npy};
use volley_vision::preprocess::{PreprocessOptions, RawImage, preprocess};
use volley_vision::weights::WeightMap;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/regnet_x_400mf"
    ))
    .join(name)
}

fn fixture_images() -> Vec<RawImage> {
    let images = read_npy(&fixture("images_u8.npy")).expect("images_u8.npy");
    assert_eq!(images.shape, vec![8, 28, 28]);
    let NpyData::U8(pixels) = images.data else {
        panic!("images_u8.npy is not uint8")
    };
    pixels
        .chunks_exact(784)
        .map(|p| RawImage::Grey {
            width: 28,
            height: 28,
            pixels: p.to_vec(),
        })
        .collect()
}

#[test]
#[ignore = "needs ../shared/fixtures"]
fn preprocessing_matches_torchvision() {
    let want = read_npy(&fixture("preprocessed_f32.npy")).expect("preprocessed_f32.npy");
    assert_eq!(want.shape, vec![8, 3, 224, 224]);
    let want = want.to_f32();
    let mut max_err = 0f32;
    for (i, img) in fixture_images().iter().enumerate() {
        let p = preprocess(img, &PreprocessOptions::default()).expect("preprocess");
        assert_eq!((p.height, p.width), (224, 224));
        let chunk = &want[i * 3 * 224 * 224..(i + 1) * 3 * 224 * 224];
        for (a, b) in p.data.iter().zip(chunk) {
            max_err = max_err.max((a - b).abs());
        }
    }
    println!(
        "preprocessing: max abs error {max_err:e} (tolerance 1/255 = {:e})",
        1.0 / 255.0
    );
    assert!(max_err <= 1.0 / 255.0 + 1e-6, "{max_err}");
}

fn check_features(weights: &str) {
    let map = WeightMap::load(&fixture(weights)).expect("weights");
    let net = RegNet::new(RegNetConfig::regnet_x_400mf(), &map).expect("network");
    let want = read_npy(&fixture("features_f32.npy")).expect("features_f32.npy");
    assert_eq!(want.shape, vec![8, 400]);
    let want = want.to_f32();
    // The reference preprocessed tensors isolate the network from preprocessing.
    let pre = read_npy(&fixture("preprocessed_f32.npy"))
        .expect("preprocessed")
        .to_f32();
    let batch: Vec<_> = pre
        .chunks_exact(3 * 224 * 224)
        .map(|c| volley_vision::preprocess::PreprocessedImage {
            height: 224,
            width: 224,
            data: c.to_vec(),
        })
        .collect();
    let got = net.features(&batch).expect("features");
    let mut max_err = 0f32;
    for (row, w) in got.iter().zip(want.chunks_exact(400)) {
        assert_eq!(row.len(), 400);
        for (a, b) in row.iter().zip(w) {
            max_err = max_err.max((a - b).abs());
        }
    }
    // And end to end from the uint8 images.
    let ours: Vec<_> = fixture_images()
        .iter()
        .map(|i| preprocess(i, &PreprocessOptions::default()).expect("pre"))
        .collect();
    let got2 = net.features(&ours).expect("features");
    let mut max_err2 = 0f32;
    for (row, w) in got2.iter().zip(want.chunks_exact(400)) {
        for (a, b) in row.iter().zip(w) {
            max_err2 = max_err2.max((a - b).abs());
        }
    }
    println!(
        "{weights}: max abs feature error {max_err:e} (torchvision input), {max_err2:e} (our preprocessing)"
    );
    assert!(max_err < 1e-3 && max_err2 < 1e-3);
}

#[test]
#[ignore = "needs ../shared/fixtures"]
fn features_match_torchvision_pth() {
    check_features("regnet_x_400mf_random.pth");
}

#[test]
#[ignore = "needs ../shared/fixtures"]
fn features_match_torchvision_safetensors() {
    check_features("regnet_x_400mf_random.safetensors");
}

fn shared(path: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")).join(path)
}

#[test]
#[ignore = "needs ../shared/data/mnist"]
fn shared_mnist_matches_fixture_images() {
    use volley_vision::datasets::{ImageSource, Split, load_mnist};
    let test = load_mnist(&shared("data/mnist"), Split::Test, "MNIST").expect("t10k");
    assert_eq!(test.len(), 10_000);
    let labels = read_npy(&fixture("labels_u8.npy")).expect("labels_u8.npy");
    let NpyData::U8(labels) = labels.data else {
        panic!("labels not uint8")
    };
    for (i, (img, &label)) in fixture_images().iter().zip(&labels).enumerate() {
        assert_eq!(test.label(i), u32::from(label), "label {i}");
        assert_eq!(&test.image(i).expect("image"), img, "image {i}");
    }
    let train = load_mnist(&shared("data/mnist"), Split::Train, "MNIST").expect("train");
    assert_eq!(train.len(), 60_000);
}

#[test]
#[ignore = "needs ../shared"]
fn library_pipeline_on_shared_mnist() {
    use volley_vision::datasets::{DatasetKind, Split, open_dataset};
    use volley_vision::{ExtractOptions, extract_features, load_backbone};
    let net =
        load_backbone("regnet_x_400mf", &fixture("regnet_x_400mf_random.pth")).expect("backbone");
    let src = open_dataset(DatasetKind::Mnist, &shared("data/mnist"), Split::Test).expect("mnist");
    let opts = ExtractOptions {
        batch_size: 5,
        ..Default::default()
    };
    let mut seen = 0;
    let table =
        extract_features(&*net, &*src, 0..8, &opts, &mut |done, _| seen = done).expect("extract");
    assert_eq!(seen, 8);
    let want = read_npy(&fixture("features_f32.npy"))
        .expect("features")
        .to_f32();
    let max_err = table
        .features
        .iter()
        .zip(&want)
        .map(|(a, b)| (*a as f32 - b).abs())
        .fold(0f32, f32::max);
    println!("extract_features on ../shared/data/mnist: max abs error {max_err:e}");
    assert!(max_err < 1e-3);
}

#[test]
#[ignore = "needs ../shared/fixtures"]
fn damaged_fixture_weights_are_clear_errors() {
    use volley_vision::VisionError;
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "regnet_x_400mf_random.pth",
        "regnet_x_400mf_random.safetensors",
    ] {
        let bytes = std::fs::read(fixture(name)).expect("fixture");
        for fraction in [0.0, 0.001, 0.3, 0.5, 0.9, 0.9999] {
            let p = dir.path().join(name);
            std::fs::write(&p, &bytes[..(bytes.len() as f64 * fraction) as usize]).expect("write");
            let err = volley_vision::load_backbone("regnet_x_400mf", &p)
                .err()
                .expect("truncated");
            assert!(
                matches!(err, VisionError::Weights { .. }),
                "{name} at {fraction}: {err}"
            );
        }
    }
}
