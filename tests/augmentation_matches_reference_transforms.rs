//! The fused CIFAR augmentation against naive oracles written the way torchvision does it (pad the u8
//! image with zeros, take the window, mirror, ToTensor, Normalize, then Cutout on the normalised tensor),
//! and the determinism of a batch given `(seed, epoch, batch)`.

use std::sync::Arc;

use evnas::data::augment::{crop_flip_normalize, cutout, AugmentDraw};
use evnas::data::{
    make_batch, BatchSource, CifarAugment, DatasetKind, EpochPlan, InMemoryDataset, InMemorySource,
    Normalization, SplitConfig,
};
use proptest::prelude::*;

/// torchvision order: zero-pad the u8 image, take the window at (top, left), mirror, then normalise.
fn oracle(
    src: &[u8],
    [c, h, w]: [usize; 3],
    padding: usize,
    top: usize,
    left: usize,
    flip: bool,
    norm: &Normalization,
) -> Vec<f32> {
    let (ph, pw) = (h + 2 * padding, w + 2 * padding);
    let mut padded = vec![0u8; c * ph * pw];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                padded[(ch * ph + y + padding) * pw + x + padding] = src[(ch * h + y) * w + x];
            }
        }
    }
    let mut out = vec![0f32; c * h * w];
    for ch in 0..c {
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x };
                let v = padded[(ch * ph + y + top) * pw + sx + left];
                out[(ch * h + y) * w + x] = (f32::from(v) / 255.0 - norm.mean[ch]) / norm.std[ch];
            }
        }
    }
    out
}

fn image(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|i| ((i * 2_654_435_761 + seed * 97) % 256) as u8).collect()
}

proptest! {
    #[test]
    fn crop_and_flip_equal_a_shifted_zero_filled_window(
        h in 1usize..12, w in 1usize..12, padding in 0usize..6, seed in 0u64..1000,
        top_frac in 0.0f64..1.0, left_frac in 0.0f64..1.0, flip: bool,
    ) {
        let shape = [3, h, w];
        let top = (top_frac * (2 * padding + 1) as f64) as usize;
        let left = (left_frac * (2 * padding + 1) as f64) as usize;
        let norm = DatasetKind::Cifar10.normalization();
        let src = image(3 * h * w, seed);
        let mut out = vec![f32::NAN; 3 * h * w];
        crop_flip_normalize(&src, shape, &norm.lookup_tables(), padding, top, left, flip, &mut out);
        prop_assert_eq!(out, oracle(&src, shape, padding, top, left, flip, &norm));
    }

    #[test]
    fn cutout_zeroes_exactly_the_clipped_square(
        h in 1usize..20, w in 1usize..20, length in 0usize..20, cy_frac in 0.0f64..1.0, cx_frac in 0.0f64..1.0,
    ) {
        let (cy, cx) = ((cy_frac * h as f64) as usize, (cx_frac * w as f64) as usize);
        let shape = [2, h, w];
        let mut out = vec![1.5f32; 2 * h * w];
        cutout(&mut out, shape, (cy, cx), length);
        // Reference: y1 = clip(y - L//2, 0, h), y2 = clip(y + L//2, 0, h), same for x.
        let half = (length / 2) as isize;
        let clip = |v: isize, hi: usize| v.clamp(0, hi as isize) as usize;
        let (y1, y2) = (clip(cy as isize - half, h), clip(cy as isize + half, h));
        let (x1, x2) = (clip(cx as isize - half, w), clip(cx as isize + half, w));
        for c in 0..2 {
            for y in 0..h {
                for x in 0..w {
                    let inside = (y1..y2).contains(&y) && (x1..x2).contains(&x);
                    prop_assert_eq!(out[(c * h + y) * w + x], if inside { 0.0 } else { 1.5 });
                }
            }
        }
    }
}

#[test]
fn flip_is_a_mirror_of_the_unflipped_crop() {
    let shape = [3, 32, 32];
    let tables = DatasetKind::Cifar10.normalization().lookup_tables();
    let src = image(3072, 5);
    let mut plain = vec![0f32; 3072];
    let mut mirrored = vec![0f32; 3072];
    crop_flip_normalize(&src, shape, &tables, 4, 2, 7, false, &mut plain);
    crop_flip_normalize(&src, shape, &tables, 4, 2, 7, true, &mut mirrored);
    // torchvision crops first, then flips: flip(crop(left)) mirrors the window itself.
    for row in 0..3 * 32 {
        let flipped = &mirrored[row * 32..(row + 1) * 32];
        let window = &plain[row * 32..(row + 1) * 32];
        assert!(flipped.iter().eq(window.iter().rev()), "row {row}");
    }
}

#[test]
fn centred_crop_without_flip_is_plain_normalisation() {
    let shape = [3, 32, 32];
    let norm = DatasetKind::Cifar100.normalization();
    let src = image(3072, 9);
    let mut out = vec![0f32; 3072];
    crop_flip_normalize(&src, shape, &norm.lookup_tables(), 4, 4, 4, false, &mut out);
    assert_eq!(out, evnas::data::augment::normalize_image(&src, shape, &norm));
    assert_eq!(out[0], (f32::from(src[0]) / 255.0 - 0.5071) / 0.2675);
}

fn tiny_dataset(n: usize) -> Arc<InMemoryDataset> {
    let pixels = image(n * 3 * 8 * 8, 1);
    let labels = (0..n as i64).map(|i| i % 10).collect();
    Arc::new(InMemoryDataset::new(pixels, labels, [3, 8, 8], 10).unwrap())
}

#[test]
fn a_batch_is_the_same_whatever_the_thread_count() {
    let augment = CifarAugment { padding: 4, flip: true, cutout: Some(4) };
    let source =
        InMemorySource::new(tiny_dataset(40), &DatasetKind::Cifar10.normalization(), Some(augment)).unwrap();
    let plan = EpochPlan::shuffled(&(0..40).collect::<Vec<_>>(), 16, 11, 3).unwrap();
    let in_pool = |threads| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| make_batch(&source, &plan, 1, false).unwrap())
    };
    let (one, two) = (in_pool(1), in_pool(2));
    assert!(one.images.equal(&two.images));
    assert!(one.labels.equal(&two.labels));
    // A different batch position or epoch draws differently.
    let other_epoch = EpochPlan::shuffled(&(0..40).collect::<Vec<_>>(), 16, 11, 4).unwrap();
    let again = make_batch(&source, &plan, 1, false).unwrap();
    assert!(again.images.equal(&one.images));
    let mut a = vec![0f32; 16 * 192];
    let mut b = vec![0f32; 16 * 192];
    let mut labels = vec![0i64; 16];
    source.fill(plan.batch(1), plan.augment_seed(1), &mut a, &mut labels).unwrap();
    source.fill(plan.batch(1), other_epoch.augment_seed(1), &mut b, &mut labels).unwrap();
    assert_ne!(a, b);
}

#[test]
fn draws_stay_in_range_and_flip_about_half_the_time() {
    use rand::SeedableRng;
    let augment = CifarAugment { padding: 4, flip: true, cutout: Some(16) };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let draws: Vec<AugmentDraw> = (0..4000).map(|_| augment.draw(&mut rng, 32, 32)).collect();
    assert!(draws.iter().all(|d| d.top <= 8 && d.left <= 8));
    assert!(draws.iter().all(|d| d.cutout_center.is_some_and(|(y, x)| y < 32 && x < 32)));
    let flips = draws.iter().filter(|d| d.flip).count();
    assert!((1800..2200).contains(&flips), "{flips}");
    assert!(draws.iter().any(|d| d.top == 0) && draws.iter().any(|d| d.top == 8));
}

#[test]
fn split_is_disjoint_complete_and_deterministic() {
    let config = SplitConfig { train_portion: 0.5, shuffle: true, seed: 42 };
    let split = config.split(1001).unwrap();
    assert_eq!((split.train.len(), split.valid.len()), (500, 501));
    let mut all: Vec<usize> = split.train.iter().chain(&split.valid).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1001).collect::<Vec<_>>());
    assert_eq!(config.split(1001).unwrap(), split);
    assert_ne!(SplitConfig { seed: 43, ..config }.split(1001).unwrap(), split);
    assert_ne!(split.train, (0..500).collect::<Vec<_>>());
    // The reference's split: first part for training, in index order.
    let reference = SplitConfig { shuffle: false, ..config }.split(10).unwrap();
    assert_eq!((reference.train, reference.valid), ((0..5).collect(), (5..10).collect()));
    assert!(SplitConfig { train_portion: 1.0, ..config }.split(10).is_err());
}

#[test]
fn epoch_plans_reshuffle_every_epoch_and_keep_the_last_partial_batch() {
    let indices: Vec<usize> = (100..203).collect();
    let e0 = EpochPlan::shuffled(&indices, 10, 7, 0).unwrap();
    let e1 = EpochPlan::shuffled(&indices, 10, 7, 1).unwrap();
    assert_eq!(e0.num_batches(), 11);
    assert_eq!(e0.batch(10).len(), 3);
    let flat = |p: &EpochPlan| (0..p.num_batches()).flat_map(|b| p.batch(b).to_vec()).collect::<Vec<_>>();
    let mut sorted = flat(&e0);
    sorted.sort_unstable();
    assert_eq!(sorted, indices);
    assert_ne!(flat(&e0), flat(&e1));
    assert_eq!(e0, EpochPlan::shuffled(&indices, 10, 7, 0).unwrap());
    assert_eq!(flat(&EpochPlan::sequential(&indices, 10, 7, 0).unwrap()), indices);
}
