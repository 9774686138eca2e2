//! Graphviz DOT text of a cell, with the reference visualize.py's look (left to right, filled
//! boxes: inputs darkseagreen2, intermediate nodes lightblue, output palegoldenrod).

use std::fmt::Write;

use super::{CellGraph, RenderError};
use crate::space::genotype::Gene;

/// DOT text for one cell; `dot -Tsvg` renders it. `title` becomes the graph label.
pub fn render_cell_dot(genes: &[Gene], concat: &[usize], title: &str) -> Result<String, RenderError> {
    let graph = CellGraph::new(genes, concat)?;
    let mut out = String::new();
    // Writing into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "digraph {} {{", quote(title));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  label={}; labelloc=t; fontsize=20; fontname=\"times\";", quote(title));
    let _ = writeln!(out, "  edge [fontsize=20, fontname=\"times\"];");
    let _ = writeln!(
        out,
        "  node [style=filled, shape=rect, align=center, fontsize=20, height=0.5, width=0.5, penwidth=2, \
         fontname=\"times\"];"
    );
    for id in 0..graph.node_count() {
        let fill = match id {
            0 | 1 => "darkseagreen2",
            _ if id == graph.output() => "palegoldenrod",
            _ => "lightblue",
        };
        let _ = writeln!(out, "  {} [fillcolor={fill}];", quote(&graph.node_name(id)));
    }
    for (from, to, label) in &graph.edges {
        let (from, to) = (quote(&graph.node_name(*from)), quote(&graph.node_name(*to)));
        match label {
            Some(label) => {
                let _ = writeln!(out, "  {from} -> {to} [label={}, fillcolor=gray];", quote(label));
            }
            None => {
                let _ = writeln!(out, "  {from} -> {to} [fillcolor=gray];");
            }
        }
    }
    out.push_str("}\n");
    Ok(out)
}

/// A DOT double-quoted string.
fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '\n' => quoted.push_str("\\n"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::{DartsOp, Genotype};

    #[test]
    fn lists_nodes_gene_edges_and_concat_edges() {
        let g = Genotype::builtin("DARTS_V2").unwrap();
        let dot = render_cell_dot(&g.normal, &g.normal_concat, "normal \"v2\"").unwrap();
        assert!(dot.starts_with("digraph \"normal \\\"v2\\\"\" {\n"), "{dot}");
        assert!(dot.contains("\"c_{k-2}\" [fillcolor=darkseagreen2];"));
        assert!(dot.contains("\"c_{k}\" [fillcolor=palegoldenrod];"));
        assert!(dot.contains("\"c_{k-2}\" -> \"0\" [label=\"sep_conv_3x3\", fillcolor=gray];"));
        assert!(dot.contains("\"0\" -> \"3\" [label=\"dil_conv_3x3\", fillcolor=gray];"));
        for node in 0..4 {
            assert!(dot.contains(&format!("\"{node}\" -> \"c_{{k}}\" [fillcolor=gray];")), "{dot}");
        }
        assert_eq!(dot.matches("->").count(), 12);
        assert!(dot.ends_with("}\n"));
    }

    #[test]
    fn invalid_cell_is_an_error() {
        assert!(render_cell_dot(&[(DartsOp::SepConv3x3, 0)], &[2], "x").is_err());
    }
}
