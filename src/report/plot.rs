//! SVG line plot of population fitness per generation: best, mean and worst top-1 accuracy, one
//! set of three lines per run (e.g. EvNAS solid, the random-search baseline dashed), with the span
//! between best and worst lightly shaded. The reference logs these to TensorBoard
//! (`pop_top1_<i>` per individual in train_search.py); here the summary is a standalone file.
//!
//! Written by hand (no plotting crate): the picture is a handful of lines and labels.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::xml_escape;
use crate::evolution::FitnessStats;

/// Top-1 summary (percent) of one evaluated generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GenerationFitness {
    pub generation: u32,
    pub best: f64,
    pub mean: f64,
    pub worst: f64,
}

impl GenerationFitness {
    pub fn from_stats(generation: u32, stats: &FitnessStats) -> Self {
        Self { generation, best: stats.best, mean: stats.mean, worst: stats.worst }
    }
}

/// One run's curves. Points need not be sorted; non-finite values are left out of their line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlotSeries {
    pub label: String,
    pub points: Vec<GenerationFitness>,
    /// Draw this set dashed (for a baseline next to the main run).
    pub dashed: bool,
}

pub(super) const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 500.0;
const LEFT: f64 = 72.0;
pub(super) const RIGHT: f64 = 200.0;
pub(super) const TOP: f64 = 56.0;
const BOTTOM: f64 = 62.0;
const FONT: &str = "DejaVu Sans, Helvetica, Arial, sans-serif";
const INK: &str = "#333333";
const GRID: &str = "#e3e3e3";
/// Per metric: (name, colour, stroke width).
const METRICS: [(&str, &str, f64); 3] =
    [("best", "#1a7f5a", 2.4), ("mean", "#2f6db5", 1.8), ("worst", "#c8553d", 1.4)];
const BAND: &str = "#2f6db5";
const DASH: &str = "7 5";

fn metric(point: &GenerationFitness, index: usize) -> f64 {
    match index {
        0 => point.best,
        1 => point.mean,
        _ => point.worst,
    }
}

/// The plot as a standalone SVG document. `title` and labels are escaped.
pub fn fitness_plot_svg(series: &[PlotSeries], title: &str) -> String {
    let mut svg = svg_start(title);

    let sorted: Vec<Vec<GenerationFitness>> = series
        .iter()
        .map(|s| {
            let mut points = s.points.clone();
            points.sort_by_key(|p| p.generation);
            points
        })
        .collect();
    let generations: Vec<f64> = sorted.iter().flatten().map(|p| f64::from(p.generation)).collect();
    let values: Vec<f64> =
        sorted.iter().flatten().flat_map(|p| [p.best, p.mean, p.worst]).filter(|v| v.is_finite()).collect();

    let frame = Frame::new(&generations, &values, "generation");
    frame.draw_grid_and_axes(&mut svg);
    if values.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="14" fill="{INK}">no data</text>"#,
            LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
            TOP + (HEIGHT - TOP - BOTTOM) / 2.0
        );
    }
    for (set, points) in series.iter().zip(&sorted) {
        draw_set(&mut svg, &frame, set, points);
    }
    draw_legend(&mut svg, series);
    svg.push_str("</svg>\n");
    svg
}

/// An SVG document's opening: the canvas, a white background and the (escaped) title.
pub(super) fn svg_start(title: &str) -> String {
    let mut svg = String::new();
    let _ = writeln!(svg, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}">"#
    );
    let _ = writeln!(svg, r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="32" text-anchor="middle" font-size="18" font-weight="bold" fill="{INK}">{}</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        xml_escape(title)
    );
    svg
}

/// Data-to-pixel mapping and the tick positions of both axes.
pub(super) struct Frame {
    x_ticks: Ticks,
    y_ticks: Ticks,
    x_label: &'static str,
}

impl Frame {
    /// A frame for points at `xs` (integers: generations, epochs) with `values` in percent.
    pub(super) fn new(xs: &[f64], values: &[f64], x_label: &'static str) -> Self {
        let (gx_min, gx_max) = bounds(xs).unwrap_or((0.0, 1.0));
        let (vy_min, vy_max) = bounds(values).unwrap_or((0.0, 100.0));
        Self {
            x_ticks: Ticks::nice(gx_min, gx_max, 8, true),
            y_ticks: Ticks::nice(vy_min, vy_max, 6, false),
            x_label,
        }
    }

    pub(super) fn x(&self, generation: f64) -> f64 {
        let t = &self.x_ticks;
        LEFT + (generation - t.min) / (t.max - t.min) * (WIDTH - LEFT - RIGHT)
    }

    pub(super) fn y(&self, value: f64) -> f64 {
        let t = &self.y_ticks;
        HEIGHT - BOTTOM - (value - t.min) / (t.max - t.min) * (HEIGHT - TOP - BOTTOM)
    }

    pub(super) fn draw_grid_and_axes(&self, svg: &mut String) {
        let (x0, x1, y0, y1) = (LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP);
        svg.push_str("<g class=\"grid\">\n");
        for v in self.y_ticks.values() {
            let y = self.y(v);
            let _ = writeln!(
                svg,
                r#"<line x1="{x0:.1}" y1="{y:.1}" x2="{x1:.1}" y2="{y:.1}" stroke="{GRID}" stroke-width="1"/>"#
            );
        }
        for v in self.x_ticks.values() {
            let x = self.x(v);
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{y1:.1}" stroke="{GRID}" stroke-width="1"/>"#
            );
        }
        svg.push_str("</g>\n<g class=\"axes\" font-size=\"12\" fill=\"#555555\">\n");
        let _ = writeln!(
            svg,
            r#"<rect x="{x0:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{INK}" stroke-width="1"/>"#,
            x1 - x0,
            y0 - y1
        );
        for v in self.y_ticks.values() {
            let y = self.y(v);
            let _ = writeln!(
                svg,
                r#"<line x1="{:.1}" y1="{y:.1}" x2="{x0:.1}" y2="{y:.1}" stroke="{INK}" stroke-width="1"/>"#,
                x0 - 5.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                x0 - 8.0,
                y + 4.0,
                self.y_ticks.label(v)
            );
        }
        for v in self.x_ticks.values() {
            let x = self.x(v);
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="{INK}" stroke-width="1"/>"#,
                y0 + 5.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                y0 + 20.0,
                self.x_ticks.label(v)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="14" fill="{INK}">{}</text>"#,
            (x0 + x1) / 2.0,
            HEIGHT - 16.0,
            self.x_label
        );
        let (cx, cy) = (20.0, (y0 + y1) / 2.0);
        let _ = writeln!(
            svg,
            r#"<text x="{cx:.1}" y="{cy:.1}" text-anchor="middle" font-size="14" fill="{INK}" transform="rotate(-90 {cx:.1} {cy:.1})">top-1 accuracy (%)</text>"#
        );
        svg.push_str("</g>\n");
    }
}

fn bounds(values: &[f64]) -> Option<(f64, f64)> {
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let (min, max) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (min <= max).then_some((min, max))
}

/// Evenly spaced "nice" tick values (steps of 1, 2, 2.5 or 5 times a power of ten) covering a range.
struct Ticks {
    min: f64,
    max: f64,
    step: f64,
}

impl Ticks {
    fn nice(lo: f64, hi: f64, target: usize, integer: bool) -> Self {
        let (lo, hi) = if hi - lo < 1e-9 { (lo - 1.0, hi + 1.0) } else { (lo, hi) };
        let rough = (hi - lo) / target.max(1) as f64;
        let magnitude = 10f64.powf(rough.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= rough)
            .unwrap_or(10.0 * magnitude);
        let step = if integer { step.ceil().max(1.0) } else { step };
        Self { min: (lo / step).floor() * step, max: (hi / step).ceil() * step, step }
    }

    fn values(&self) -> Vec<f64> {
        let count = ((self.max - self.min) / self.step).round() as usize;
        (0..=count).map(|i| self.min + i as f64 * self.step).collect()
    }

    fn label(&self, value: f64) -> String {
        let decimals = if self.step >= 1.0 { 0 } else { (-self.step.log10()).ceil() as usize + 1 };
        let text = format!("{value:.decimals$}");
        // Drop a trailing zero from e.g. "2.50" but keep integers intact.
        if decimals > 0 {
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            text
        }
    }
}

fn draw_set(svg: &mut String, frame: &Frame, set: &PlotSeries, points: &[GenerationFitness]) {
    let _ = writeln!(svg, r#"<g class="series" data-label="{}">"#, xml_escape(&set.label));
    // Shade between best and worst where both are known.
    let banded: Vec<&GenerationFitness> =
        points.iter().filter(|p| p.best.is_finite() && p.worst.is_finite()).collect();
    if banded.len() >= 2 {
        let upper = banded.iter().map(|p| (frame.x(f64::from(p.generation)), frame.y(p.best)));
        let lower = banded.iter().rev().map(|p| (frame.x(f64::from(p.generation)), frame.y(p.worst)));
        let opacity = if set.dashed { 0.05 } else { 0.09 };
        let _ = writeln!(
            svg,
            r#"<polygon class="band" fill="{BAND}" fill-opacity="{opacity}" stroke="none" points="{}"/>"#,
            point_list(upper.chain(lower))
        );
    }
    let dash = if set.dashed { format!(r#" stroke-dasharray="{DASH}""#) } else { String::new() };
    for (index, (name, colour, width)) in METRICS.iter().enumerate() {
        let line: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| metric(p, index).is_finite())
            .map(|p| (frame.x(f64::from(p.generation)), frame.y(metric(p, index))))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline class="{name}" fill="none" stroke="{colour}" stroke-width="{width}"{dash} stroke-linejoin="round" stroke-linecap="round" points="{}"/>"#,
            point_list(line.iter().copied())
        );
        // Markers on the best line while they stay readable.
        if index == 0 && line.len() <= 40 {
            for (x, y) in &line {
                let fill = if set.dashed { "white" } else { colour };
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.6" fill="{fill}" stroke="{colour}" stroke-width="1.2"/>"#
                );
            }
        }
    }
    svg.push_str("</g>\n");
}

fn draw_legend(svg: &mut String, series: &[PlotSeries]) {
    let x = WIDTH - RIGHT + 22.0;
    let mut y = TOP + 8.0;
    svg.push_str("<g class=\"legend\" font-size=\"13\" fill=\"#333333\">\n");
    for set in series {
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{y:.1}" font-weight="bold">{}</text>"#,
            xml_escape(&set.label)
        );
        y += 20.0;
        let dash = if set.dashed { format!(r#" stroke-dasharray="{DASH}""#) } else { String::new() };
        for (name, colour, width) in METRICS {
            let _ = writeln!(
                svg,
                r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="{width}"{dash}/>"#,
                y - 4.0,
                x + 30.0,
                y - 4.0
            );
            let _ = writeln!(svg, r#"<text x="{:.1}" y="{y:.1}">{name}</text>"#, x + 38.0);
            y += 18.0;
        }
        y += 14.0;
    }
    svg.push_str("</g>\n");
}

pub(super) fn point_list(points: impl Iterator<Item = (f64, f64)>) -> String {
    points.map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Checks tag nesting and attribute quoting: enough to catch broken SVG text.
    pub(in crate::report) fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text_before = &rest[..start];
            assert!(!text_before.contains('>'), "stray '>' in text: {text_before:?}");
            let end = rest[start..].find('>').map(|e| start + e).expect("unclosed tag");
            let tag = &rest[start + 1..end];
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes in <{tag}>");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name.trim()), "mismatched </{name}>");
            } else if !tag.starts_with('?') && !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("empty tag");
                stack.push(name.to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed elements: {stack:?}");
        assert!(rest.trim().is_empty());
    }

    fn polylines(svg: &str) -> Vec<(String, usize)> {
        svg.lines()
            .filter(|l| l.starts_with("<polyline"))
            .map(|l| {
                let class =
                    l.split("class=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("").to_string();
                let points = l.split("points=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or("");
                (class, points.split_whitespace().count())
            })
            .collect()
    }

    fn curve(n: u32, offset: f64) -> Vec<GenerationFitness> {
        (1..=n)
            .map(|g| {
                let best = offset + 30.0 * (1.0 - (-f64::from(g) / 10.0).exp());
                GenerationFitness { generation: g, best, mean: best - 6.0, worst: best - 15.0 }
            })
            .collect()
    }

    #[test]
    fn two_sets_give_six_polylines_with_one_point_per_generation() {
        let series = [
            PlotSeries { label: "EvNAS".into(), points: curve(50, 50.0), dashed: false },
            PlotSeries { label: "random search".into(), points: curve(30, 40.0), dashed: true },
        ];
        let svg = fitness_plot_svg(&series, "CIFAR-10 <search> & co");
        assert_well_formed(&svg);
        assert!(svg.contains("CIFAR-10 &lt;search&gt; &amp; co"));
        let lines = polylines(&svg);
        let expected: Vec<(String, usize)> =
            [("best", 50), ("mean", 50), ("worst", 50), ("best", 30), ("mean", 30), ("worst", 30)]
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect();
        assert_eq!(lines, expected);
        assert_eq!(
            svg.matches("stroke-dasharray").count(),
            3 + 3,
            "3 dashed polylines + 3 dashed legend lines"
        );
    }

    #[test]
    fn non_finite_values_are_left_out_of_their_line() {
        let mut points = curve(5, 50.0);
        points[2].worst = f64::NAN;
        let svg = fitness_plot_svg(&[PlotSeries { label: "run".into(), points, dashed: false }], "t");
        assert_well_formed(&svg);
        let counts: Vec<usize> = polylines(&svg).into_iter().map(|(_, n)| n).collect();
        assert_eq!(counts, vec![5, 5, 4]);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn empty_input_still_renders_a_valid_frame() {
        let svg = fitness_plot_svg(&[], "nothing yet");
        assert_well_formed(&svg);
        assert!(svg.contains("no data"));
        let single = fitness_plot_svg(
            &[PlotSeries { label: "one".into(), points: curve(1, 60.0), dashed: false }],
            "g1",
        );
        assert_well_formed(&single);
        assert!(!single.contains("NaN") && !single.contains("inf"));
    }

    #[test]
    fn ticks_are_nice_and_cover_the_data() {
        let t = Ticks::nice(43.2, 81.7, 6, false);
        assert_eq!((t.min, t.max, t.step), (40.0, 90.0, 10.0));
        let x = Ticks::nice(1.0, 50.0, 8, true);
        assert_eq!((x.min, x.max, x.step), (0.0, 50.0, 10.0));
        let fine = Ticks::nice(0.1, 0.35, 5, false);
        assert_eq!(fine.label(0.15), "0.15");
        let flat = Ticks::nice(3.0, 3.0, 5, true);
        assert!(flat.min < 3.0 && flat.max > 3.0, "a constant series still gets a range");
    }
}
