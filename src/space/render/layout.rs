//! Layered layout of a cell graph for the SVG renderer: a small Sugiyama-style pass.
//!
//! Real nodes sit in even layers by longest path from the inputs (so every edge points right);
//! an edge spanning several layers gets one dummy vertex in each odd layer it crosses, and the
//! dummy next to its target carries the op label. Labels therefore get their own slots and never
//! overlap each other or a box. Vertex order within a layer comes from barycenter sweeps (the
//! ordering with fewest crossings is kept), heights from a few passes that pull each vertex
//! towards its neighbours while keeping the order and the gaps.

use super::CellGraph;

const NODE_W: f64 = 76.0;
const NODE_H: f64 = 40.0;
/// Width of one char of the 13px monospace label font.
const LABEL_CHAR_W: f64 = 7.9;
const LABEL_PAD: f64 = 12.0;
const LABEL_H: f64 = 20.0;
const DUMMY_H: f64 = 6.0;
const NODE_GAP: f64 = 22.0;
const DUMMY_GAP: f64 = 8.0;
const LAYER_GAP: f64 = 34.0;
const MIN_DUMMY_LAYER_W: f64 = 24.0;
const PORT_STEP: f64 = 7.0;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlacedNode {
    pub id: usize,
    pub cx: f64,
    pub cy: f64,
    pub w: f64,
    pub h: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlacedLabel {
    pub text: String,
    pub cx: f64,
    pub cy: f64,
    pub w: f64,
    pub h: f64,
}

/// An edge as points joined by curves with horizontal tangents; the last point is the arrow tip.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PlacedEdge {
    pub points: Vec<(f64, f64)>,
    pub label: Option<PlacedLabel>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CellLayout {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<PlacedNode>,
    pub edges: Vec<PlacedEdge>,
}

struct Vertex {
    layer: usize,
    real: bool,
    h: f64,
    w: f64,
    label: Option<String>,
}

pub(crate) fn layout(graph: &CellGraph) -> CellLayout {
    // Longest-path layers of the real nodes; the output is always rightmost.
    let n = graph.node_count();
    let mut real_layer = vec![0usize; n];
    for id in 2..graph.output() {
        real_layer[id] =
            1 + graph.edges.iter().filter(|e| e.1 == id).map(|e| real_layer[e.0]).max().unwrap_or(0);
    }
    real_layer[graph.output()] = 1 + real_layer[..graph.output()].iter().copied().max().unwrap_or(0);

    let mut vertices: Vec<Vertex> = real_layer
        .iter()
        .map(|&l| Vertex { layer: 2 * l, real: true, h: NODE_H, w: NODE_W, label: None })
        .collect();
    let mut chains: Vec<Vec<usize>> = Vec::with_capacity(graph.edges.len());
    for (from, to, label) in &graph.edges {
        let mut chain = vec![*from];
        let (first, last) = (2 * real_layer[*from] + 1, 2 * real_layer[*to] - 1);
        for layer in first..=last {
            let label = if layer == last { label.clone() } else { None };
            let (w, h) = match &label {
                Some(text) => (text.chars().count() as f64 * LABEL_CHAR_W + LABEL_PAD, LABEL_H),
                None => (0.0, DUMMY_H),
            };
            chain.push(vertices.len());
            vertices.push(Vertex { layer, real: false, h, w, label });
        }
        chain.push(*to);
        chains.push(chain);
    }
    let layer_count = 2 * real_layer[graph.output()] + 1;
    let mut pred = vec![Vec::new(); vertices.len()];
    let mut succ = vec![Vec::new(); vertices.len()];
    for chain in &chains {
        for pair in chain.windows(2) {
            succ[pair[0]].push(pair[1]);
            pred[pair[1]].push(pair[0]);
        }
    }

    let order = order_layers(&vertices, layer_count, &pred, &succ);
    let y = assign_heights(&vertices, &order, &pred, &succ);

    // Columns: each layer as wide as its widest vertex.
    let mut layer_w = vec![0.0f64; layer_count];
    for v in &vertices {
        layer_w[v.layer] = layer_w[v.layer].max(v.w);
    }
    let mut layer_cx = vec![0.0; layer_count];
    let mut x = 0.0;
    for layer in 0..layer_count {
        if layer % 2 == 1 {
            layer_w[layer] = layer_w[layer].max(MIN_DUMMY_LAYER_W);
        }
        layer_cx[layer] = x + layer_w[layer] / 2.0;
        x += layer_w[layer] + LAYER_GAP;
    }
    let width = x - LAYER_GAP;
    let height = vertices.iter().enumerate().map(|(i, v)| y[i] + v.h / 2.0).fold(0.0, f64::max);

    let ports = port_offsets(&chains, &y, n);
    let nodes = (0..n)
        .map(|id| PlacedNode { id, cx: layer_cx[vertices[id].layer], cy: y[id], w: NODE_W, h: NODE_H })
        .collect();
    let edges = chains
        .iter()
        .zip(ports)
        .map(|(chain, (out_dy, in_dy))| {
            let (from, to) = (chain[0], chain[chain.len() - 1]);
            let mut points = vec![(layer_cx[vertices[from].layer] + NODE_W / 2.0, y[from] + out_dy)];
            let mut label = None;
            for &d in &chain[1..chain.len() - 1] {
                let v = &vertices[d];
                let half = layer_w[v.layer] / 2.0;
                points.push((layer_cx[v.layer] - half, y[d]));
                points.push((layer_cx[v.layer] + half, y[d]));
                if let Some(text) = &v.label {
                    label = Some(PlacedLabel {
                        text: text.clone(),
                        cx: layer_cx[v.layer],
                        cy: y[d],
                        w: v.w,
                        h: v.h,
                    });
                }
            }
            points.push((layer_cx[vertices[to].layer] - NODE_W / 2.0, y[to] + in_dy));
            PlacedEdge { points, label }
        })
        .collect();
    CellLayout { width, height, nodes, edges }
}

/// Barycenter sweeps; returns the per-layer order with the fewest crossings seen.
fn order_layers(
    vertices: &[Vertex],
    layers: usize,
    pred: &[Vec<usize>],
    succ: &[Vec<usize>],
) -> Vec<Vec<usize>> {
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); layers];
    for (id, v) in vertices.iter().enumerate() {
        order[v.layer].push(id);
    }
    let mut pos = vec![0.0f64; vertices.len()];
    let index = |order: &Vec<Vec<usize>>, pos: &mut Vec<f64>| {
        for layer in order {
            for (i, &v) in layer.iter().enumerate() {
                pos[v] = i as f64;
            }
        }
    };
    index(&order, &mut pos);
    let mut best = (crossings(&order, succ, &pos), order.clone());
    for round in 0..8 {
        let downward = round % 2 == 0;
        let layer_seq: Vec<usize> =
            if downward { (1..layers).collect() } else { (1..layers).rev().collect() };
        for layer in layer_seq {
            let neighbours = if downward { pred } else { succ };
            let mut keyed: Vec<(f64, usize)> = order[layer]
                .iter()
                .map(|&v| {
                    let ns = &neighbours[v];
                    let bary = if ns.is_empty() {
                        pos[v]
                    } else {
                        ns.iter().map(|&u| pos[u]).sum::<f64>() / ns.len() as f64
                    };
                    (bary, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            order[layer] = keyed.into_iter().map(|(_, v)| v).collect();
            index(&order, &mut pos);
        }
        let count = crossings(&order, succ, &pos);
        if count < best.0 {
            best = (count, order.clone());
        }
    }
    best.1
}

fn crossings(order: &[Vec<usize>], succ: &[Vec<usize>], pos: &[f64]) -> usize {
    let mut count = 0;
    for layer in order {
        let edges: Vec<(f64, f64)> =
            layer.iter().flat_map(|&u| succ[u].iter().map(move |&v| (pos[u], pos[v]))).collect();
        for (i, a) in edges.iter().enumerate() {
            count += edges[i + 1..].iter().filter(|b| (a.0 - b.0) * (a.1 - b.1) < 0.0).count();
        }
    }
    count
}

/// Vertical centres: start stacked, then pull each vertex towards the mean height of its
/// neighbours, keeping the layer's order and gaps; finally shift everything to start at 0.
fn assign_heights(
    vertices: &[Vertex],
    order: &[Vec<usize>],
    pred: &[Vec<usize>],
    succ: &[Vec<usize>],
) -> Vec<f64> {
    let gap = |v: &Vertex| if v.real { NODE_GAP } else { DUMMY_GAP };
    let mut y = vec![0.0f64; vertices.len()];
    for layer in order {
        let mut top = 0.0;
        for &v in layer {
            y[v] = top + vertices[v].h / 2.0;
            top += vertices[v].h + gap(&vertices[v]);
        }
    }
    for _ in 0..12 {
        for layer in order {
            let desired: Vec<f64> = layer
                .iter()
                .map(|&v| {
                    let ns: Vec<usize> = pred[v].iter().chain(&succ[v]).copied().collect();
                    if ns.is_empty() {
                        y[v]
                    } else {
                        ns.iter().map(|&u| y[u]).sum::<f64>() / ns.len() as f64
                    }
                })
                .collect();
            // Keep order and gaps, then centre the layer on what its vertices wanted.
            let mut placed = desired.clone();
            for i in 1..layer.len() {
                let (a, b) = (&vertices[layer[i - 1]], &vertices[layer[i]]);
                let min = placed[i - 1] + (a.h + b.h) / 2.0 + gap(a).max(gap(b));
                placed[i] = placed[i].max(min);
            }
            let shift =
                desired.iter().zip(&placed).map(|(d, p)| d - p).sum::<f64>() / layer.len().max(1) as f64;
            for (&v, p) in layer.iter().zip(placed) {
                y[v] = p + shift;
            }
        }
    }
    let top = vertices.iter().enumerate().map(|(i, v)| y[i] - v.h / 2.0).fold(f64::INFINITY, f64::min);
    y.iter().map(|v| v - top).collect()
}

/// Vertical offsets of each edge's start and end on its boxes, so that edges leaving or
/// entering one box fan out in the order of their other ends instead of meeting in a point.
fn port_offsets(chains: &[Vec<usize>], y: &[f64], real_nodes: usize) -> Vec<(f64, f64)> {
    let mut offsets = vec![(0.0, 0.0); chains.len()];
    for node in 0..real_nodes {
        let mut outgoing: Vec<(f64, usize)> =
            chains.iter().enumerate().filter(|(_, c)| c[0] == node).map(|(i, c)| (y[c[1]], i)).collect();
        outgoing.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (rank, (_, edge)) in outgoing.iter().enumerate() {
            offsets[*edge].0 = spread(rank, outgoing.len());
        }
        let mut incoming: Vec<(f64, usize)> = chains
            .iter()
            .enumerate()
            .filter(|(_, c)| c[c.len() - 1] == node)
            .map(|(i, c)| (y[c[c.len() - 2]], i))
            .collect();
        incoming.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (rank, (_, edge)) in incoming.iter().enumerate() {
            offsets[*edge].1 = spread(rank, incoming.len());
        }
    }
    offsets
}

fn spread(rank: usize, count: usize) -> f64 {
    let step = if count > 1 { PORT_STEP.min((NODE_H - 12.0) / (count - 1) as f64) } else { 0.0 };
    (rank as f64 - (count as f64 - 1.0) / 2.0) * step
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Genotype;

    fn overlaps(a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)) -> bool {
        // (cx, cy, w, h)
        (a.0 - b.0).abs() < (a.2 + b.2) / 2.0 && (a.1 - b.1).abs() < (a.3 + b.3) / 2.0
    }

    #[test]
    fn boxes_and_labels_never_overlap_and_edges_point_right() {
        for name in ["NASNet", "AmoebaNet", "DARTS_V1", "DARTS_V2", "EvNAS-A", "EvNAS-B", "EvNAS-C"] {
            let g = Genotype::builtin(name).unwrap();
            for (genes, concat) in [(&g.normal, &g.normal_concat), (&g.reduce, &g.reduce_concat)] {
                let graph = CellGraph::new(genes, concat).unwrap();
                let layout = layout(&graph);
                let mut rects: Vec<(f64, f64, f64, f64)> =
                    layout.nodes.iter().map(|n| (n.cx, n.cy, n.w, n.h)).collect();
                rects.extend(
                    layout.edges.iter().filter_map(|e| e.label.as_ref()).map(|l| (l.cx, l.cy, l.w, l.h)),
                );
                assert_eq!(rects.len(), layout.nodes.len() + genes.len(), "{name}: one label per gene");
                for (i, a) in rects.iter().enumerate() {
                    assert!(a.0 - a.2 / 2.0 >= -1e-9 && a.0 + a.2 / 2.0 <= layout.width + 1e-9, "{name}");
                    assert!(a.1 - a.3 / 2.0 >= -1e-9 && a.1 + a.3 / 2.0 <= layout.height + 1e-9, "{name}");
                    for b in &rects[i + 1..] {
                        assert!(!overlaps(*a, *b), "{name}: {a:?} overlaps {b:?}");
                    }
                }
                for edge in &layout.edges {
                    assert!(edge.points.windows(2).all(|p| p[1].0 >= p[0].0), "{name}: edge goes left");
                }
            }
        }
    }
}
