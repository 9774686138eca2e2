//! Parameter and MAC counts of the evaluation networks against the reference code.
//!
//! Golden numbers: `scripts/fixtures/make_model_fixtures.py /tmp/ref --counts` with PyTorch 2.11
//! (parameters by `count_parameters_in_MB`'s rule; convolution MACs measured with forward hooks
//! on every nn.Conv2d during one eval forward of a 1x3x32x32 / 1x3x224x224 input).

mod common;

use evnas::model::{count_eval_network, EvalDataset};
use evnas::space::Genotype;

fn check(genotype: &Genotype, dataset: EvalDataset, params: u64, conv_macs: u64) {
    let counts = count_eval_network(genotype, dataset, dataset.default_config());
    assert_eq!(counts.params, params, "params {dataset:?}");
    assert_eq!(counts.conv_macs, conv_macs, "conv MACs {dataset:?}");
}

#[test]
fn evnas_a_counts_equal_the_reference() {
    check(&common::evnas_a(), EvalDataset::Cifar10, 3_626_470, 568_083_456);
    check(&common::evnas_a(), EvalDataset::ImageNet, 5_136_640, 569_701_440);
}

#[test]
fn darts_v2_counts_equal_the_reference() {
    check(&common::darts_v2(), EvalDataset::Cifar10, 3_349_342, 528_353_280);
    check(&common::darts_v2(), EvalDataset::ImageNet, 4_718_752, 529_143_552);
}

#[test]
fn evnas_b_and_c_cifar_counts_equal_the_reference() {
    check(&common::evnas_b(), EvalDataset::Cifar10, 3_827_782, 608_919_552);
    check(&common::evnas_c(), EvalDataset::Cifar10, 3_447_838, 544_693_248);
}

#[test]
fn classifier_macs_are_reported_apart() {
    let counts = count_eval_network(
        &common::darts_v2(),
        EvalDataset::ImageNet,
        EvalDataset::ImageNet.default_config(),
    );
    // C=48 ImageNet network ends with 4 * 4C = 768 channels into 1000 classes.
    assert_eq!(counts.classifier_macs, 768 * 1000);
}
