//! Pillow's bilinear resize (`Image.resize(size, Image.BILINEAR)`, what torchvision's `Resize`
//! does to a PIL image), to the bit: a separable, antialiased triangle filter whose support grows
//! with the downscaling factor, coefficients normalised per output pixel and rounded to 22-bit
//! fixed point, the horizontal pass first with its result rounded to 8 bits, then the vertical
//! pass. Written from the algorithm's description, for 8-bit RGB.

use image::RgbImage;

/// Fraction bits of the fixed-point coefficients (32 bits less 8 of pixel value and 2 of sum).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The triangle ("bilinear") filter and its support at scale 1.
fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}
const SUPPORT: f64 = 1.0;

/// For each output position: the first input index, and the fixed-point weights of the inputs
/// from there on.
struct Taps {
    first: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// Taps mapping `in_size` inputs onto `out_size` outputs.
fn taps(in_size: usize, out_size: usize) -> Taps {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    let support = SUPPORT * filter_scale;
    let inv = 1.0 / filter_scale;
    let mut first = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for out in 0..out_size {
        let center = (out as f64 + 0.5) * scale;
        // C's (int) truncates toward zero; negatives are clamped to 0 anyway.
        let lo = ((center - support + 0.5) as i64).max(0) as usize;
        let hi = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let raw: Vec<f64> = (lo..hi).map(|x| triangle((x as f64 - center + 0.5) * inv)).collect();
        let total: f64 = raw.iter().sum();
        let fixed = raw
            .iter()
            .map(|&w| {
                let w = if total != 0.0 { w / total } else { w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                (if w < 0.0 { scaled - 0.5 } else { scaled + 0.5 }) as i32
            })
            .collect();
        first.push(lo);
        weights.push(fixed);
    }
    Taps { first, weights }
}

/// A fixed-point sum back to a byte: rounded (the half is added up front), clamped.
fn to_byte(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i64 = 1 << (PRECISION_BITS - 1);

fn resize_horizontal(src: &RgbImage, width: u32) -> RgbImage {
    let (in_w, h) = (src.width() as usize, src.height() as usize);
    let t = taps(in_w, width as usize);
    let raw = src.as_raw();
    let mut out = vec![0u8; width as usize * h * 3];
    for (row, out_row) in raw.chunks_exact(in_w * 3).zip(out.chunks_exact_mut(width as usize * 3)) {
        for ((first, weights), pixel) in t.first.iter().zip(&t.weights).zip(out_row.chunks_exact_mut(3)) {
            let window = &row[first * 3..(first + weights.len()) * 3];
            let mut sums = [HALF; 3];
            for (src, &w) in window.chunks_exact(3).zip(weights) {
                for (sum, &v) in sums.iter_mut().zip(src) {
                    *sum += i64::from(v) * i64::from(w);
                }
            }
            for (slot, sum) in pixel.iter_mut().zip(sums) {
                *slot = to_byte(sum);
            }
        }
    }
    RgbImage::from_raw(width, h as u32, out).expect("sized to fit")
}

fn resize_vertical(src: &RgbImage, height: u32) -> RgbImage {
    let (w, in_h) = (src.width() as usize, src.height() as usize);
    let t = taps(in_h, height as usize);
    let raw = src.as_raw();
    let mut out = vec![0u8; w * height as usize * 3];
    let row_len = w * 3;
    // One output row at a time, accumulated input row by input row (contiguous memory).
    let mut sums = vec![0i64; row_len];
    for ((first, weights), out_row) in t.first.iter().zip(&t.weights).zip(out.chunks_exact_mut(row_len)) {
        sums.fill(HALF);
        for (k, &wt) in weights.iter().enumerate() {
            let src = &raw[(first + k) * row_len..(first + k + 1) * row_len];
            for (sum, &v) in sums.iter_mut().zip(src) {
                *sum += i64::from(v) * i64::from(wt);
            }
        }
        for (slot, &sum) in out_row.iter_mut().zip(&sums) {
            *slot = to_byte(sum);
        }
    }
    RgbImage::from_raw(w as u32, height, out).expect("sized to fit")
}

/// `image` resized to `width` x `height` as Pillow's `resize(..., BILINEAR)`.
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let horizontal = image.width() != width;
    let vertical = image.height() != height;
    match (horizontal, vertical) {
        (false, false) => image.clone(),
        (true, false) => resize_horizontal(image, width),
        (false, true) => resize_vertical(image, height),
        (true, true) => resize_vertical(&resize_horizontal(image, width), height),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point_and_cover_the_filter() {
        for (input, output) in [(500, 256), (256, 256), (100, 256), (333, 7)] {
            let t = taps(input, output);
            for (first, weights) in t.first.iter().zip(&t.weights) {
                let sum: i64 = weights.iter().map(|&w| i64::from(w)).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= weights.len() as i64, "{input}->{output}");
                assert!(first + weights.len() <= input);
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat_and_the_size_is_exact() {
        let image = RgbImage::from_pixel(37, 23, image::Rgb([10, 128, 250]));
        let resized = resize_bilinear(&image, 11, 64);
        assert_eq!(resized.dimensions(), (11, 64));
        assert!(resized.pixels().all(|p| p.0 == [10, 128, 250]));
    }
}
