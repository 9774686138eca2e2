//! Builds the one-shot supernet of the configured search space.

use tch::nn::VarStore;

use crate::config::Config;
use crate::model::{Nb201Config, Nb201Supernet, OneShotModel, Supernet, SupernetConfig};
use crate::space::SpaceKind;

use super::SearchError;

/// The supernet for `cfg`, its variables registered in `vs` under the reference's names.
///
/// For NAS-Bench-201, `supernet.layers` is the number of search cells per stage (N).
pub fn build(
    cfg: &Config,
    vs: &VarStore,
    in_channels: i64,
    num_classes: i64,
) -> Result<Box<dyn OneShotModel>, SearchError> {
    let root = vs.root();
    let c = cfg.supernet.init_channels as i64;
    match cfg.search.space {
        SpaceKind::Darts => {
            let mut net =
                Supernet::new(&root, SupernetConfig::new(c, cfg.supernet.layers, in_channels, num_classes));
            if cfg.supernet.channels_last {
                net.use_channels_last();
            }
            Ok(Box::new(net))
        }
        SpaceKind::NasBench201 => {
            let mut nb = Nb201Config::new(in_channels, num_classes);
            nb.init_channels = c;
            nb.cells_per_stage = cfg.supernet.layers;
            Ok(Box::new(Nb201Supernet::new(&root, nb)))
        }
    }
}
