//! `evnas compare RUN_DIR...`: best / mean fitness per generation of several runs side by side
//! (e.g. EvNAS against the random-search baseline), as a table, and with `--out` an SVG plot.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use evnas::fs_atomic::{output_target, write_atomic};
use evnas::report::plot::{fitness_plot_svg, GenerationFitness, PlotSeries};
use evnas::search::run_dir::RunDir;
use evnas::search::GenerationRecord;

#[derive(Args)]
pub struct CompareArgs {
    /// Run directories to compare (the first is drawn solid, the others dashed).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Write the plot here: an SVG file (`.svg`), replaced atomically.
    #[arg(long, value_parser = super::arg_values::svg_path)]
    out: Option<PathBuf>,
}

pub fn run(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    // Before the runs are read: a file that cannot be written is said at once.
    let out = args.out.as_deref().map(output_target).transpose().context("cannot plot")?;
    let mut series = Vec::new();
    let mut histories = Vec::new();
    for (i, dir) in args.runs.iter().enumerate() {
        let read = || -> Result<_, evnas::search::SearchError> {
            let run = RunDir::open(dir)?;
            Ok((run.read_config::<evnas::config::Config>()?, run.read_history()?))
        };
        let (cfg, history) = read().with_context(|| format!("cannot compare {}", dir.display()))?;
        let label = format!(
            "{} ({})",
            dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            match cfg.search.strategy {
                evnas::config::Strategy::Evolution => "EvNAS",
                evnas::config::Strategy::Random => "random search",
            }
        );
        let points =
            history.iter().map(|r| GenerationFitness::from_stats(r.generation as u32, &r.fitness)).collect();
        series.push(PlotSeries { label: label.clone(), points, dashed: i > 0 });
        histories.push((label, history));
    }

    print_table(&histories);
    if let Some(out) = &out {
        let svg = fitness_plot_svg(&series, "validation top-1 (%) per generation");
        super::interrupt::put_in_place(|| write_atomic(out, svg.as_bytes()))
            .with_context(|| format!("cannot write {}", out.display()))?;
        println!("plot: {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(histories: &[(String, Vec<GenerationRecord>)]) {
    let generations = histories.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    print!("{:>4}", "gen");
    for (label, _) in histories {
        print!("  {:>28}", format!("{label} best/mean"));
    }
    println!();
    for g in 0..generations {
        print!("{:>4}", g + 1);
        for (_, h) in histories {
            match h.get(g) {
                Some(r) => print!("  {:>28}", format!("{:.2} / {:.2}", r.fitness.best, r.fitness.mean)),
                None => print!("  {:>28}", "-"),
            }
        }
        println!();
    }
}
