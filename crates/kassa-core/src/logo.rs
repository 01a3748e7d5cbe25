//! A merchant's logo for the payer's pages: a PNG or JPEG image, small and of sensible size,
//! recognised by its bytes (never by a name or a declared type). SVG is refused: it can carry
//! scripts and links to elsewhere.

use std::fmt;

/// Largest logo accepted: the payer's pages, logo included, stay under 50 KB.
pub const MAX_LOGO_BYTES: usize = 16 * 1024;
/// Each side of a logo, in pixels.
pub const MIN_LOGO_SIDE_PX: u32 = 16;
pub const MAX_LOGO_SIDE_PX: u32 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
}

impl ImageFormat {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }
}

/// A checked logo.
#[derive(Clone, PartialEq, Eq)]
pub struct Logo {
    pub format: ImageFormat,
    pub width_px: u32,
    pub height_px: u32,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Logo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Logo({:?}, {}×{} px, {} bytes)",
            self.format,
            self.width_px,
            self.height_px,
            self.bytes.len()
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogoError {
    #[error("the logo is {0} bytes; at most {MAX_LOGO_BYTES} are accepted")]
    TooLarge(usize),
    #[error("SVG is not accepted (it can carry scripts); upload a PNG or JPEG")]
    Svg,
    #[error("the logo is neither a PNG nor a JPEG image")]
    UnknownFormat,
    #[error("the {0} image is damaged: {1}")]
    Damaged(&'static str, &'static str),
    #[error(
        "the logo is {0}×{1} px; each side must be {MIN_LOGO_SIDE_PX} to {MAX_LOGO_SIDE_PX} px"
    )]
    Size(u32, u32),
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

impl Logo {
    /// Recognises and checks an uploaded image. The PNG or JPEG structure is read as far as
    /// its size; a server that decodes more checks the rest (`kassa-server`'s logo check).
    pub fn parse(bytes: Vec<u8>) -> Result<Logo, LogoError> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(LogoError::TooLarge(bytes.len()));
        }
        let (format, (width_px, height_px)) = if bytes.starts_with(PNG_SIGNATURE) {
            (ImageFormat::Png, png_size(&bytes)?)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            (ImageFormat::Jpeg, jpeg_size(&bytes)?)
        } else if looks_like_svg(&bytes) {
            return Err(LogoError::Svg);
        } else {
            return Err(LogoError::UnknownFormat);
        };
        let side = MIN_LOGO_SIDE_PX..=MAX_LOGO_SIDE_PX;
        if !side.contains(&width_px) || !side.contains(&height_px) {
            return Err(LogoError::Size(width_px, height_px));
        }
        Ok(Logo {
            format,
            width_px,
            height_px,
            bytes,
        })
    }
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
    head.contains("<svg") || head.trim_start().starts_with("<?xml")
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The size in the first chunk, which a PNG requires to be `IHDR` of 13 bytes.
fn png_size(bytes: &[u8]) -> Result<(u32, u32), LogoError> {
    let damaged = |why| LogoError::Damaged("PNG", why);
    if be_u32(bytes, 8) != Some(13) || bytes.get(12..16) != Some(b"IHDR".as_slice()) {
        return Err(damaged("its first chunk is not a header"));
    }
    let width = be_u32(bytes, 16).ok_or_else(|| damaged("it ends early"))?;
    let height = be_u32(bytes, 20).ok_or_else(|| damaged("it ends early"))?;
    Ok((width, height))
}

/// Walks the JPEG's segments to its frame header (SOFn), which holds the size.
fn jpeg_size(bytes: &[u8]) -> Result<(u32, u32), LogoError> {
    let damaged = |why| LogoError::Damaged("JPEG", why);
    let mut at = 2;
    loop {
        let (Some(0xFF), Some(&marker)) = (bytes.get(at).copied(), bytes.get(at + 1)) else {
            return Err(damaged("a segment does not start with a marker"));
        };
        let length = bytes
            .get(at + 2..at + 4)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
            .ok_or_else(|| damaged("it ends early"))?;
        let is_frame = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame {
            let frame = bytes
                .get(at + 5..at + 9)
                .ok_or_else(|| damaged("it ends early"))?;
            let height = u16::from_be_bytes([frame[0], frame[1]]);
            let width = u16::from_be_bytes([frame[2], frame[3]]);
            return Ok((u32::from(width), u32::from(height)));
        }
        if marker == 0xDA || marker == 0xD9 || length < 2 {
            return Err(damaged("no frame header before the image data"));
        }
        at += 2 + length;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_header(width: u32, height: u32) -> Vec<u8> {
        let mut bytes = PNG_SIGNATURE.to_vec();
        bytes.extend(13u32.to_be_bytes());
        bytes.extend(b"IHDR");
        bytes.extend(width.to_be_bytes());
        bytes.extend(height.to_be_bytes());
        bytes.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
        bytes
    }

    fn jpeg_header(width: u16, height: u16) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8];
        // An APP0 segment to walk past, then the baseline frame header.
        bytes.extend([0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00]);
        bytes.extend([0xFF, 0xC0, 0x00, 0x0B, 0x08]);
        bytes.extend(height.to_be_bytes());
        bytes.extend(width.to_be_bytes());
        bytes.extend([0x01, 0x01, 0x11, 0x00]);
        bytes
    }

    #[test]
    fn recognises_pngs_and_jpegs_by_their_bytes() {
        let png = Logo::parse(png_header(200, 60)).unwrap();
        assert_eq!(
            (png.format, png.width_px, png.height_px),
            (ImageFormat::Png, 200, 60)
        );
        let jpeg = Logo::parse(jpeg_header(120, 40)).unwrap();
        assert_eq!(
            (jpeg.format, jpeg.width_px, jpeg.height_px),
            (ImageFormat::Jpeg, 120, 40)
        );
        assert_eq!(jpeg.format.content_type(), "image/jpeg");
    }

    #[test]
    fn refuses_what_is_not_a_small_logo() {
        let svg = b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec();
        assert_eq!(Logo::parse(svg), Err(LogoError::Svg));
        assert_eq!(
            Logo::parse(b"GIF89a....".to_vec()),
            Err(LogoError::UnknownFormat)
        );
        assert_eq!(
            Logo::parse(vec![0; MAX_LOGO_BYTES + 1]),
            Err(LogoError::TooLarge(MAX_LOGO_BYTES + 1))
        );
        assert_eq!(
            Logo::parse(png_header(4000, 60)),
            Err(LogoError::Size(4000, 60))
        );
        assert_eq!(Logo::parse(png_header(8, 8)), Err(LogoError::Size(8, 8)));
        let mut truncated = png_header(200, 60);
        truncated.truncate(18);
        assert!(matches!(
            Logo::parse(truncated),
            Err(LogoError::Damaged("PNG", _))
        ));
        let mut no_frame = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02];
        no_frame.extend([0; 8]);
        assert!(matches!(
            Logo::parse(no_frame),
            Err(LogoError::Damaged("JPEG", _))
        ));
        assert!(matches!(
            Logo::parse(vec![0xFF, 0xD8, 0xFF]),
            Err(LogoError::Damaged("JPEG", _))
        ));
    }

    #[test]
    fn debug_shows_no_bytes() {
        let logo = Logo::parse(png_header(200, 60)).unwrap();
        assert_eq!(format!("{logo:?}"), "Logo(Png, 200×60 px, 33 bytes)");
    }
}
