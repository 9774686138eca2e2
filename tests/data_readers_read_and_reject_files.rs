//! Each reader on small files written here in the real format, and each malformed file giving its own
//! error that names the file (and the record where one is at fault).

mod common;

use std::path::Path;

use common::{cifar100_bytes, cifar10_bytes, cifar_pixels, gzip, idx_bytes, write};
use evnas::data::idx::{IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use evnas::data::{
    count_split, read_cifar10, read_cifar100, read_mnist_like, test_plan, test_source, Cifar100Labels,
    DataError, DatasetKind, ImageFolder, ImageFolderSource, ImageNetTransform, PlanBatches, SplitName,
};

fn names(path: &Path, file: &str) -> bool {
    path.file_name().and_then(|n| n.to_str()) == Some(file)
}

#[test]
fn cifar10_test_split_reads_from_a_directory_holding_only_test_batch() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("test_batch.bin"), &cifar10_bytes(&[3, 0, 9]));
    let data = read_cifar10(dir.path(), SplitName::Test).unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data.shape(), [3, 32, 32]);
    assert_eq!(data.labels(), &[3, 0, 9]);
    assert_eq!(data.image(1), &cifar_pixels(1)[..]);
    assert_eq!(data.num_classes(), 10);
}

#[test]
fn cifar10_train_split_concatenates_the_five_batches_in_order() {
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=5u8 {
        write(&dir.path().join(format!("data_batch_{i}.bin")), &cifar10_bytes(&[i, i + 1]));
    }
    let data = read_cifar10(dir.path(), SplitName::Train).unwrap();
    assert_eq!(data.labels(), &[1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
}

#[test]
fn cifar10_missing_training_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("data_batch_1.bin"), &cifar10_bytes(&[1]));
    match read_cifar10(dir.path(), SplitName::Train) {
        Err(DataError::Io { path, .. }) => assert!(names(&path, "data_batch_2.bin"), "{path:?}"),
        other => panic!("expected a missing-file error, got {other:?}"),
    }
}

#[test]
fn cifar10_truncated_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = cifar10_bytes(&[1, 2]);
    bytes.pop();
    write(&dir.path().join("test_batch.bin"), &bytes);
    match read_cifar10(dir.path(), SplitName::Test) {
        Err(DataError::Truncated { path, reason }) => {
            assert!(names(&path, "test_batch.bin"));
            assert!(reason.contains("record 1"), "{reason}");
        }
        other => panic!("expected truncation, got {other:?}"),
    }
}

#[test]
fn cifar10_label_out_of_range_names_the_record() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("test_batch.bin"), &cifar10_bytes(&[1, 2, 10]));
    match read_cifar10(dir.path(), SplitName::Test) {
        Err(DataError::LabelOutOfRange { path, record, label, num_classes }) => {
            assert!(names(&path, "test_batch.bin"));
            assert_eq!((record, label, num_classes), (2, 10, 10));
        }
        other => panic!("expected a label error, got {other:?}"),
    }
}

#[test]
fn cifar100_reads_fine_labels_by_default_and_coarse_on_request() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("test.bin"), &cifar100_bytes(&[(4, 99), (19, 0)]));
    let fine = read_cifar100(dir.path(), SplitName::Test, Cifar100Labels::default()).unwrap();
    assert_eq!(fine.labels(), &[99, 0]);
    assert_eq!(fine.num_classes(), 100);
    assert_eq!(fine.image(0), &cifar_pixels(0)[..]);
    let coarse = read_cifar100(dir.path(), SplitName::Test, Cifar100Labels::Coarse).unwrap();
    assert_eq!(coarse.labels(), &[4, 19]);
    assert_eq!(coarse.num_classes(), 20);
}

#[test]
fn cifar100_fine_label_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("train.bin"), &cifar100_bytes(&[(1, 5), (2, 100)]));
    assert!(matches!(
        read_cifar100(dir.path(), SplitName::Train, Cifar100Labels::Fine),
        Err(DataError::LabelOutOfRange { record: 1, label: 100, .. })
    ));
}

fn write_idx_pair(dir: &Path, images: &[u8], labels: &[u8], gz: bool) {
    let (img_name, lbl_name) = if gz {
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    } else {
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    };
    let (images, labels) = if gz { (gzip(images), gzip(labels)) } else { (images.to_vec(), labels.to_vec()) };
    write(&dir.join(img_name), &images);
    write(&dir.join(lbl_name), &labels);
}

fn tiny_idx_images(count: u32) -> Vec<u8> {
    let body: Vec<u8> = (0..count * 4 * 5).map(|i| (i * 3) as u8).collect();
    idx_bytes(IDX_IMAGES_MAGIC, &[count, 4, 5], &body)
}

#[test]
fn idx_reads_raw_and_gzipped_files_alike() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        write_idx_pair(dir.path(), &tiny_idx_images(3), &idx_bytes(IDX_LABELS_MAGIC, &[3], &[7, 0, 9]), gz);
        let data = read_mnist_like(dir.path(), SplitName::Test, 10).unwrap();
        assert_eq!(data.shape(), [1, 4, 5]);
        assert_eq!(data.labels(), &[7, 0, 9]);
        let second: Vec<u8> = (20..40u32).map(|i| (i * 3) as u8).collect();
        assert_eq!(data.image(1), &second[..], "gz = {gz}");
    }
}

#[test]
fn idx_bad_magic_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut images = tiny_idx_images(2);
    images[3] = 0x01; // 0x00000801: a label file where images are expected
    write_idx_pair(dir.path(), &images, &idx_bytes(IDX_LABELS_MAGIC, &[2], &[1, 2]), true);
    match read_mnist_like(dir.path(), SplitName::Test, 10) {
        Err(DataError::BadMagic { path, found, expected }) => {
            assert!(names(&path, "t10k-images-idx3-ubyte.gz"));
            assert_eq!((found, expected), (IDX_LABELS_MAGIC, IDX_IMAGES_MAGIC));
        }
        other => panic!("expected bad magic, got {other:?}"),
    }
}

#[test]
fn idx_bad_dimensions_are_errors() {
    let labels = idx_bytes(IDX_LABELS_MAGIC, &[1], &[1]);
    let zero_side = idx_bytes(IDX_IMAGES_MAGIC, &[1, 0, 5], &[]);
    let trailing = idx_bytes(IDX_IMAGES_MAGIC, &[1, 2, 2], &[0; 5]);
    for images in [zero_side, trailing] {
        let dir = tempfile::tempdir().unwrap();
        write_idx_pair(dir.path(), &images, &labels, false);
        assert!(
            matches!(read_mnist_like(dir.path(), SplitName::Test, 10), Err(DataError::BadDimensions { .. })),
            "{images:?}"
        );
    }
}

#[test]
fn idx_truncated_body_and_header_are_errors() {
    let mut images = tiny_idx_images(3);
    images.truncate(images.len() - 1);
    let dir = tempfile::tempdir().unwrap();
    write_idx_pair(dir.path(), &images, &idx_bytes(IDX_LABELS_MAGIC, &[3], &[1, 2, 3]), false);
    match read_mnist_like(dir.path(), SplitName::Test, 10) {
        Err(DataError::Truncated { path, reason }) => {
            assert!(names(&path, "t10k-images-idx3-ubyte"));
            assert!(reason.contains("record 2"), "{reason}");
        }
        other => panic!("expected truncation, got {other:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    write_idx_pair(dir.path(), &tiny_idx_images(1), &IDX_LABELS_MAGIC.to_be_bytes(), false);
    assert!(matches!(read_mnist_like(dir.path(), SplitName::Test, 10), Err(DataError::Truncated { .. })));
}

#[test]
fn idx_count_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_pair(dir.path(), &tiny_idx_images(3), &idx_bytes(IDX_LABELS_MAGIC, &[2], &[1, 2]), true);
    match read_mnist_like(dir.path(), SplitName::Test, 10) {
        Err(DataError::CountMismatch { images, labels, images_path, labels_path }) => {
            assert_eq!((images, labels), (3, 2));
            assert!(names(&images_path, "t10k-images-idx3-ubyte.gz"));
            assert!(names(&labels_path, "t10k-labels-idx1-ubyte.gz"));
        }
        other => panic!("expected a count mismatch, got {other:?}"),
    }
}

#[test]
fn idx_label_out_of_range_names_the_record() {
    let dir = tempfile::tempdir().unwrap();
    write_idx_pair(dir.path(), &tiny_idx_images(3), &idx_bytes(IDX_LABELS_MAGIC, &[3], &[1, 12, 3]), false);
    assert!(matches!(
        read_mnist_like(dir.path(), SplitName::Test, 10),
        Err(DataError::LabelOutOfRange { record: 1, label: 12, .. })
    ));
}

#[test]
fn counting_a_split_reads_only_sizes_and_headers_and_names_what_is_wrong() {
    // CIFAR: the records of every file, from their sizes; a missing or cut file is named.
    let cifar = tempfile::tempdir().unwrap();
    for i in 1..=5u8 {
        write(&cifar.path().join(format!("data_batch_{i}.bin")), &cifar10_bytes(&[i, i + 1]));
    }
    assert_eq!(count_split(DatasetKind::Cifar10, cifar.path(), SplitName::Train).unwrap(), 10);
    let mut cut = cifar10_bytes(&[1, 2]);
    cut.pop();
    write(&cifar.path().join("data_batch_4.bin"), &cut);
    match count_split(DatasetKind::Cifar10, cifar.path(), SplitName::Train) {
        Err(DataError::Truncated { path, .. }) => assert!(names(&path, "data_batch_4.bin"), "{path:?}"),
        other => panic!("expected a cut file, got {other:?}"),
    }
    std::fs::remove_file(cifar.path().join("data_batch_4.bin")).unwrap();
    match count_split(DatasetKind::Cifar10, cifar.path(), SplitName::Train) {
        Err(DataError::Io { path, .. }) => assert!(names(&path, "data_batch_4.bin"), "{path:?}"),
        other => panic!("expected a missing file, got {other:?}"),
    }
    write(&cifar.path().join("test.bin"), &cifar100_bytes(&[(1, 2), (3, 4), (5, 6)]));
    assert_eq!(count_split(DatasetKind::Cifar100, cifar.path(), SplitName::Test).unwrap(), 3);

    // IDX: the counts in the headers and the lengths of the data, raw or gzipped.
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut images = tiny_idx_images(3);
        write_idx_pair(dir.path(), &images, &idx_bytes(IDX_LABELS_MAGIC, &[3], &[7, 0, 9]), gz);
        let counted = count_split(DatasetKind::FashionMnist, dir.path(), SplitName::Test);
        assert_eq!(counted.unwrap(), 3, "gz = {gz}");
        images.truncate(images.len() - 1);
        write_idx_pair(dir.path(), &images, &idx_bytes(IDX_LABELS_MAGIC, &[3], &[7, 0, 9]), gz);
        let counted = count_split(DatasetKind::FashionMnist, dir.path(), SplitName::Test);
        assert!(matches!(counted, Err(DataError::Truncated { .. })), "gz = {gz}: {counted:?}");
        write_idx_pair(dir.path(), &tiny_idx_images(3), &idx_bytes(IDX_LABELS_MAGIC, &[3], &[7, 0]), gz);
        let counted = count_split(DatasetKind::FashionMnist, dir.path(), SplitName::Test);
        assert!(matches!(counted, Err(DataError::Truncated { .. })), "gz = {gz}: {counted:?}");
        let empty = idx_bytes(IDX_IMAGES_MAGIC, &[0, 4, 5], &[]);
        write_idx_pair(dir.path(), &empty, &idx_bytes(IDX_LABELS_MAGIC, &[0], &[]), gz);
        let counted = count_split(DatasetKind::FashionMnist, dir.path(), SplitName::Test);
        assert!(matches!(counted, Err(DataError::BadDimensions { .. })), "gz = {gz}: {counted:?}");
        write_idx_pair(dir.path(), &tiny_idx_images(3), &idx_bytes(IDX_LABELS_MAGIC, &[2], &[7, 0]), gz);
        assert!(
            matches!(
                count_split(DatasetKind::FashionMnist, dir.path(), SplitName::Test),
                Err(DataError::CountMismatch { images: 3, labels: 2, .. })
            ),
            "gz = {gz}"
        );
        write_idx_pair(dir.path(), &tiny_idx_images(3), &tiny_idx_images(3), gz);
        assert!(
            matches!(
                count_split(DatasetKind::FashionMnist, dir.path(), SplitName::Test),
                Err(DataError::BadMagic { found: IDX_IMAGES_MAGIC, expected: IDX_LABELS_MAGIC, .. })
            ),
            "gz = {gz}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    write_idx_pair(
        dir.path(),
        &tiny_idx_images(3)[..10],
        &idx_bytes(IDX_LABELS_MAGIC, &[3], &[7, 0, 9]),
        true,
    );
    assert!(matches!(
        count_split(DatasetKind::FashionMnist, dir.path(), SplitName::Test),
        Err(DataError::Truncated { .. })
    ));
    // A gzip stream cut short (a copy that stopped half-way), its header intact.
    let noise: Vec<u8> = (0..300u32 * 4 * 5).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let whole = gzip(&idx_bytes(IDX_IMAGES_MAGIC, &[300, 4, 5], &noise));
    write(&dir.path().join("t10k-images-idx3-ubyte.gz"), &whole[..whole.len() / 2]);
    match count_split(DatasetKind::FashionMnist, dir.path(), SplitName::Test) {
        Err(DataError::Truncated { path, reason }) => {
            assert!(names(&path, "t10k-images-idx3-ubyte.gz") && reason.contains("gzip stream"), "{reason}")
        }
        other => panic!("expected a cut gzip stream, got {other:?}"),
    }
    match count_split(DatasetKind::FashionMnist, &dir.path().join("absent"), SplitName::Train) {
        Err(DataError::Io { path, .. }) => assert!(names(&path, "train-images-idx3-ubyte.gz"), "{path:?}"),
        other => panic!("expected a missing file, got {other:?}"),
    }

    assert!(matches!(
        count_split(DatasetKind::ImageNet, dir.path(), SplitName::Train),
        Err(DataError::NotInMemory { .. })
    ));
}

fn save_png(path: &Path, width: u32, height: u32, rgb: [u8; 3]) {
    image::RgbImage::from_pixel(width, height, image::Rgb(rgb)).save(path).unwrap();
}

#[test]
fn image_folder_sorts_classes_and_decodes_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["zebra", "ant"] {
        std::fs::create_dir(dir.path().join(class)).unwrap();
    }
    save_png(&dir.path().join("zebra/b.png"), 300, 260, [255, 0, 0]);
    save_png(&dir.path().join("zebra/a.PNG"), 260, 300, [0, 255, 0]);
    save_png(&dir.path().join("ant/x.png"), 256, 256, [0, 0, 255]);
    write(&dir.path().join("ant/notes.txt"), b"not an image");
    let folder = ImageFolder::open(dir.path()).unwrap();
    assert_eq!(folder.classes(), &["ant".to_string(), "zebra".to_string()]);
    assert_eq!(folder.len(), 3);
    assert_eq!((folder.label(0), folder.label(1), folder.label(2)), (0, 1, 1));
    assert!(names(folder.path(1), "a.PNG"));

    let source = test_source(DatasetKind::ImageNet, dir.path()).unwrap();
    assert_eq!(source.image_shape(), [3, 224, 224]);
    let plan = test_plan(source.as_ref(), 2).unwrap();
    let batches: Vec<_> = PlanBatches::new(source.as_ref(), &plan).collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].images.size(), vec![2, 3, 224, 224]);
    assert_eq!(Vec::<i64>::try_from(&batches[0].labels).unwrap(), vec![0, 1]);
    // Image 1 is pure green: the red plane is (0 - 0.485) / 0.229 everywhere.
    let red: f32 = batches[0].images.get(1).get(0).mean(tch::Kind::Float).double_value(&[]) as f32;
    assert!((red - (-0.485 / 0.229)).abs() < 1e-4, "{red}");
}

#[test]
fn image_folder_undecodable_image_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    write(&dir.path().join("c/broken.jpg"), b"\xff\xd8 definitely not a jpeg");
    let folder = std::sync::Arc::new(ImageFolder::open(dir.path()).unwrap());
    match folder.decode(0) {
        Err(DataError::Decode { path, .. }) => assert!(names(&path, "broken.jpg")),
        other => panic!("expected a decode error, got {other:?}"),
    }
    let source = ImageFolderSource::new(
        folder,
        ImageNetTransform::default(),
        DatasetKind::ImageNet.normalization(),
        true,
    )
    .unwrap();
    let plan = test_plan(&source, 4).unwrap();
    let first = PlanBatches::new(&source, &plan).next().unwrap();
    assert!(matches!(first, Err(DataError::Decode { .. })));
}

#[test]
fn image_folder_wrong_size_and_empty_folder_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("c")).unwrap();
    save_png(&dir.path().join("c/a.png"), 32, 30, [1, 2, 3]);
    let folder = ImageFolder::open(dir.path()).unwrap().with_expected_size(32, 32);
    assert!(matches!(
        folder.decode(0),
        Err(DataError::WrongImageSize { found_w: 32, found_h: 30, expected_w: 32, expected_h: 32, .. })
    ));
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("c")).unwrap();
    assert!(matches!(ImageFolder::open(empty.path()), Err(DataError::EmptyFolder { .. })));
    assert!(matches!(ImageFolder::open(&empty.path().join("missing")), Err(DataError::Io { .. })));
}

#[test]
fn dataset_kinds_parse_by_name_and_carry_reference_constants() {
    for kind in DatasetKind::ALL {
        assert_eq!(kind.name().parse::<DatasetKind>().unwrap(), kind);
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.name()));
    }
    assert!(matches!("mnist".parse::<DatasetKind>(), Err(DataError::UnknownDataset { .. })));
    let c10 = DatasetKind::Cifar10.normalization();
    assert_eq!(c10.mean, vec![0.491_399_68, 0.482_158_27, 0.446_531_24]);
    assert_eq!(c10.std, vec![0.247_032_33, 0.243_485_05, 0.261_587_68]);
    assert_eq!(DatasetKind::Cifar100.normalization().std, vec![0.2675, 0.2565, 0.2761]);
    assert_eq!(DatasetKind::ImageNet.normalization().mean, vec![0.485, 0.456, 0.406]);
    assert_eq!(DatasetKind::FashionMnist.input_shape(), [1, 28, 28]);
    assert_eq!(DatasetKind::Cifar100.num_classes(), 100);
    let table = &c10.lookup_tables()[2];
    assert_eq!(table[200], (200.0f32 / 255.0 - 0.446_531_24) / 0.261_587_68);
}

/// Reads the installed Fashion-MNIST test split when present (run with `--ignored` on a machine that
/// has /usr/share/datasets/fashion-mnist).
#[test]
#[ignore = "needs /usr/share/datasets/fashion-mnist"]
fn installed_fashion_mnist_test_split_reads() {
    let data = evnas::data::load_test_split(
        DatasetKind::FashionMnist,
        Path::new(evnas::data::DEFAULT_FASHION_MNIST_DIR),
    )
    .unwrap();
    assert_eq!((data.len(), data.shape()), (10_000, [1, 28, 28]));
}
