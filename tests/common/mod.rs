//! Helpers shared by the integration tests: writers of tiny datasets in their real on-disk formats.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

/// A deterministic 3x32x32 image whose bytes depend on `seed`.
pub fn cifar_pixels(seed: u8) -> Vec<u8> {
    (0..3072u32).map(|i| (i.wrapping_mul(31).wrapping_add(u32::from(seed) * 7) % 251) as u8).collect()
}

/// CIFAR-10 records: `[label][3072 pixels]` each.
pub fn cifar10_bytes(labels: &[u8]) -> Vec<u8> {
    labels
        .iter()
        .enumerate()
        .flat_map(|(i, &label)| std::iter::once(label).chain(cifar_pixels(i as u8)))
        .collect()
}

/// CIFAR-100 records: `[coarse][fine][3072 pixels]` each.
pub fn cifar100_bytes(labels: &[(u8, u8)]) -> Vec<u8> {
    labels
        .iter()
        .enumerate()
        .flat_map(|(i, &(coarse, fine))| [coarse, fine].into_iter().chain(cifar_pixels(i as u8)))
        .collect()
}

/// An IDX file: magic, big-endian dims, then `body`.
pub fn idx_bytes(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = magic.to_be_bytes().to_vec();
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(body);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The directory holding the `torch` package that LIBTORCH points at (LIBTORCH is
/// `<site-packages>/torch`); it also holds the `safetensors` Python package. The PyTorch side of
/// a test runs with it as PYTHONPATH.
pub fn python_site_dir() -> std::path::PathBuf {
    let libtorch = std::env::var_os("LIBTORCH")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".libtorch"));
    let torch_dir = libtorch.canonicalize().unwrap_or_else(|e| {
        panic!(
            "LIBTORCH={} does not exist ({e}); point it at a PyTorch 2.11 `torch` package dir",
            libtorch.display()
        )
    });
    torch_dir.parent().map(Path::to_path_buf).expect("LIBTORCH has a parent directory")
}

pub mod genotypes;
#[allow(unused_imports)]
pub use genotypes::*;
pub mod search;
pub mod served;
