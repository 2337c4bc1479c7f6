//! The learning curve as a PNG (plotters, with the DejaVu Sans font embedded so that no
//! system font is needed).

use crate::util::CliError;
use plotters::prelude::*;
use std::path::Path;
use volley_train::dirs::write_file_atomic;

/// One point of a learning curve: iterations done, and the test accuracy of the decrypted
/// model and of the plaintext reference after that many iterations.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// Iterations done.
    pub iteration: usize,
    /// Test accuracy of the decrypted model.
    pub he_test_accuracy: f64,
    /// Test accuracy of the plaintext reference.
    pub plain_test_accuracy: f64,
}

const WIDTH: u32 = 900;
const HEIGHT: u32 = 560;

/// Draws both curves (accuracy against iterations, labelled axes and legend) into `path`,
/// written atomically.
pub fn learning_curve_png(path: &Path, points: &[CurvePoint], title: &str) -> Result<(), CliError> {
    register_font();
    let err = |e: String| {
        CliError::Msg(format!(
            "{}: drawing the learning curve: {e}",
            path.display()
        ))
    };
    let mut pixels = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        let max_it = points.iter().map(|p| p.iteration).max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(0usize..max_it, 0f64..1f64)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("iterations")
            .y_desc("test accuracy")
            .axis_desc_style(("sans-serif", 18))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        // The curves usually coincide: the reference is drawn wide and light underneath,
        // the encrypted model thin with markers on top, so both stay visible.
        let reference = RGBColor(240, 120, 110);
        let series = [
            (
                "plaintext reference",
                reference,
                7,
                0,
                points
                    .iter()
                    .map(|p| (p.iteration, p.plain_test_accuracy))
                    .collect::<Vec<_>>(),
            ),
            (
                "decrypted encrypted model",
                BLUE,
                2,
                4,
                points
                    .iter()
                    .map(|p| (p.iteration, p.he_test_accuracy))
                    .collect::<Vec<_>>(),
            ),
        ];
        for (label, color, width, marker, data) in series {
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(width)))
                .map_err(|e| err(e.to_string()))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(width))
                });
            if marker > 0 {
                chart
                    .draw_series(
                        data.iter()
                            .map(|&(x, y)| Circle::new((x, y), marker, color.filled())),
                    )
                    .map_err(|e| err(e.to_string()))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .label_font(("sans-serif", 16))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        root.present().map_err(|e| err(e.to_string()))?;
    }
    let mut png = Vec::new();
    {
        use image::ImageEncoder;
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&pixels, WIDTH, HEIGHT, image::ExtendedColorType::Rgb8)
            .map_err(|e| err(e.to_string()))?;
    }
    Ok(write_file_atomic(path, &png)?)
}

/// Makes DejaVu Sans the "sans-serif" family (once).
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // The font is a valid TrueType file compiled into the binary; registration of a
        // valid font does not fail.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}
