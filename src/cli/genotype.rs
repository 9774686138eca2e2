//! `evnas genotype`: show a genotype in DARTS notation or JSON, draw its cells, list built-ins.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use evnas::space::builtin;
use evnas::space::render::write_genotype_pictures;
use evnas::space::Genotype;

#[derive(Args)]
pub struct GenotypeArgs {
    #[command(subcommand)]
    command: GenotypeCommand,
}

#[derive(Subcommand)]
enum GenotypeCommand {
    /// Print a genotype in the DARTS Python notation (or as JSON with --json).
    Show {
        /// A built-in name (EvNAS-A, DARTS_V2, NASNet, ...) or a file in JSON or DARTS notation.
        genotype: String,
        /// Print our JSON form instead of the DARTS notation.
        #[arg(long)]
        json: bool,
    },
    /// Draw both cells: normal.dot, normal.svg, reduction.dot, reduction.svg in --out.
    Render {
        /// A built-in name (EvNAS-A, DARTS_V2, NASNet, ...) or a file in JSON or DARTS notation.
        genotype: String,
        /// Directory to write the pictures into (created if missing).
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// List the built-in genotype names.
    List,
}

pub fn run(args: &GenotypeArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        GenotypeCommand::Show { genotype, json } => {
            let genotype = Genotype::load(genotype)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&genotype)?);
            } else {
                println!("{genotype}");
            }
        }
        GenotypeCommand::Render { genotype, out } => {
            let genotype = Genotype::load(genotype)?;
            for path in write_genotype_pictures(&genotype, out)? {
                println!("{}", path.display());
            }
        }
        GenotypeCommand::List => {
            for name in builtin::NAMES {
                println!("{name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
