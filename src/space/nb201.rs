//! The NAS-Bench-201 search space (EvNAS §4, search space S2): one cell of 4 nodes, every node
//! reading every earlier node, so 6 edges, each carrying one of [`NB201_PRIMITIVES`].
//!
//! Edge rows follow the reference's `edge2index` (search_cellsNAS201.py): the sorted keys
//! `1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2`. Decoding follows search_model_NAS201.py:
//! `discretize()` one-hots the softmax argmax of each row and `genotype()` names the argmax op;
//! unlike DARTS, `none` may be chosen. The architecture string is `Structure.tostr()`
//! of genotypesNAS201.py, e.g. `|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|...|`.

use std::fmt;

use super::alpha::AlphaMatrix;
use super::ops::{Nb201Op, NB201_PRIMITIVES};
use super::text_pos::TextPos;

/// Nodes after the input node (1, 2, 3).
pub const NB201_NODES: usize = 3;

/// `(to, from)` of each α row, in the reference's `edge2index` order.
pub const NB201_EDGES: [(usize, usize); 6] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)];

/// The α row of edge `to <- from`, if that edge exists.
pub fn nb201_edge_index(to: usize, from: usize) -> Option<usize> {
    NB201_EDGES.iter().position(|&edge| edge == (to, from))
}

/// One NAS-Bench-201 cell: the op on each edge, in [`NB201_EDGES`] order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nb201Genotype {
    pub ops: [Nb201Op; 6],
}

/// α that is not a NAS-Bench-201 cell, or text that is not an architecture string.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Nb201Error {
    #[error("alpha is {edges}x{ops}; a NAS-Bench-201 cell is 6x5")]
    Shape { edges: usize, ops: usize },
    #[error("alpha value at edge {edge}, op {op} is {value}, not a finite number")]
    NotFinite { edge: usize, op: usize, value: f32 },
    #[error("unexpected `{token}` at {pos}, expected {expected}")]
    Unexpected { token: String, expected: &'static str, pos: TextPos },
    #[error("text ends at {pos}, expected {expected}")]
    UnexpectedEnd { expected: &'static str, pos: TextPos },
    #[error("unknown op `{token}` at {pos}")]
    UnknownOp { token: String, pos: TextPos },
    #[error("node {node} cannot read node `{token}` at {pos}: only nodes 0..{node}")]
    InputOutOfRange { node: usize, token: String, pos: TextPos },
    #[error("node {node} reads node `{token}` a second time at {pos}")]
    DuplicateInput { node: usize, token: String, pos: TextPos },
    #[error("node {node} ending at {pos} does not read node {input}; every edge needs an op")]
    MissingInput { node: usize, input: usize, pos: TextPos },
    #[error("extra node `{token}` at {pos}: a NAS-Bench-201 cell has {NB201_NODES} nodes")]
    TooManyNodes { token: String, pos: TextPos },
    #[error("text ends at {pos} after {found} nodes; a NAS-Bench-201 cell has {NB201_NODES}")]
    TooFewNodes { found: usize, pos: TextPos },
}

impl Nb201Genotype {
    /// The argmax op of each row (softmax as the reference's `discretize`; the lower column on
    /// ties, as `torch.max`). `none` counts like any other op.
    pub fn from_alpha(alpha: &AlphaMatrix) -> Result<Self, Nb201Error> {
        if alpha.edges() != NB201_EDGES.len() || alpha.ops() != NB201_PRIMITIVES.len() {
            return Err(Nb201Error::Shape { edges: alpha.edges(), ops: alpha.ops() });
        }
        if let Some(index) = alpha.values().iter().position(|v| !v.is_finite()) {
            let (edge, op) = (index / alpha.ops(), index % alpha.ops());
            return Err(Nb201Error::NotFinite { edge, op, value: alpha.values()[index] });
        }
        let mut ops = [Nb201Op::Zero; 6];
        for (edge, op) in ops.iter_mut().enumerate() {
            let weights = alpha.softmax_row(edge);
            let best =
                (0..weights.len()).fold(0, |best, c| if weights[c] > weights[best] { c } else { best });
            *op = NB201_PRIMITIVES[best];
        }
        Ok(Self { ops })
    }

    /// The one-hot α^d of this cell (6 × 5).
    pub fn to_alpha(&self) -> AlphaMatrix {
        let mut alpha = AlphaMatrix::zeros(NB201_EDGES.len(), NB201_PRIMITIVES.len());
        for (edge, op) in self.ops.iter().enumerate() {
            alpha.set(edge, op.primitive_index(), 1.0);
        }
        alpha
    }

    /// The op on edge `to <- from`.
    pub fn op(&self, to: usize, from: usize) -> Option<Nb201Op> {
        nb201_edge_index(to, from).map(|edge| self.ops[edge])
    }

    /// Parses the architecture string of `Structure.tostr()`; inputs of a node may come in any
    /// order, but each earlier node exactly once. Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, Nb201Error> {
        ArchParser::new(text).parse()
    }
}

/// α^d of a NAS-Bench-201 cell, as the reference's `discretize()`.
pub fn nb201_decode(alpha: &AlphaMatrix) -> Result<AlphaMatrix, Nb201Error> {
    Ok(Nb201Genotype::from_alpha(alpha)?.to_alpha())
}

impl fmt::Display for Nb201Genotype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for node in 1..=NB201_NODES {
            if node > 1 {
                f.write_str("+")?;
            }
            f.write_str("|")?;
            for from in 0..node {
                let op = self.op(node, from).ok_or(fmt::Error)?;
                write!(f, "{op}~{from}|")?;
            }
        }
        Ok(())
    }
}

impl std::str::FromStr for Nb201Genotype {
    type Err = Nb201Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

struct ArchParser<'a> {
    text: &'a str,
    at: usize,
    end: usize,
}

impl<'a> ArchParser<'a> {
    fn new(text: &'a str) -> Self {
        let at = text.len() - text.trim_start().len();
        Self { text, at, end: text.trim_end().len().max(at) }
    }

    fn pos(&self, offset: usize) -> TextPos {
        TextPos::locate(self.text, offset)
    }

    fn peek(&self) -> Option<u8> {
        (self.at < self.end).then(|| self.text.as_bytes()[self.at])
    }

    /// The token starting at `at`: up to the next delimiter, or the one delimiter there.
    fn token(&self, at: usize) -> &'a str {
        let rest = &self.text[at..self.end];
        let len = rest.find(['|', '~', '+']).unwrap_or(rest.len());
        let len = if len == 0 { rest.chars().next().map_or(0, char::len_utf8) } else { len };
        &rest[..len]
    }

    fn unexpected(&self, expected: &'static str) -> Nb201Error {
        if self.at >= self.end {
            Nb201Error::UnexpectedEnd { expected, pos: self.pos(self.end) }
        } else {
            Nb201Error::Unexpected {
                token: self.token(self.at).to_string(),
                expected,
                pos: self.pos(self.at),
            }
        }
    }

    fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), Nb201Error> {
        if self.peek() != Some(byte) {
            return Err(self.unexpected(expected));
        }
        self.at += 1;
        Ok(())
    }

    fn parse(mut self) -> Result<Nb201Genotype, Nb201Error> {
        let mut ops = [None; 6];
        let mut node = 0;
        loop {
            let node_start = self.at;
            if node == NB201_NODES {
                let token = self.text[node_start..self.end].to_string();
                return Err(Nb201Error::TooManyNodes { token, pos: self.pos(node_start) });
            }
            node += 1;
            self.expect(b'|', "`|` opening a node")?;
            loop {
                self.edge(node, &mut ops)?;
                if matches!(self.peek(), None | Some(b'+')) {
                    break;
                }
            }
            let unset = |from: usize| nb201_edge_index(node, from).is_some_and(|edge| ops[edge].is_none());
            if let Some(input) = (0..node).find(|&from| unset(from)) {
                return Err(Nb201Error::MissingInput { node, input, pos: self.pos(self.at) });
            }
            if self.peek().is_none() {
                break;
            }
            self.expect(b'+', "`+` between nodes")?;
        }
        if node < NB201_NODES {
            return Err(Nb201Error::TooFewNodes { found: node, pos: self.pos(self.end) });
        }
        let mut result = [Nb201Op::Zero; 6];
        for (slot, op) in result.iter_mut().zip(ops) {
            // Every slot was filled: each node's inputs were checked complete above.
            *slot = op.ok_or_else(|| Nb201Error::TooFewNodes { found: node, pos: self.pos(self.end) })?;
        }
        Ok(Nb201Genotype { ops: result })
    }

    /// `op~from|`
    fn edge(&mut self, node: usize, ops: &mut [Option<Nb201Op>; 6]) -> Result<(), Nb201Error> {
        let op_at = self.at;
        let name = self.token(op_at);
        if name.is_empty() || name.len() == 1 && "|~+".contains(name) {
            return Err(self.unexpected("an op name"));
        }
        let op = Nb201Op::from_name(name)
            .ok_or_else(|| Nb201Error::UnknownOp { token: name.to_string(), pos: self.pos(op_at) })?;
        self.at += name.len();
        self.expect(b'~', "`~` after the op name")?;
        let from_at = self.at;
        let digits = self.token(from_at);
        let from: usize = digits.parse().map_err(|_| self.unexpected("the input node number"))?;
        let edge = nb201_edge_index(node, from).ok_or_else(|| Nb201Error::InputOutOfRange {
            node,
            token: digits.to_string(),
            pos: self.pos(from_at),
        })?;
        if ops[edge].is_some() {
            return Err(Nb201Error::DuplicateInput {
                node,
                token: digits.to_string(),
                pos: self.pos(from_at),
            });
        }
        ops[edge] = Some(op);
        self.at += digits.len();
        self.expect(b'|', "`|` after the input node")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str =
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|";

    #[test]
    fn edge_rows_follow_sorted_reference_keys() {
        let mut keys: Vec<String> = (1..4).flat_map(|i| (0..i).map(move |j| format!("{i}<-{j}"))).collect();
        keys.sort();
        let ours: Vec<String> = NB201_EDGES.iter().map(|(i, j)| format!("{i}<-{j}")).collect();
        assert_eq!(ours, keys);
    }

    #[test]
    fn architecture_string_round_trips() {
        let g = Nb201Genotype::parse(EXAMPLE).unwrap();
        assert_eq!(g.op(2, 1), Some(Nb201Op::AvgPool3x3));
        assert_eq!(g.op(3, 2), Some(Nb201Op::SkipConnect));
        assert_eq!(g.to_string(), EXAMPLE);
        let shuffled = "  |nor_conv_3x3~0|+|avg_pool_3x3~1|nor_conv_3x3~0|+|skip_connect~2|skip_connect~0|nor_conv_3x3~1|\n";
        assert_eq!(Nb201Genotype::parse(shuffled).unwrap(), g);
    }

    #[test]
    fn bad_strings_name_the_token() {
        let cases: [(&str, &str); 9] = [
            (
                "|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                "unknown op `nor_conv_5x5` at line 1, column 2",
            ),
            ("|none~0|+|none~0|none~3|+|none~0|none~1|none~2|", "`3`"),
            ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "second time"),
            ("|none~0|+|none~0|+|none~0|none~1|none~2|", "does not read node 1"),
            ("|none~0|+|none~0|none~1|", "after 2 nodes"),
            ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|", "extra node `|none~0|`"),
            ("|none~x|+|none~0|none~1|+|none~0|none~1|none~2|", "unexpected `x`"),
            ("|none-0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op `none-0`"),
            ("none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unexpected `none` at line 1, column 1"),
        ];
        for (text, wanted) in cases {
            let message = Nb201Genotype::parse(text).unwrap_err().to_string();
            assert!(message.contains(wanted), "{text}: {message}");
        }
    }

    #[test]
    fn decoding_takes_argmax_and_may_choose_none() {
        let mut alpha = AlphaMatrix::zeros(6, 5);
        alpha.set(0, 0, 1.0); // none wins edge 1<-0
        alpha.set(1, 3, 0.5);
        alpha.set(2, 4, 0.7);
        alpha.set(5, 1, 2.0);
        // Edges 3<-0 and 3<-1 are all ties: column 0 (`none`) as torch.max.
        let g = Nb201Genotype::from_alpha(&alpha).unwrap();
        assert_eq!(g.to_string(), "|none~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|");
        let d = nb201_decode(&alpha).unwrap();
        assert_eq!(d, g.to_alpha());
        assert_eq!(d.values().iter().sum::<f32>(), 6.0);
        assert_eq!(nb201_decode(&d).unwrap(), d);
        assert_eq!(Nb201Genotype::from_alpha(&d).unwrap(), g);
    }

    #[test]
    fn wrong_shape_is_rejected() {
        let alpha = AlphaMatrix::zeros(14, 8);
        assert_eq!(Nb201Genotype::from_alpha(&alpha), Err(Nb201Error::Shape { edges: 14, ops: 8 }));
    }
}
