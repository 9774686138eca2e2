//! SVG picture of a cell drawn without external tools, from the layered layout in `layout.rs`:
//! inputs on the left, intermediate nodes in between, c_{k} on the right, op names on the edges.
//! Colours follow visualize.py.

use std::fmt::Write;

use super::layout::{layout, CellLayout, PlacedEdge};
use super::{CellGraph, RenderError};
use crate::report::xml_escape;
use crate::space::genotype::Gene;

const MARGIN: f64 = 18.0;
const TITLE_H: f64 = 34.0;
const INPUT_FILL: &str = "#b4eeb4"; // darkseagreen2
const NODE_FILL: &str = "#add8e6"; // lightblue
const OUTPUT_FILL: &str = "#eee8aa"; // palegoldenrod
const EDGE_STROKE: &str = "#6f6f6f";
const CONCAT_STROKE: &str = "#a0a0a0";
const LABEL_FONT: &str = "DejaVu Sans Mono, Menlo, Consolas, monospace";
const NODE_FONT: &str = "Times New Roman, Times, DejaVu Serif, serif";

/// A standalone SVG document of one cell; `title` is drawn above it (omitted when empty).
pub fn render_cell_svg(genes: &[Gene], concat: &[usize], title: &str) -> Result<String, RenderError> {
    let graph = CellGraph::new(genes, concat)?;
    let layout = layout(&graph);
    Ok(draw(&graph, &layout, title))
}

fn draw(graph: &CellGraph, layout: &CellLayout, title: &str) -> String {
    let title_h = if title.is_empty() { 0.0 } else { TITLE_H };
    let width = layout.width + 2.0 * MARGIN;
    let height = layout.height + 2.0 * MARGIN + title_h;
    let mut svg = String::new();
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.1} {height:.1}">"#
    );
    let _ = writeln!(svg, "<title>{}</title>", xml_escape(title));
    let _ = writeln!(
        svg,
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555555"/></marker></defs>"##
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    if !title.is_empty() {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-family="{NODE_FONT}" font-size="20" font-weight="bold">{}</text>"#,
            width / 2.0,
            MARGIN + 18.0,
            xml_escape(title)
        );
    }
    let _ = writeln!(svg, r#"<g transform="translate({MARGIN:.1},{:.1})">"#, MARGIN + title_h);
    for edge in &layout.edges {
        let stroke = if edge.label.is_some() { EDGE_STROKE } else { CONCAT_STROKE };
        let _ = writeln!(
            svg,
            r#"<path d="{}" fill="none" stroke="{stroke}" stroke-width="1.6" marker-end="url(#arrow)"/>"#,
            path_data(edge)
        );
    }
    for label in layout.edges.iter().filter_map(|e| e.label.as_ref()) {
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="4" fill="white" stroke="#c8c8c8"/>"##,
            label.cx - label.w / 2.0,
            label.cy - label.h / 2.0,
            label.w,
            label.h
        );
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-family="{LABEL_FONT}" font-size="13" fill="#222222">{}</text>"##,
            label.cx,
            label.cy + 4.5,
            xml_escape(&label.text)
        );
    }
    for node in &layout.nodes {
        let fill = match node.id {
            0 | 1 => INPUT_FILL,
            id if id == graph.output() => OUTPUT_FILL,
            _ => NODE_FILL,
        };
        let _ = writeln!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3" fill="{fill}" stroke="#333333" stroke-width="2"/>"##,
            node.cx - node.w / 2.0,
            node.cy - node.h / 2.0,
            node.w,
            node.h
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-family="{NODE_FONT}" font-size="19">{}</text>"#,
            node.cx,
            node.cy + 6.0,
            node_text(graph, node.id)
        );
    }
    svg.push_str("</g>\n</svg>\n");
    svg
}

/// Node names with the subscripts visualize.py spells as `c_{k-2}`.
fn node_text(graph: &CellGraph, id: usize) -> String {
    let subscript = |s: &str| format!(r#"c<tspan dy="5" font-size="14">{s}</tspan>"#);
    match id {
        0 => subscript("k-2"),
        1 => subscript("k-1"),
        _ if id == graph.output() => subscript("k"),
        _ => (id - 2).to_string(),
    }
}

/// Curves with horizontal tangents between consecutive points; level runs stay straight.
fn path_data(edge: &PlacedEdge) -> String {
    let mut d = String::new();
    let Some(&(x0, y0)) = edge.points.first() else {
        return d;
    };
    let _ = write!(d, "M{x0:.1},{y0:.1}");
    for pair in edge.points.windows(2) {
        let ((ax, ay), (bx, by)) = (pair[0], pair[1]);
        if (ay - by).abs() < 0.05 {
            let _ = write!(d, " L{bx:.1},{by:.1}");
        } else {
            let mx = (ax + bx) / 2.0;
            let _ = write!(d, " C{mx:.1},{ay:.1} {mx:.1},{by:.1} {bx:.1},{by:.1}");
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Genotype;

    /// Tags open and close in nesting order (enough for the flat XML we write).
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let end = start + rest[start..].find('>').expect("tag closes");
            let tag = &rest[start + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "closing </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().expect("tag name"));
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
    }

    #[test]
    fn svg_is_well_formed_and_shows_every_op_and_node() {
        for name in ["EvNAS-A", "NASNet", "AmoebaNet"] {
            let g = Genotype::builtin(name).unwrap();
            let svg = render_cell_svg(&g.reduce, &g.reduce_concat, &format!("{name} <reduce> & co")).unwrap();
            assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
            assert_well_formed(&svg);
            assert!(svg.contains("&lt;reduce&gt; &amp; co"));
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{name}");
            for (op, _) in &g.reduce {
                assert!(svg.contains(&format!(">{op}</text>")), "{name}: {op}");
            }
            assert_eq!(svg.matches("marker-end=").count(), g.reduce.len() + g.reduce_concat.len());
            assert_eq!(svg.matches(r#"stroke-width="2""#).count(), g.reduce.len() / 2 + 3, "{name}: boxes");
            assert!(svg.contains(r#"c<tspan dy="5" font-size="14">k-2</tspan>"#));
        }
    }

    #[test]
    fn empty_title_draws_no_heading() {
        let g = Genotype::builtin("DARTS").unwrap();
        let svg = render_cell_svg(&g.normal, &g.normal_concat, "").unwrap();
        assert!(svg.contains("<title></title>"));
        assert!(!svg.contains("font-weight=\"bold\""));
    }
}
