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
