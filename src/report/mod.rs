//! Human-facing reports of a search run.

pub mod plot;

pub use plot::{fitness_plot_svg, GenerationFitness, PlotSeries};
