//! Checks a merchant's logo before it is stored: the core recognises the format and size from
//! the bytes; a PNG is then decoded whole (so a damaged or crafted file is refused here, not
//! in a payer's browser), within a bound on the memory decoding may take.

use kassa_core::{ImageFormat, Logo, LogoError};

/// The most memory decoding a logo may take: 1024 × 1024 pixels of 16-bit RGBA.
const MAX_DECODE_BYTES: usize = 8 * 1024 * 1024;

/// A checked logo, or why it is refused.
pub fn check(bytes: Vec<u8>) -> Result<Logo, LogoError> {
    let logo = Logo::parse(bytes)?;
    if logo.format == ImageFormat::Png {
        decode_png(&logo.bytes).map_err(|_| LogoError::Damaged("PNG", "it does not decode"))?;
    }
    Ok(logo)
}

fn decode_png(bytes: &[u8]) -> Result<(), png::DecodingError> {
    let limits = png::Limits {
        bytes: MAX_DECODE_BYTES,
    };
    let decoder = png::Decoder::new_with_limits(std::io::Cursor::new(bytes), limits);
    let mut reader = decoder.read_info()?;
    let size = reader
        .output_buffer_size()
        .filter(|size| *size <= MAX_DECODE_BYTES)
        .ok_or(png::DecodingError::LimitsExceeded)?;
    let mut pixels = vec![0; size];
    reader.next_frame(&mut pixels)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgba);
        let mut writer = encoder.write_header().unwrap();
        writer
            .write_image_data(&vec![0x40; (width * height * 4) as usize])
            .unwrap();
        writer.finish().unwrap();
        bytes
    }

    #[test]
    fn whole_pngs_pass_and_damaged_ones_do_not() {
        let good = png(64, 32);
        let logo = check(good.clone()).unwrap();
        assert_eq!((logo.width_px, logo.height_px), (64, 32));
        // The header intact, the image data corrupted: only decoding finds it.
        let mut damaged = good;
        let middle = damaged.len() - 20;
        damaged[middle] ^= 0xFF;
        assert_eq!(
            check(damaged),
            Err(LogoError::Damaged("PNG", "it does not decode"))
        );
    }
}
