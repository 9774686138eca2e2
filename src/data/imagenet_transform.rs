//! ImageNet preprocessing of train_imagenet.py / test_imagenet.py, on decoded RGB images:
//! train = RandomResizedCrop(224) (scale 0.08-1, ratio 3/4-4/3, torchvision's sampling with ten tries and
//! a centre-crop fallback), RandomHorizontalFlip, ColorJitter(0.4, 0.4, 0.4, 0.2) in a random order,
//! ToTensor, Normalize; eval = Resize(256) on the shorter side, CenterCrop(224), ToTensor, Normalize.
//! Resizing is Pillow's bilinear filter to the bit ([`super::pil_resize`]), so that with Pillow's
//! JPEG decoding ([`super::decode`]) the evaluation input is torchvision's exactly.

use image::imageops;
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;

use super::kind::Normalization;
use super::pil_resize::resize_bilinear;

/// Settings of the ImageNet transforms.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageNetTransform {
    /// Side of the square network input (224).
    pub crop: u32,
    /// Shorter side after the evaluation resize (256).
    pub resize: u32,
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
    pub hue: f32,
}

impl Default for ImageNetTransform {
    fn default() -> Self {
        ImageNetTransform {
            crop: 224,
            resize: 256,
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            hue: 0.2,
        }
    }
}

/// A crop rectangle `(top, left, height, width)` in pixels.
pub type CropBox = (u32, u32, u32, u32);

impl ImageNetTransform {
    /// torchvision `RandomResizedCrop.get_params`: ten tries of area fraction ~ U(scale) and log-ratio ~
    /// U(log ratio); if none fits, the centre crop of the whole image clamped to the ratio range.
    /// Sizes are rounded as Python's `round` does (half to even).
    pub fn random_resized_crop_box<R: Rng>(&self, rng: &mut R, height: u32, width: u32) -> CropBox {
        let area = f64::from(height) * f64::from(width);
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target_area = area * rng.random_range(self.scale.0..=self.scale.1);
            let aspect = rng.random_range(log_lo..=log_hi).exp();
            let w = (target_area * aspect).sqrt().round_ties_even() as u32;
            let h = (target_area / aspect).sqrt().round_ties_even() as u32;
            if w > 0 && h > 0 && w <= width && h <= height {
                let top = rng.random_range(0..=height - h);
                let left = rng.random_range(0..=width - w);
                return (top, left, h, w);
            }
        }
        let in_ratio = f64::from(width) / f64::from(height);
        let (h, w) = if in_ratio < self.ratio.0 {
            (((f64::from(width) / self.ratio.0).round_ties_even() as u32).min(height), width)
        } else if in_ratio > self.ratio.1 {
            (height, ((f64::from(height) * self.ratio.1).round_ties_even() as u32).min(width))
        } else {
            (height, width)
        };
        ((height - h) / 2, (width - w) / 2, h, w)
    }

    /// The training transform of one image into `out` (`[3, crop, crop]`, normalised).
    pub fn train_into<R: Rng>(&self, image: &RgbImage, rng: &mut R, norm: &Normalization, out: &mut [f32]) {
        let (top, left, h, w) = self.random_resized_crop_box(rng, image.height(), image.width());
        let cropped = imageops::crop_imm(image, left, top, w, h).to_image();
        let mut resized = resize_bilinear(&cropped, self.crop, self.crop);
        if rng.random_bool(0.5) {
            imageops::flip_horizontal_in_place(&mut resized);
        }
        let mut rgb = to_unit_hwc(&resized);
        self.color_jitter(&mut rgb, rng);
        hwc_to_normalized_chw(&rgb, self.crop as usize, self.crop as usize, norm, out);
    }

    /// The evaluation transform of one image into `out` (`[3, crop, crop]`, normalised).
    pub fn eval_into(&self, image: &RgbImage, norm: &Normalization, out: &mut [f32]) {
        let cropped = self.eval_crop(image);
        let rgb = to_unit_hwc(&cropped);
        hwc_to_normalized_chw(&rgb, cropped.height() as usize, cropped.width() as usize, norm, out);
    }

    /// Resize(resize) then CenterCrop(crop): the 8-bit pixels the evaluation input is made of.
    pub fn eval_crop(&self, image: &RgbImage) -> RgbImage {
        let (width, height) = image.dimensions();
        // torchvision Resize(int): the shorter side becomes `resize`, the longer keeps the aspect ratio
        // (truncated, as `int(size * long / short)` there).
        let (new_w, new_h) = if width <= height {
            (self.resize, (u64::from(self.resize) * u64::from(height) / u64::from(width)) as u32)
        } else {
            ((u64::from(self.resize) * u64::from(width) / u64::from(height)) as u32, self.resize)
        };
        let resized = resize_bilinear(image, new_w, new_h);
        // CenterCrop: offsets as torchvision's `int(round((size - crop) / 2))`, Python rounding half to even.
        let top = ((f64::from(new_h) - f64::from(self.crop)) / 2.0).round_ties_even().max(0.0) as u32;
        let left = ((f64::from(new_w) - f64::from(self.crop)) / 2.0).round_ties_even().max(0.0) as u32;
        imageops::crop_imm(&resized, left, top, self.crop, self.crop).to_image()
    }

    /// torchvision ColorJitter: factors drawn as brightness/contrast/saturation ~ U(1 - v, 1 + v) and
    /// hue ~ U(-h, h), applied in a random permutation order; here on float RGB in [0, 1].
    pub fn color_jitter<R: Rng>(&self, rgb: &mut [f32], rng: &mut R) {
        let mut order = [0usize, 1, 2, 3];
        order.shuffle(rng);
        let factor =
            |rng: &mut R, v: f32| if v > 0.0 { rng.random_range((1.0 - v).max(0.0)..=1.0 + v) } else { 1.0 };
        let b = factor(rng, self.brightness);
        let c = factor(rng, self.contrast);
        let s = factor(rng, self.saturation);
        let h = if self.hue > 0.0 { rng.random_range(-self.hue..=self.hue) } else { 0.0 };
        for op in order {
            match op {
                0 => adjust_brightness(rgb, b),
                1 => adjust_contrast(rgb, c),
                2 => adjust_saturation(rgb, s),
                _ => adjust_hue(rgb, h),
            }
        }
    }
}

fn to_unit_hwc(image: &RgbImage) -> Vec<f32> {
    image.as_raw().iter().map(|&v| f32::from(v) / 255.0).collect()
}

fn hwc_to_normalized_chw(rgb: &[f32], height: usize, width: usize, norm: &Normalization, out: &mut [f32]) {
    let plane = height * width;
    for c in 0..3 {
        let (mean, std) = (norm.mean[c], norm.std[c]);
        for (p, slot) in out[c * plane..(c + 1) * plane].iter_mut().enumerate() {
            *slot = (rgb[p * 3 + c] - mean) / std;
        }
    }
}

fn gray(r: f32, g: f32, b: f32) -> f32 {
    0.299 * r + 0.587 * g + 0.114 * b
}

pub(crate) fn adjust_brightness(rgb: &mut [f32], factor: f32) {
    rgb.iter_mut().for_each(|v| *v = (*v * factor).clamp(0.0, 1.0));
}

/// Blend with the mean grey level of the whole image.
pub(crate) fn adjust_contrast(rgb: &mut [f32], factor: f32) {
    let pixels = (rgb.len() / 3).max(1) as f32;
    let mean = rgb.chunks_exact(3).map(|p| gray(p[0], p[1], p[2])).sum::<f32>() / pixels;
    rgb.iter_mut().for_each(|v| *v = (factor * *v + (1.0 - factor) * mean).clamp(0.0, 1.0));
}

/// Blend each pixel with its own grey level.
pub(crate) fn adjust_saturation(rgb: &mut [f32], factor: f32) {
    for p in rgb.chunks_exact_mut(3) {
        let g = gray(p[0], p[1], p[2]);
        p.iter_mut().for_each(|v| *v = (factor * *v + (1.0 - factor) * g).clamp(0.0, 1.0));
    }
}

/// Rotate the hue by `shift` turns (HSV round trip).
pub(crate) fn adjust_hue(rgb: &mut [f32], shift: f32) {
    if shift == 0.0 {
        return;
    }
    for p in rgb.chunks_exact_mut(3) {
        let (h, s, v) = rgb_to_hsv(p[0], p[1], p[2]);
        let (r, g, b) = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
        p[0] = r;
        p[1] = g;
        p[2] = b;
    }
}

fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let delta = max - min;
    let s = if max > 0.0 { delta / max } else { 0.0 };
    let h = if delta == 0.0 {
        0.0
    } else if max == r {
        ((g - b) / delta).rem_euclid(6.0) / 6.0
    } else if max == g {
        ((b - r) / delta + 2.0) / 6.0
    } else {
        ((r - g) / delta + 4.0) / 6.0
    };
    (h, s, max)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> (f32, f32, f32) {
    let sector = (h * 6.0).floor();
    let f = h * 6.0 - sector;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match (sector as i32).rem_euclid(6) {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn hue_round_trip_is_identity_for_zero_shift_and_full_turn() {
        let original = vec![0.9, 0.2, 0.4, 0.1, 0.7, 0.3, 0.5, 0.5, 0.5];
        let mut turned = original.clone();
        adjust_hue(&mut turned, 1.0);
        for (a, b) in original.iter().zip(&turned) {
            assert!((a - b).abs() < 1e-5, "{original:?} vs {turned:?}");
        }
    }

    #[test]
    fn random_resized_crop_box_stays_inside_the_image() {
        let t = ImageNetTransform::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for (h, w) in [(300, 500), (500, 300), (50, 1000), (224, 224)] {
            for _ in 0..200 {
                let (top, left, ch, cw) = t.random_resized_crop_box(&mut rng, h, w);
                assert!(
                    ch > 0 && cw > 0 && top + ch <= h && left + cw <= w,
                    "{h}x{w}: {top} {left} {ch} {cw}"
                );
            }
        }
    }

    #[test]
    fn eval_transform_outputs_the_centre_crop_of_a_flat_image() {
        let t = ImageNetTransform::default();
        let norm = Normalization::new(&[0.0, 0.0, 0.0], &[1.0, 1.0, 1.0]);
        let image = RgbImage::from_pixel(320, 240, image::Rgb([255, 0, 51]));
        let mut out = vec![0f32; 3 * 224 * 224];
        t.eval_into(&image, &norm, &mut out);
        let plane = 224 * 224;
        assert!(out[..plane].iter().all(|&v| (v - 1.0).abs() < 1e-6));
        assert!(out[plane..2 * plane].iter().all(|&v| v.abs() < 1e-6));
        assert!(out[2 * plane..].iter().all(|&v| (v - 0.2).abs() < 1e-6));
    }

    #[test]
    fn train_transform_is_deterministic_given_the_generator() {
        let t = ImageNetTransform::default();
        let norm = Normalization::new(&[0.5; 3], &[0.25; 3]);
        let image =
            RgbImage::from_fn(64, 48, |x, y| image::Rgb([(x * 3) as u8, (y * 5) as u8, ((x + y) * 2) as u8]));
        let run = |seed| {
            let mut out = vec![0f32; 3 * 224 * 224];
            t.train_into(&image, &mut ChaCha8Rng::seed_from_u64(seed), &norm, &mut out);
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
