//! QR codes of BR Codes: inline SVG for the PIX page, PNG for merchants that embed the image.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per module of the PNG, and the quiet zone around it in modules (the QR standard's 4).
const PNG_SCALE: usize = 8;
const QUIET_ZONE: usize = 4;

fn code(payload: &str) -> QrCode {
    // BR Codes are at most 512 characters; level M holds that in any QR version up to 40.
    QrCode::with_error_correction_level(payload, EcLevel::M)
        .expect("a BR Code always fits a QR code")
}

/// An `<svg>` element (without XML declaration) to place inline in a page.
pub fn svg(payload: &str) -> String {
    let svg = code(payload)
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(240, 240)
        .quiet_zone(true)
        .build();
    match svg.find("<svg") {
        Some(start) => svg[start..].to_string(),
        None => svg,
    }
}

/// A grayscale PNG.
pub fn png(payload: &str) -> Vec<u8> {
    let code = code(payload);
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET_ZONE) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            for row in y * PNG_SCALE..(y + 1) * PNG_SCALE {
                pixels[row * side + x * PNG_SCALE..row * side + (x + 1) * PNG_SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("PNG header into memory");
    writer
        .write_image_data(&pixels)
        .expect("PNG data into memory");
    writer.finish().expect("PNG end into memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_both_forms() {
        let payload = "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D";
        let svg = svg(payload);
        assert!(svg.starts_with("<svg") && svg.contains("<path"));
        let png = png(payload);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }
}
