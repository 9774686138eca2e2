//! CIFAR-style augmentation (utils.py `_data_transforms_cifar10/100` and `Cutout`): RandomCrop(size,
//! padding=4) with zero padding, RandomHorizontalFlip(p=0.5), ToTensor, Normalize, then optionally
//! Cutout(length) on the normalised tensor. Crop, flip and normalisation are fused into one pass from
//! the u8 source image to the f32 output slice; the random draws of a whole batch are made first, from
//! the batch's own generator, so images can then be processed in parallel with identical results.

use rand::Rng;
use rayon::prelude::*;

use super::kind::Normalization;

/// Settings of the training augmentation.
#[derive(Debug, Clone, PartialEq)]
pub struct CifarAugment {
    /// Zero padding on each side before the random crop (reference: 4). 0 disables cropping.
    pub padding: usize,
    /// Mirror left-right with probability 0.5.
    pub flip: bool,
    /// Cutout side length (reference: 16 when `--cutout`), applied after normalisation.
    pub cutout: Option<usize>,
}

impl Default for CifarAugment {
    fn default() -> Self {
        CifarAugment { padding: 4, flip: true, cutout: None }
    }
}

/// The random choices for one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AugmentDraw {
    /// Top-left corner of the crop in the padded image, each in `0..=2 * padding`.
    pub top: usize,
    pub left: usize,
    pub flip: bool,
    /// Cutout centre `(y, x)`, uniform over the image.
    pub cutout_center: Option<(usize, usize)>,
}

impl CifarAugment {
    /// Draws the parameters of one image of `height x width`, in the reference's order (crop, flip,
    /// cutout centre y then x).
    pub fn draw<R: Rng>(&self, rng: &mut R, height: usize, width: usize) -> AugmentDraw {
        let top = if self.padding > 0 { rng.random_range(0..=2 * self.padding) } else { 0 };
        let left = if self.padding > 0 { rng.random_range(0..=2 * self.padding) } else { 0 };
        let flip = self.flip && rng.random_bool(0.5);
        let cutout_center = self.cutout.map(|_| (rng.random_range(0..height), rng.random_range(0..width)));
        AugmentDraw { top, left, flip, cutout_center }
    }

    /// Augments one `[C, H, W]` u8 image into `out` (normalised f32, same shape).
    pub fn apply(
        &self,
        src: &[u8],
        shape: [usize; 3],
        tables: &[[f32; 256]],
        draw: &AugmentDraw,
        out: &mut [f32],
    ) {
        crop_flip_normalize(src, shape, tables, self.padding, draw.top, draw.left, draw.flip, out);
        if let (Some(length), Some(center)) = (self.cutout, draw.cutout_center) {
            cutout(out, shape, center, length);
        }
    }

    /// Augments a batch: `draws[i]` applies to `images[i]`, written to the i-th image slot of `out`.
    /// Parallel over images (rayon), results independent of the thread count.
    pub fn apply_batch(
        &self,
        images: &[&[u8]],
        shape: [usize; 3],
        tables: &[[f32; 256]],
        draws: &[AugmentDraw],
        out: &mut [f32],
    ) {
        let image_len: usize = shape.iter().product();
        out.par_chunks_mut(image_len)
            .zip(images.par_iter().zip(draws.par_iter()))
            .for_each(|(slot, (src, draw))| self.apply(src, shape, tables, draw, slot));
    }
}

/// Writes the normalised crop of the zero-padded image, mirrored if `flip`: output pixel `(y, x)` is the
/// padded image's pixel `(y + top, x' + left)` with `x' = x` or `W - 1 - x`. Pixels from the padding are
/// u8 zero, i.e. `tables[c][0]` after normalisation, exactly as torchvision pads the PIL image first.
#[allow(clippy::too_many_arguments)]
pub fn crop_flip_normalize(
    src: &[u8],
    shape: [usize; 3],
    tables: &[[f32; 256]],
    padding: usize,
    top: usize,
    left: usize,
    flip: bool,
    out: &mut [f32],
) {
    let [channels, height, width] = shape;
    let dy = top as isize - padding as isize;
    let dx = left as isize - padding as isize;
    // Output columns whose source column lies inside the image; the rest come from the padding.
    let (x_lo, x_hi) = if flip {
        (dx.clamp(0, width as isize) as usize, (width as isize + dx).clamp(0, width as isize) as usize)
    } else {
        ((-dx).clamp(0, width as isize) as usize, (width as isize - dx).clamp(0, width as isize) as usize)
    };
    for c in 0..channels {
        let table = &tables[c];
        let zero = table[0];
        let plane = &src[c * height * width..(c + 1) * height * width];
        let out_plane = &mut out[c * height * width..(c + 1) * height * width];
        for (y, out_row) in out_plane.chunks_exact_mut(width).enumerate() {
            let sy = y as isize + dy;
            if sy < 0 || sy >= height as isize || x_lo >= x_hi {
                out_row.fill(zero);
                continue;
            }
            let src_row = &plane[sy as usize * width..(sy as usize + 1) * width];
            out_row[..x_lo].fill(zero);
            out_row[x_hi..].fill(zero);
            if flip {
                // x in [x_lo, x_hi) reads column W - 1 - x + dx, walking the source row backwards.
                let start = (width as isize - 1 - x_lo as isize + dx) as usize;
                for (k, slot) in out_row[x_lo..x_hi].iter_mut().enumerate() {
                    *slot = table[src_row[start - k] as usize];
                }
            } else {
                let start = (x_lo as isize + dx) as usize;
                let src_part = &src_row[start..start + (x_hi - x_lo)];
                for (slot, &v) in out_row[x_lo..x_hi].iter_mut().zip(src_part) {
                    *slot = table[v as usize];
                }
            }
        }
    }
}

/// ToTensor + Normalize of one `[C, H, W]` u8 image (the reference's evaluation transform).
pub fn normalize_into(src: &[u8], shape: [usize; 3], tables: &[[f32; 256]], out: &mut [f32]) {
    let plane_len = shape[1] * shape[2];
    for (c, (out_plane, plane)) in
        out.chunks_exact_mut(plane_len).zip(src.chunks_exact(plane_len)).enumerate()
    {
        let table = &tables[c];
        for (slot, &v) in out_plane.iter_mut().zip(plane) {
            *slot = table[v as usize];
        }
    }
}

/// Normalises a batch of images in parallel.
pub fn normalize_batch(images: &[&[u8]], shape: [usize; 3], tables: &[[f32; 256]], out: &mut [f32]) {
    let image_len: usize = shape.iter().product();
    out.par_chunks_mut(image_len)
        .zip(images.par_iter())
        .for_each(|(slot, src)| normalize_into(src, shape, tables, slot));
}

/// Zeroes, in every channel, the square `[y - L/2, y + L/2) x [x - L/2, x + L/2)` clipped to the image
/// (utils.py `Cutout`; `L/2` is integer division, as there). Runs after normalisation, so the zeros are
/// zeros of the normalised tensor.
pub fn cutout(out: &mut [f32], shape: [usize; 3], center: (usize, usize), length: usize) {
    let [channels, height, width] = shape;
    let half = length / 2;
    let (y, x) = center;
    let (y1, y2) = (y.saturating_sub(half).min(height), (y + half).min(height));
    let (x1, x2) = (x.saturating_sub(half).min(width), (x + half).min(width));
    for c in 0..channels {
        for row in y1..y2 {
            let base = (c * height + row) * width;
            out[base + x1..base + x2].fill(0.0);
        }
    }
}

/// Convenience for a caller holding a [`Normalization`]: the tables once, then [`normalize_into`].
pub fn normalize_image(src: &[u8], shape: [usize; 3], norm: &Normalization) -> Vec<f32> {
    let mut out = vec![0f32; src.len()];
    normalize_into(src, shape, &norm.lookup_tables(), &mut out);
    out
}
