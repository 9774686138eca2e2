//! Image files to 8-bit RGB as torchvision's loader gets them (`PIL.Image.open(f).convert("RGB")`):
//! JPEG through libjpeg-turbo with the decoder settings Pillow uses (its defaults: accurate integer
//! IDCT, smooth "fancy" chroma upsampling), so that the pixels are Pillow's to the bit; PNG and the
//! rest through the `image` crate (lossless formats decode the same everywhere). Grey images are
//! replicated into three channels and alpha is dropped, as `.convert("RGB")` does.

use image::RgbImage;
use turbojpeg::{Decompressor, Image, PixelFormat};

/// The start of every JPEG file (SOI marker and the next marker's prefix).
const JPEG_MAGIC: [u8; 3] = [0xFF, 0xD8, 0xFF];

/// Decodes `bytes` to RGB; the error says what went wrong in words.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    if bytes.starts_with(&JPEG_MAGIC) {
        match decode_jpeg(bytes) {
            Ok(image) => return Ok(image),
            // CMYK and other colour spaces libjpeg-turbo cannot turn into RGB.
            Err(JpegError::Colorspace) => {}
            Err(JpegError::Other(reason)) => return Err(reason),
        }
    }
    image::load_from_memory(bytes).map(|image| image.into_rgb8()).map_err(|e| e.to_string())
}

enum JpegError {
    Colorspace,
    Other(String),
}

fn decode_jpeg(bytes: &[u8]) -> Result<RgbImage, JpegError> {
    let other = |e: turbojpeg::Error| JpegError::Other(e.to_string());
    let mut decompressor = Decompressor::new().map_err(other)?;
    let header = decompressor.read_header(bytes).map_err(other)?;
    if matches!(header.colorspace, turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK) {
        return Err(JpegError::Colorspace);
    }
    let (width, height) = (header.width, header.height);
    let mut image = Image {
        pixels: vec![0u8; 3 * width * height],
        width,
        pitch: 3 * width,
        height,
        format: PixelFormat::RGB,
    };
    decompressor.decompress(bytes, image.as_deref_mut()).map_err(other)?;
    RgbImage::from_raw(width as u32, height as u32, image.pixels)
        .ok_or_else(|| JpegError::Other(format!("{width}x{height} pixels do not fit an RGB image")))
}
