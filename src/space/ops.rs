//! Candidate operations of the two search spaces, named exactly as the reference code names them.

use serde::{Deserialize, Serialize};

/// An operation of the DARTS space (S1): every entry of the reference's `OPS` table.
///
/// The supernet searches over [`DARTS_PRIMITIVES`]; `sep_conv_7x7` and `conv_7x1_1x7` occur only
/// in hand-designed genotypes (NASNet, AmoebaNet) used by the evaluation networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DartsOp {
    #[serde(rename = "none")]
    Zero,
    #[serde(rename = "max_pool_3x3")]
    MaxPool3x3,
    #[serde(rename = "avg_pool_3x3")]
    AvgPool3x3,
    #[serde(rename = "skip_connect")]
    SkipConnect,
    #[serde(rename = "sep_conv_3x3")]
    SepConv3x3,
    #[serde(rename = "sep_conv_5x5")]
    SepConv5x5,
    #[serde(rename = "sep_conv_7x7")]
    SepConv7x7,
    #[serde(rename = "dil_conv_3x3")]
    DilConv3x3,
    #[serde(rename = "dil_conv_5x5")]
    DilConv5x5,
    #[serde(rename = "conv_7x1_1x7")]
    Conv7x1_1x7,
}

/// The DARTS supernet's candidates, in the reference's `PRIMITIVES` order (α column order).
pub const DARTS_PRIMITIVES: [DartsOp; 8] = [
    DartsOp::Zero,
    DartsOp::MaxPool3x3,
    DartsOp::AvgPool3x3,
    DartsOp::SkipConnect,
    DartsOp::SepConv3x3,
    DartsOp::SepConv5x5,
    DartsOp::DilConv3x3,
    DartsOp::DilConv5x5,
];

const DARTS_ALL: [DartsOp; 10] = [
    DartsOp::Zero,
    DartsOp::MaxPool3x3,
    DartsOp::AvgPool3x3,
    DartsOp::SkipConnect,
    DartsOp::SepConv3x3,
    DartsOp::SepConv5x5,
    DartsOp::SepConv7x7,
    DartsOp::DilConv3x3,
    DartsOp::DilConv5x5,
    DartsOp::Conv7x1_1x7,
];

impl DartsOp {
    /// The reference's name, e.g. `"sep_conv_3x3"`.
    pub fn name(self) -> &'static str {
        match self {
            DartsOp::Zero => "none",
            DartsOp::MaxPool3x3 => "max_pool_3x3",
            DartsOp::AvgPool3x3 => "avg_pool_3x3",
            DartsOp::SkipConnect => "skip_connect",
            DartsOp::SepConv3x3 => "sep_conv_3x3",
            DartsOp::SepConv5x5 => "sep_conv_5x5",
            DartsOp::SepConv7x7 => "sep_conv_7x7",
            DartsOp::DilConv3x3 => "dil_conv_3x3",
            DartsOp::DilConv5x5 => "dil_conv_5x5",
            DartsOp::Conv7x1_1x7 => "conv_7x1_1x7",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        DARTS_ALL.into_iter().find(|op| op.name() == name)
    }

    /// Column of this op in a DARTS α matrix, if it is a searched primitive.
    pub fn primitive_index(self) -> Option<usize> {
        DARTS_PRIMITIVES.iter().position(|&op| op == self)
    }
}

impl std::fmt::Display for DartsOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An operation of the NAS-Bench-201 space (S2), in the reference's search-space order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Nb201Op {
    #[serde(rename = "none")]
    Zero,
    #[serde(rename = "skip_connect")]
    SkipConnect,
    #[serde(rename = "nor_conv_1x1")]
    NorConv1x1,
    #[serde(rename = "nor_conv_3x3")]
    NorConv3x3,
    #[serde(rename = "avg_pool_3x3")]
    AvgPool3x3,
}

/// NAS-Bench-201 candidates in α column order.
pub const NB201_PRIMITIVES: [Nb201Op; 5] =
    [Nb201Op::Zero, Nb201Op::SkipConnect, Nb201Op::NorConv1x1, Nb201Op::NorConv3x3, Nb201Op::AvgPool3x3];

impl Nb201Op {
    pub fn name(self) -> &'static str {
        match self {
            Nb201Op::Zero => "none",
            Nb201Op::SkipConnect => "skip_connect",
            Nb201Op::NorConv1x1 => "nor_conv_1x1",
            Nb201Op::NorConv3x3 => "nor_conv_3x3",
            Nb201Op::AvgPool3x3 => "avg_pool_3x3",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        NB201_PRIMITIVES.into_iter().find(|op| op.name() == name)
    }

    pub fn primitive_index(self) -> usize {
        NB201_PRIMITIVES.iter().position(|&op| op == self).expect("every Nb201Op is a primitive")
    }
}

impl std::fmt::Display for Nb201Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in DARTS_ALL {
            assert_eq!(DartsOp::from_name(op.name()), Some(op));
        }
        for op in NB201_PRIMITIVES {
            assert_eq!(Nb201Op::from_name(op.name()), Some(op));
        }
    }

    #[test]
    fn primitive_order_matches_reference() {
        let names: Vec<_> = DARTS_PRIMITIVES.iter().map(|o| o.name()).collect();
        assert_eq!(
            names,
            [
                "none",
                "max_pool_3x3",
                "avg_pool_3x3",
                "skip_connect",
                "sep_conv_3x3",
                "sep_conv_5x5",
                "dil_conv_3x3",
                "dil_conv_5x5"
            ]
        );
    }
}
