//! Sniff, decode under limits, crop, resize, re-encode.
use std::io::Cursor;

use fast_image_resize as fir;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};
use sha2::{Digest, Sha256};

/// The sizes stored, largest first: the large one is the organization's `avatarUrl`.
pub const SIZES: [u32; 2] = [512, 128];

/// The quality of the stored JPEGs (1–100).
const JPEG_QUALITY: u8 = 85;

/// What an upload may be and cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest file taken, in bytes.
    pub max_bytes: usize,
    /// Largest width and height, each, in pixels.
    pub max_dimension: u32,
    /// Most memory the decoder may allocate, in bytes.
    pub max_decoded_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 5 * 1024 * 1024,
            max_dimension: 4096,
            // A 4096 × 4096 RGBA image, 8 bits a channel.
            max_decoded_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The formats taken, as the bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFormat {
    Png,
    Jpeg,
    WebP,
    Gif,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::WebP => "webp",
            Self::Gif => "gif",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Self::Png => ImageFormat::Png,
            Self::Jpeg => ImageFormat::Jpeg,
            Self::WebP => ImageFormat::WebP,
            Self::Gif => ImageFormat::Gif,
        }
    }
}

/// Why an upload is refused. Each maps to one HTTP status (see the API).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AvatarError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is larger than {max} bytes")]
    TooLarge { max: usize },
    /// Not PNG, JPEG, WebP or GIF, by its bytes (SVG, HTML, PDF, text, …).
    #[error("the file is not a PNG, JPEG, WebP or GIF image")]
    UnsupportedType,
    #[error("the image is {width} × {height} pixels; at most {max} × {max} are taken")]
    TooManyPixels { width: u32, height: u32, max: u32 },
    /// Corrupt, truncated, or beyond the decoder's memory limit.
    #[error("the image cannot be used: {0}")]
    Undecodable(String),
}

/// An upload, re-encoded.
#[derive(Clone)]
pub struct Processed {
    /// Hex SHA-256 (first 128 bits) of the large file: the name of every size.
    pub hash: String,
    /// One encoded JPEG per entry of [`SIZES`], in that order.
    pub files: Vec<(u32, Vec<u8>)>,
    pub source_format: SourceFormat,
    pub source_width: u32,
    pub source_height: u32,
}

/// The type, from the first bytes only; the declared content type and file name play no part.
pub fn sniff(bytes: &[u8]) -> Result<SourceFormat, AvatarError> {
    if bytes.is_empty() {
        return Err(AvatarError::Empty);
    }
    // `guess_format` reads magic numbers; the formats this crate was not built with (BMP, TIFF,
    // AVIF, …) are refused here as a type, before any decoder sees them.
    match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => Ok(SourceFormat::Png),
        Ok(ImageFormat::Jpeg) => Ok(SourceFormat::Jpeg),
        Ok(ImageFormat::WebP) => Ok(SourceFormat::WebP),
        Ok(ImageFormat::Gif) => Ok(SourceFormat::Gif),
        _ => Err(AvatarError::UnsupportedType),
    }
}

/// The whole path from untrusted bytes to the files to store. CPU-bound: run it off the async
/// threads.
pub fn process(bytes: &[u8], limits: &Limits) -> Result<Processed, AvatarError> {
    if bytes.len() > limits.max_bytes {
        return Err(AvatarError::TooLarge {
            max: limits.max_bytes,
        });
    }
    let format = sniff(bytes)?;
    let (image, orientation, width, height) = decode(bytes, format, limits)?;
    let mut files = Vec::with_capacity(SIZES.len());
    let mut previous = normalize(image);
    for (i, size) in SIZES.into_iter().enumerate() {
        let mut resized = square(&previous, size)?;
        if i == 0 {
            // Phone photos are stored sideways with an EXIF orientation; the metadata goes, so
            // its turn is applied to the pixels. A centred square crop commutes with every
            // orientation (turns and mirrors), so it is applied to the small square, not to a
            // full-size copy.
            if let Some(o) = orientation {
                resized.apply_orientation(o);
            }
        }
        files.push((size, encode_jpeg(&resized)?));
        previous = resized;
    }
    let digest = Sha256::digest(&files[0].1);
    let hash = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Ok(Processed {
        hash,
        files,
        source_format: format,
        source_width: width,
        source_height: height,
    })
}

impl std::fmt::Debug for Processed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sizes: Vec<(u32, usize)> = self.files.iter().map(|(s, b)| (*s, b.len())).collect();
        f.debug_struct("Processed")
            .field("hash", &self.hash)
            .field("files", &sizes)
            .field("source_format", &self.source_format)
            .field("source", &(self.source_width, self.source_height))
            .finish()
    }
}

/// The type and size of an upload, from its header alone (no pixel is decoded): what
/// [`peak_memory`] needs to admit a decode before it starts.
pub fn probe(bytes: &[u8], limits: &Limits) -> Result<(SourceFormat, u32, u32), AvatarError> {
    if bytes.len() > limits.max_bytes {
        return Err(AvatarError::TooLarge {
            max: limits.max_bytes,
        });
    }
    let format = sniff(bytes)?;
    let decoder = decoder(bytes, format, limits)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    Ok((format, width, height))
}

/// A bound on what decoding and resizing a `width` × `height` image takes at its peak, in bytes:
/// the pixels (up to 4 bytes each), the decoder's own working buffers (a progressive JPEG keeps
/// 16-bit coefficients for three components; WebP a canvas and a frame), and the square crop.
/// image's memory limit reaches only the final buffer, not the decoders' working memory, so
/// the API admits decodes against a budget of this estimate.
pub fn peak_memory(format: SourceFormat, width: u32, height: u32) -> u64 {
    let px = u64::from(width) * u64::from(height);
    let working = match format {
        SourceFormat::Jpeg => 6 * px,
        SourceFormat::WebP => 8 * px,
        SourceFormat::Png | SourceFormat::Gif => px,
    };
    // Pixels, the crop's copy, the working buffers, and the resize's intermediate rows.
    4 * px + 4 * px + working + 16 * 1024 * u64::from(width.max(height))
}

fn check_dimensions(width: u32, height: u32, limits: &Limits) -> Result<(), AvatarError> {
    if width == 0 || height == 0 {
        return Err(AvatarError::Undecodable("the image has no pixels".into()));
    }
    if width > limits.max_dimension || height > limits.max_dimension {
        return Err(AvatarError::TooManyPixels {
            width,
            height,
            max: limits.max_dimension,
        });
    }
    Ok(())
}

fn decoder<'a>(
    bytes: &'a [u8],
    format: SourceFormat,
    limits: &Limits,
) -> Result<impl ImageDecoder + 'a, AvatarError> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(format.image_format());
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_dimension);
    decoder_limits.max_image_height = Some(limits.max_dimension);
    decoder_limits.max_alloc = Some(limits.max_decoded_bytes);
    reader.limits(decoder_limits);
    // The header is read and the limits are applied here, before a pixel buffer exists.
    reader.into_decoder().map_err(|e| refusal(e, limits))
}

type Decoded = (DynamicImage, Option<image::metadata::Orientation>, u32, u32);

fn decode(bytes: &[u8], format: SourceFormat, limits: &Limits) -> Result<Decoded, AvatarError> {
    let mut decoder = decoder(bytes, format, limits)?;
    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    // `into_decoder` applies the dimension limits but leaves the pixel buffer to the caller:
    // its size is known from the header, so it is checked here, before it is allocated.
    if decoder.total_bytes() > limits.max_decoded_bytes {
        return Err(too_much_memory(limits));
    }
    if format == SourceFormat::Jpeg && !jpeg_is_complete(bytes) {
        // zune-jpeg fills a cut-off scan with grey rather than failing.
        return Err(AvatarError::Undecodable(
            "the JPEG data is truncated".into(),
        ));
    }
    let orientation = decoder.orientation().ok();
    // For an animated GIF or WebP this is the first frame.
    let image = DynamicImage::from_decoder(decoder).map_err(|e| refusal(e, limits))?;
    Ok((image, orientation, width, height))
}

fn refusal(e: image::ImageError, limits: &Limits) -> AvatarError {
    use image::error::{ImageError, LimitErrorKind};
    match e {
        ImageError::Limits(l) => match l.kind() {
            LimitErrorKind::DimensionError => AvatarError::TooManyPixels {
                width: 0,
                height: 0,
                max: limits.max_dimension,
            },
            _ => too_much_memory(limits),
        },
        ImageError::Unsupported(_) => AvatarError::UnsupportedType,
        // The decoder's own words: about the file, never about us.
        other => AvatarError::Undecodable(other.to_string()),
    }
}

fn too_much_memory(limits: &Limits) -> AvatarError {
    AvatarError::Undecodable(format!(
        "decoding it would take more than {} MiB",
        limits.max_decoded_bytes / (1024 * 1024)
    ))
}

/// Whether a JPEG's segments lead to a scan that ends in an end-of-image marker. Walks the
/// marker segments by their lengths (so an EXIF thumbnail's own end marker does not count),
/// then the entropy-coded data, where `FF` is always followed by `00` (stuffing) or a restart
/// marker until the scan ends.
fn jpeg_is_complete(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    loop {
        // Markers may be padded with extra FF bytes.
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(&0xFF), Some(&marker)) = (b.get(i), b.get(i + 1)) else {
            return false;
        };
        i += 2;
        match marker {
            0xD9 => return true,
            0xD0..=0xD7 | 0x01 => continue,
            _ => {}
        }
        let Some(len) = b
            .get(i..i + 2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            return false;
        };
        if len < 2 {
            return false;
        }
        i += len;
        if marker == 0xDA {
            // Entropy-coded data up to the next marker that is not stuffing or a restart.
            loop {
                let Some(at) = b
                    .get(i..)
                    .and_then(|rest| rest.iter().position(|&x| x == 0xFF))
                else {
                    return false;
                };
                i += at;
                match b.get(i + 1) {
                    None => return false,
                    Some(0x00) | Some(0xD0..=0xD7) | Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

/// 8 bits a channel, with alpha only when there is some: what the resizer and the encoder take.
fn normalize(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => image,
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

/// The centred square of `src`, resized to `size` × `size` with Lanczos3 (SIMD, through
/// fast_image_resize: the crop is a view, not a copy; alpha is premultiplied while resizing).
fn square(src: &DynamicImage, size: u32) -> Result<DynamicImage, AvatarError> {
    let (w, h) = (src.width(), src.height());
    let side = w.min(h);
    let mut dst = DynamicImage::new(size, size, src.color());
    let options = fir::ResizeOptions::new()
        .resize_alg(fir::ResizeAlg::Convolution(fir::FilterType::Lanczos3))
        .crop(
            f64::from((w - side) / 2),
            f64::from((h - side) / 2),
            f64::from(side),
            f64::from(side),
        );
    fir::Resizer::new()
        .resize(src, &mut dst, &options)
        .map_err(|e| AvatarError::Undecodable(format!("resizing failed: {e}")))?;
    Ok(dst)
}

/// JPEG at quality 85: a 512-pixel photo is tens of kilobytes, where PNG took hundreds (and
/// serving it was bound by copying those bytes). Transparency is composited onto white. The
/// encoder writes a JFIF header, the tables and the scan: no EXIF, ICC profile or comment.
fn encode_jpeg(image: &DynamicImage) -> Result<Vec<u8>, AvatarError> {
    let rgb = if image.color().has_alpha() {
        let rgba = image.to_rgba8();
        image::RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            let [r, g, b, a] = rgba.get_pixel(x, y).0;
            let over_white = |c: u8| {
                let (c, a) = (u16::from(c), u16::from(a));
                ((c * a + 255 * (255 - a) + 127) / 255) as u8
            };
            image::Rgb([over_white(r), over_white(g), over_white(b)])
        })
    } else {
        image.to_rgb8()
    };
    let mut out = Vec::with_capacity(64 * 1024);
    let width =
        u16::try_from(rgb.width()).map_err(|_| AvatarError::Undecodable("too wide".into()))?;
    let height =
        u16::try_from(rgb.height()).map_err(|_| AvatarError::Undecodable("too tall".into()))?;
    jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY)
        .encode(rgb.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| AvatarError::Undecodable(format!("re-encoding failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_ignores_everything_but_the_bytes() {
        assert_eq!(sniff(b""), Err(AvatarError::Empty));
        assert_eq!(sniff(b"<svg xmlns="), Err(AvatarError::UnsupportedType));
        assert_eq!(sniff(b"%PDF-1.7"), Err(AvatarError::UnsupportedType));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n"), Ok(SourceFormat::Png));
        assert_eq!(sniff(b"GIF89a"), Ok(SourceFormat::Gif));
    }
}
