//! Named genotypes of the reference's genotypes.py: hand-designed (NASNet, AmoebaNet), DARTS's
//! (first and second order) and the three cells the EvNAS paper reports (EvNAS-A/B/C, Table 1).
//!
//! Kept as the DARTS notation Python prints for them, parsed at lookup, so the values can be
//! compared with the reference by eye and by `print(genotypes.NAME)`.

use super::darts_notation;
use super::genotype::Genotype;

/// The names accepted by [`lookup`], as the paper and reference spell them.
pub const NAMES: [&str; 8] =
    ["NASNet", "AmoebaNet", "DARTS_V1", "DARTS_V2", "DARTS", "EvNAS-A", "EvNAS-B", "EvNAS-C"];

pub const NASNET: &str = "Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), \
    ('sep_conv_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), \
    ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 1)], normal_concat=[2, 3, 4, 5, \
    6], reduce=[('sep_conv_5x5', 1), ('sep_conv_7x7', 0), ('max_pool_3x3', 1), ('sep_conv_7x7', \
    0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), ('avg_pool_3x3', 2), \
    ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], reduce_concat=[4, 5, 6])";

pub const AMOEBANET: &str =
    "Genotype(normal=[('avg_pool_3x3', 0), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), \
    ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('avg_pool_3x3', 3), ('sep_conv_3x3', 1), \
    ('skip_connect', 1), ('skip_connect', 0), ('avg_pool_3x3', 1)], normal_concat=[4, 5, 6], \
    reduce=[('avg_pool_3x3', 0), ('sep_conv_3x3', 1), ('max_pool_3x3', 0), ('sep_conv_7x7', 2), \
    ('sep_conv_7x7', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), \
    ('conv_7x1_1x7', 0), ('sep_conv_3x3', 5)], reduce_concat=[3, 4, 6])";

pub const DARTS_V1: &str = "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), \
    ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), \
    ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), \
    ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), \
    ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])";

pub const DARTS_V2: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), \
    ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), \
    ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), \
    ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), \
    ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])";

pub const EVNASA: &str = "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 2), \
    ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 2), ('dil_conv_5x5', 3), \
    ('sep_conv_3x3', 1)], normal_concat=[2, 3, 4, 5], reduce=[('dil_conv_5x5', 1), \
    ('avg_pool_3x3', 0), ('sep_conv_3x3', 0), ('avg_pool_3x3', 2), ('skip_connect', 1), \
    ('skip_connect', 2), ('skip_connect', 1), ('sep_conv_5x5', 0)], reduce_concat=[2, 3, 4, 5])";

pub const EVNASB: &str = "Genotype(normal=[('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('sep_conv_5x5', 2), \
    ('max_pool_3x3', 0), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), \
    ('sep_conv_5x5', 2)], normal_concat=[2, 3, 4, 5], reduce=[('skip_connect', 1), \
    ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('avg_pool_3x3', 1), ('skip_connect', 2), \
    ('avg_pool_3x3', 3), ('sep_conv_5x5', 2), ('sep_conv_5x5', 0)], reduce_concat=[2, 3, 4, 5])";

pub const EVNASC: &str = "Genotype(normal=[('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 2), \
    ('sep_conv_5x5', 1), ('max_pool_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 0), \
    ('sep_conv_5x5', 3)], normal_concat=[2, 3, 4, 5], reduce=[('sep_conv_5x5', 1), \
    ('dil_conv_3x3', 0), ('sep_conv_5x5', 0), ('skip_connect', 1), ('max_pool_3x3', 0), \
    ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 2)], reduce_concat=[2, 3, 4, 5])";

/// DARTS notation of a built-in genotype, matched ignoring case, `-` and `_` (`EvNAS-A`, `evnasa`,
/// `darts-v2`, `DARTS_V2`). `DARTS` is `DARTS_V2`, as in the reference.
pub fn notation(name: &str) -> Option<&'static str> {
    let key: String =
        name.chars().filter(|c| *c != '-' && *c != '_').map(|c| c.to_ascii_lowercase()).collect();
    Some(match key.as_str() {
        "nasnet" => NASNET,
        "amoebanet" => AMOEBANET,
        "dartsv1" => DARTS_V1,
        "dartsv2" | "darts" => DARTS_V2,
        "evnasa" => EVNASA,
        "evnasb" => EVNASB,
        "evnasc" => EVNASC,
        _ => return None,
    })
}

/// The built-in genotype called `name` (see [`notation`] for the matching rule).
pub fn lookup(name: &str) -> Option<Genotype> {
    // The constants are checked by `every_builtin_parses_and_prints_back` below.
    notation(name).map(|text| darts_notation::parse(text).expect("built-in genotype notation is valid"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::DartsOp;

    #[test]
    fn every_builtin_parses_and_prints_back() {
        for name in NAMES {
            let text = notation(name).unwrap();
            let genotype = darts_notation::parse(text).unwrap();
            assert_eq!(genotype.to_string(), text, "{name}");
        }
    }

    #[test]
    fn names_match_loosely() {
        for name in ["EvNAS-A", "evnasa", "EVNAS_A", "EvNASA"] {
            assert_eq!(notation(name), Some(EVNASA), "{name}");
        }
        for name in ["darts-v2", "DARTS_V2", "darts", "Darts_V2"] {
            assert_eq!(notation(name), Some(DARTS_V2), "{name}");
        }
        assert_eq!(notation("darts-v1"), Some(DARTS_V1));
        assert_eq!(notation("nas-net"), Some(NASNET));
        assert_eq!(notation("evnas-d"), None);
    }

    #[test]
    fn values_equal_the_reference() {
        // Spot checks against genotypes.py, beyond the string round trip.
        let evnas_a = lookup("EvNAS-A").unwrap();
        assert_eq!(evnas_a.normal.len(), 8);
        assert_eq!(evnas_a.normal[6], (DartsOp::DilConv5x5, 3));
        assert_eq!(evnas_a.reduce[0], (DartsOp::DilConv5x5, 1));
        assert_eq!(evnas_a.normal_concat, vec![2, 3, 4, 5]);
        let amoeba = lookup("AmoebaNet").unwrap();
        assert_eq!(amoeba.reduce[8], (DartsOp::Conv7x1_1x7, 0));
        assert_eq!(amoeba.reduce_concat, vec![3, 4, 6]);
        let nasnet = lookup("NASNet").unwrap();
        assert_eq!(nasnet.normal_concat, vec![2, 3, 4, 5, 6]);
        assert_eq!(nasnet.reduce_concat, vec![4, 5, 6]);
    }
}
