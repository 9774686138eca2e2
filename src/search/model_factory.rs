//! Builds the one-shot supernet of the configured search space.

use tch::nn::VarStore;

use crate::model::{Nb201Config, Nb201Supernet, OneShotModel, Supernet, SupernetConfig};
use crate::space::SpaceKind;

use super::settings::{SearchSettings, SupernetSettings};
use super::SearchError;
use crate::train::data_parallel::BuildReplica;

/// What a supernet is built from, as the job's other processes receive it to build their
/// replicas of it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ReplicaSpec {
    space: SpaceKind,
    init_channels: usize,
    layers: usize,
    channels_last: bool,
    in_channels: i64,
    num_classes: i64,
}

/// The spec of the search's supernet for the job's other processes ([`replica_builder`]).
pub fn replica_spec(settings: &SearchSettings, in_channels: i64, num_classes: i64) -> serde_json::Value {
    let s = &settings.supernet;
    serde_json::to_value(ReplicaSpec {
        space: settings.space,
        init_channels: s.init_channels,
        layers: s.layers,
        channels_last: s.channels_last,
        in_channels,
        num_classes,
    })
    .unwrap_or_default()
}

/// Builds replicas of the supernet `spec` describes ([`replica_spec`]).
pub fn replica_builder(spec: &serde_json::Value) -> Result<BuildReplica, String> {
    let spec: ReplicaSpec =
        serde_json::from_value(spec.clone()).map_err(|e| format!("not a supernet this evnas builds: {e}"))?;
    let supernet = SupernetSettings {
        init_channels: spec.init_channels,
        layers: spec.layers,
        channels_last: spec.channels_last,
    };
    Ok(std::sync::Arc::new(move |vs: &VarStore| {
        Ok(build_supernet(spec.space, &supernet, vs, spec.in_channels, spec.num_classes))
    }))
}

/// The supernet of `settings`, its variables registered in `vs` under the reference's names.
///
/// For NAS-Bench-201, `settings.supernet.layers` is the number of search cells per stage (N).
pub fn build(
    settings: &SearchSettings,
    vs: &VarStore,
    in_channels: i64,
    num_classes: i64,
) -> Result<Box<dyn OneShotModel>, SearchError> {
    Ok(build_supernet(settings.space, &settings.supernet, vs, in_channels, num_classes))
}

fn build_supernet(
    space: SpaceKind,
    supernet: &SupernetSettings,
    vs: &VarStore,
    in_channels: i64,
    num_classes: i64,
) -> Box<dyn OneShotModel> {
    let root = vs.root();
    let c = supernet.init_channels as i64;
    match space {
        SpaceKind::Darts => {
            let mut net =
                Supernet::new(&root, SupernetConfig::new(c, supernet.layers, in_channels, num_classes));
            if supernet.channels_last {
                net.use_channels_last();
            }
            Box::new(net)
        }
        SpaceKind::NasBench201 => {
            let mut nb = Nb201Config::new(in_channels, num_classes);
            nb.init_channels = c;
            nb.cells_per_stage = supernet.layers;
            Box::new(Nb201Supernet::new(&root, nb))
        }
    }
}
