//! SVG learning curve of a training run: training and test top-1 per epoch (test points only
//! where the epoch was tested). Shares the frame of the search's fitness plot.

use std::fmt::Write as _;

use super::plot::{point_list, svg_start, Frame, RIGHT, TOP, WIDTH};
use crate::final_training::EpochRecord;

/// (name, colour) of each curve.
const CURVES: [(&str, &str); 2] = [("train top-1", "#2f6db5"), ("test top-1", "#1a7f5a")];

pub fn learning_curve_svg(records: &[EpochRecord], title: &str) -> String {
    let curves: [Vec<(f64, f64)>; 2] = [
        records.iter().map(|r| (r.epoch as f64, r.train_top1)).collect(),
        records.iter().filter_map(|r| r.test_top1.map(|t| (r.epoch as f64, t))).collect(),
    ];
    let xs: Vec<f64> = records.iter().map(|r| r.epoch as f64).collect();
    let values: Vec<f64> = curves.iter().flatten().map(|&(_, v)| v).filter(|v| v.is_finite()).collect();
    let frame = Frame::new(&xs, &values, "epoch");

    let mut svg = svg_start(title);
    frame.draw_grid_and_axes(&mut svg);
    for ((name, colour), points) in CURVES.iter().zip(&curves) {
        let pixels: Vec<(f64, f64)> =
            points.iter().filter(|(_, v)| v.is_finite()).map(|&(x, v)| (frame.x(x), frame.y(v))).collect();
        let _ = writeln!(
            svg,
            r#"<polyline class="{}" fill="none" stroke="{colour}" stroke-width="2" stroke-linejoin="round" points="{}"/>"#,
            name.replace(' ', "-"),
            point_list(pixels.iter().copied())
        );
        if pixels.len() <= 60 {
            for (x, y) in &pixels {
                let _ = writeln!(svg, r#"<circle cx="{x:.1}" cy="{y:.1}" r="2.4" fill="{colour}"/>"#);
            }
        }
    }
    let x = WIDTH - RIGHT + 22.0;
    svg.push_str("<g class=\"legend\" font-size=\"13\" fill=\"#333333\">\n");
    for (i, (name, colour)) in CURVES.iter().enumerate() {
        let y = TOP + 8.0 + 20.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"#,
            y - 4.0,
            x + 30.0,
            y - 4.0
        );
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{y:.1}">{name}</text>"#, x + 38.0);
    }
    svg.push_str("</g>\n</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: usize, train: f64, test: Option<f64>) -> EpochRecord {
        EpochRecord {
            epoch,
            learning_rate: 0.025,
            drop_path_prob: 0.0,
            train_loss: 1.0,
            train_top1: train,
            train_top5: 90.0,
            test_loss: test.map(|_| 1.0),
            test_top1: test,
            test_top5: test,
            train_images: 10,
            train_seconds: 1.0,
            test_seconds: 0.5,
            images_per_second: 10.0,
        }
    }

    #[test]
    fn draws_both_curves_with_tested_epochs_only() {
        let records = [record(1, 30.0, Some(35.0)), record(2, 50.0, None), record(3, 60.0, Some(58.0))];
        let svg = learning_curve_svg(&records, "EvNAS-A <cifar10>");
        super::super::plot::tests::assert_well_formed(&svg);
        assert!(svg.contains("EvNAS-A &lt;cifar10&gt;"));
        let test_line = svg.lines().find(|l| l.contains("class=\"test-top-1\"")).expect("test curve");
        assert_eq!(test_line.matches(',').count(), 2, "two tested epochs: {test_line}");
        assert!(svg.contains(">epoch</text>"));
    }
}
