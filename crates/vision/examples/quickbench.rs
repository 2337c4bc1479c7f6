//! Times the backbone alone on the fixture images repeated (development aid).
use std::time::Instant;
use volley_vision::backbone::{Backbone, RegNet, RegNetConfig};
use volley_vision::preprocess::PreprocessedImage;
use volley_vision::weights::WeightMap;
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/regnet_x_400mf"
    );
    let map = WeightMap::load(std::path::Path::new(&format!(
        "{dir}/regnet_x_400mf_random.safetensors"
    )))?;
    let net = RegNet::new(RegNetConfig::regnet_x_400mf(), &map)?;
    let pre =
        volley_vision::npy::read_npy(std::path::Path::new(&format!("{dir}/preprocessed_f32.npy")))?
            .to_f32();
    let imgs: Vec<PreprocessedImage> = pre
        .chunks_exact(3 * 224 * 224)
        .map(|c| PreprocessedImage {
            height: 224,
            width: 224,
            data: c.to_vec(),
        })
        .collect();
    let batch: Vec<PreprocessedImage> = (0..64).map(|i| imgs[i % 8].clone()).collect();
    let t = Instant::now();
    let n = 3;
    for _ in 0..n {
        net.features(&batch)?;
    }
    let s = t.elapsed().as_secs_f64();
    println!("{:.1} images/s", (n * batch.len()) as f64 / s);
    Ok(())
}
