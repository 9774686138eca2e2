//! `evnas export`: an evaluation network with its trained weights, as a file that runs without
//! evnas: TorchScript (traced; `torch.jit.load` in Python or C++) or safetensors (the weights
//! under the reference's state-dict names, for `load_state_dict` on the reference's modules).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use evnas::fs_atomic::unique_suffix;
use evnas::model::layers::portable;
use evnas::search::resolve_device;
use evnas::weights::save_safetensors;
use tch::{CModule, Kind, Tensor};

use super::network::NetworkArgs;

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Torchscript,
    Safetensors,
}

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    network: NetworkArgs,
    #[arg(long, value_enum)]
    format: Format,
    /// The file to write (replaced atomically).
    #[arg(long)]
    out: PathBuf,
    /// Device the network is traced on; a trace taken on the CPU runs on any device once moved
    /// there with `.to(device)`.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let device = resolve_device(&args.device)?;
    let mut network = super::network::load(&args.network, None, device)?;
    let what = format!("cannot write {}", args.out.display());
    match args.format {
        Format::Safetensors => save_safetensors(&network.vs, &args.out).context(what)?,
        Format::Torchscript => {
            // A trace keeps the weights as constants, which must not require gradients.
            network.vs.freeze();
            let [c, h, w] = network.input_shape;
            // Two images: a batch dimension the trace does not mistake for a constant of 1.
            let example = Tensor::zeros([2, c, h, w], (Kind::Float, device));
            let forward = &network.forward;
            let module = portable(|| {
                tch::no_grad(|| {
                    CModule::create_by_tracing("EvnasNetwork", "forward", &[example], &mut |inputs| {
                        vec![forward(&inputs[0])]
                    })
                })
            })
            .context("cannot trace the network")?;
            // Saved beside the target, then renamed over it: a reader never sees half a file.
            let partial = args.out.with_extension(format!("partial-{}", unique_suffix()));
            module.save(&partial).with_context(|| what.clone())?;
            std::fs::rename(&partial, &args.out).with_context(|| what.clone())?;
        }
    }
    println!(
        "{}: {} (C={}, {} layers, {} classes, input {}x{}x{})",
        args.out.display(),
        args.network.genotype,
        network.config.init_channels,
        network.config.layers,
        network.config.num_classes,
        network.input_shape[0],
        network.input_shape[1],
        network.input_shape[2]
    );
    Ok(ExitCode::SUCCESS)
}
