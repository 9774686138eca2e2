//! `evnas eval`: test top-1 / top-5 of an evaluation network built from a genotype, with weights
//! trained by evnas or saved by PyTorch from the reference code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use evnas::data::{test_plan, test_source, PrefetchConfig, Producer, StopFlag};
use evnas::search::resolve_device;
use evnas::train::test_set::evaluate_test_set;

use super::network::NetworkArgs;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    network: NetworkArgs,
    /// Directory of the test split (CIFAR-10: holding test_batch.bin; ImageNet: the val folder).
    #[arg(long)]
    data: PathBuf,
    /// Images per batch.
    #[arg(long, default_value_t = 128, value_parser = super::arg_values::at_least_one)]
    batch_size: usize,
    /// "cpu", "cuda", "cuda:N" or "auto".
    #[arg(long, default_value = "auto", value_parser = super::arg_values::device)]
    device: String,
    /// Print {"top1": .., "top5": .., "images": ..}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let kind = args.network.dataset;
    let device = resolve_device(&args.device)?;
    let source = test_source(kind, &args.data)?;
    let network = super::network::load(&args.network, Some(source.num_classes()), device)?;
    let forward = network.forward;

    let plan = test_plan(source.as_ref(), args.batch_size)?;
    let producer =
        Producer::new(source, PrefetchConfig { pin_memory: device.is_cuda(), ..PrefetchConfig::default() })?;
    let batches = producer.start_epoch(plan, StopFlag::new())?;
    let tally = evaluate_test_set(&*forward, batches, device, || {})?;

    if args.json {
        println!(
            "{}",
            serde_json::json!({ "top1": tally.top1(), "top5": tally.top5(), "images": tally.images })
        );
    } else {
        println!(
            "{} on {} test: top-1 {:.2}%  top-5 {:.2}%  ({} images)",
            args.network.genotype,
            kind.name(),
            tally.top1(),
            tally.top5(),
            tally.images
        );
    }
    Ok(ExitCode::SUCCESS)
}
