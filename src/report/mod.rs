//! Human-facing reports of search and training runs.

pub mod learning_curve;
pub mod plot;

pub use learning_curve::learning_curve_svg;
pub use plot::{fitness_plot_svg, GenerationFitness, PlotSeries};

/// Text made safe inside SVG/XML text and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
