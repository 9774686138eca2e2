//! Builds the one-shot supernet of the configured search space.

use tch::nn::VarStore;

use crate::model::{Nb201Config, Nb201Supernet, OneShotModel, Supernet, SupernetConfig};
use crate::space::SpaceKind;

use super::settings::SearchSettings;
use super::SearchError;

/// The supernet of `settings`, its variables registered in `vs` under the reference's names.
///
/// For NAS-Bench-201, `settings.supernet.layers` is the number of search cells per stage (N).
pub fn build(
    settings: &SearchSettings,
    vs: &VarStore,
    in_channels: i64,
    num_classes: i64,
) -> Result<Box<dyn OneShotModel>, SearchError> {
    let root = vs.root();
    let c = settings.supernet.init_channels as i64;
    match settings.space {
        SpaceKind::Darts => {
            let mut net = Supernet::new(
                &root,
                SupernetConfig::new(c, settings.supernet.layers, in_channels, num_classes),
            );
            if settings.supernet.channels_last {
                net.use_channels_last();
            }
            Ok(Box::new(net))
        }
        SpaceKind::NasBench201 => {
            let mut nb = Nb201Config::new(in_channels, num_classes);
            nb.init_channels = c;
            nb.cells_per_stage = settings.supernet.layers;
            Ok(Box::new(Nb201Supernet::new(&root, nb)))
        }
    }
}
