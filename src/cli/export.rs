//! `evnas export`: an evaluation network with its trained weights, as a file that runs without
//! evnas: TorchScript (traced; `torch.jit.load` in Python or C++) or safetensors (the weights
//! under the reference's state-dict names, for `load_state_dict` on the reference's modules).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use evnas::fs_atomic::{output_target, PendingFile};
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
    /// Device the network is traced on. The trace holds the weights as constants of its graph,
    /// which `.to(device)` does not move: load it onto another device with
    /// `torch.jit.load(path, map_location=device)`.
    #[arg(long, default_value = "cpu", value_parser = super::arg_values::device)]
    device: String,
}

pub fn run(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let device = resolve_device(&args.device)?;
    // Before the network is built: a file that cannot be written is said at once.
    let out = output_target(&args.out).context("cannot export")?;
    let weights = std::fs::canonicalize(&args.network.weights).ok();
    if weights.is_some() && std::fs::canonicalize(&out).ok() == weights {
        anyhow::bail!(
            "cannot export: --out {} is the weights file it reads; write the export elsewhere",
            args.out.display()
        );
    }
    let mut network = super::network::load(&args.network, None, device)?;
    match args.format {
        // Small enough to write whole before a signal ends the command.
        Format::Safetensors => super::interrupt::put_in_place(|| save_safetensors(&network.vs, &out))?,
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
            let partial = PendingFile::beside(&out)?;
            module
                .save(partial.path())
                .map_err(|e| anyhow::anyhow!("{}", without_cpp_trace(&e.to_string())))
                .and_then(|()| Ok(evnas::fault::point("export.saved")?))
                .and_then(|()| Ok(super::interrupt::put_in_place(|| partial.persist(&out))?))
                .with_context(|| format!("cannot write {}", out.display()))?;
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

/// libtorch's message without the C++ stack trace it appends (the program's own frames say
/// nothing to a user).
fn without_cpp_trace(message: &str) -> &str {
    message.split("\nException raised from").next().unwrap_or(message).trim()
}
