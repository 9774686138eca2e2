//! An ImageNet-style folder (torchvision `ImageFolder`, train_imagenet.py / test_imagenet.py): one
//! subfolder per class, classes sorted by name give the label indices, JPEG/PNG files inside. Only the
//! file list is held in memory; images are decoded per batch (in the producer's rayon pool), since
//! ImageNet does not fit in RAM decoded.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::error::DataError;

const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The file list of an image folder.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    samples: Vec<(PathBuf, i64)>,
    /// When set, every decoded image must have this `(width, height)` (folders of small fixed-size images).
    expected_size: Option<(u32, u32)>,
}

impl ImageFolder {
    /// Lists `root`: subfolders sorted by name are the classes; within each, files with a JPEG/PNG
    /// extension sorted by name.
    pub fn open(root: &Path) -> Result<Self, DataError> {
        let mut classes: Vec<String> = list_dir(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_string))
            .collect();
        classes.sort();
        let mut samples = Vec::new();
        for (label, class) in classes.iter().enumerate() {
            let class_dir = root.join(class);
            let mut files: Vec<PathBuf> = list_dir(&class_dir)?
                .into_iter()
                .filter(|p| {
                    p.is_file()
                        && p.extension()
                            .and_then(|e| e.to_str())
                            .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
                })
                .collect();
            files.sort();
            samples.extend(files.into_iter().map(|f| (f, label as i64)));
        }
        if samples.is_empty() {
            return Err(DataError::EmptyFolder { path: root.to_path_buf() });
        }
        Ok(ImageFolder { root: root.to_path_buf(), classes, samples, expected_size: None })
    }

    /// Requires every image to be `width x height` (an error otherwise, instead of a silent resize).
    pub fn with_expected_size(mut self, width: u32, height: u32) -> Self {
        self.expected_size = Some((width, height));
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn path(&self, index: usize) -> &Path {
        &self.samples[index].0
    }

    pub fn label(&self, index: usize) -> i64 {
        self.samples[index].1
    }

    /// Decodes image `index` to 8-bit RGB as torchvision's PIL loader does ([`super::decode`]).
    pub fn decode(&self, index: usize) -> Result<RgbImage, DataError> {
        let (path, _) =
            self.samples.get(index).ok_or(DataError::IndexOutOfRange { index, len: self.samples.len() })?;
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let image = super::decode::decode_rgb(&bytes)
            .map_err(|reason| DataError::Decode { path: path.clone(), reason })?;
        if let Some((expected_w, expected_h)) = self.expected_size {
            if image.dimensions() != (expected_w, expected_h) {
                return Err(DataError::WrongImageSize {
                    path: path.clone(),
                    found_w: image.width(),
                    found_h: image.height(),
                    expected_w,
                    expected_h,
                });
            }
        }
        Ok(image)
    }
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    entries.map(|entry| entry.map(|e| e.path()).map_err(|e| DataError::io(dir, e))).collect()
}
