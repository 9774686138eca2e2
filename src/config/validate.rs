//! Semantic checks beyond types; every problem is collected so the user fixes them in one go.

use std::str::FromStr;

use super::schema::{CollectivesSetting, Config, RunSection, SpaceKind};

/// Returns one line per problem, each naming the `section.key` at fault.
pub fn validate(cfg: &Config) -> Vec<String> {
    let mut p = Vec::new();
    let s = &cfg.search;
    if s.population < 2 {
        p.push(format!("search.population = {}: need at least 2 individuals", s.population));
    }
    if s.generations == 0 {
        p.push("search.generations = 0: need at least 1 generation".into());
    }
    if s.tournament_size == 0 || s.tournament_size > s.population {
        p.push(format!(
            "search.tournament_size = {}: must be between 1 and search.population ({})",
            s.tournament_size, s.population
        ));
    }
    if s.elites >= s.population {
        p.push(format!("search.elites = {}: must be below search.population ({})", s.elites, s.population));
    }
    let id_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !s.id.is_empty() && (s.id.len() > 100 || s.id.starts_with('.') || !s.id.chars().all(id_ok)) {
        p.push(format!(
            "search.id = {:?}: must be up to 100 letters, digits, '-', '_' or '.', not starting with '.' (it names a directory)",
            s.id
        ));
    }
    if !(0.0..=1.0).contains(&s.mutation_rate) {
        p.push(format!("search.mutation_rate = {}: must lie in [0, 1]", s.mutation_rate));
    }

    let n = &cfg.supernet;
    if n.init_channels == 0 || !n.init_channels.is_multiple_of(2) {
        p.push(format!("supernet.init_channels = {}: must be a positive even number", n.init_channels));
    }
    match s.space {
        SpaceKind::Darts if n.layers < 3 => p.push(format!(
            "supernet.layers = {}: need at least 3 (two of them are reduction cells)",
            n.layers
        )),
        SpaceKind::NasBench201 if n.layers == 0 => {
            p.push("supernet.layers = 0: NAS-Bench-201 needs at least 1 cell per stage".into())
        }
        _ => {}
    }

    let t = &cfg.train;
    if t.batch_size == 0 {
        p.push("train.batch_size = 0: must be positive".into());
    }
    if !positive(t.learning_rate) {
        p.push(format!("train.learning_rate = {}: must be positive", t.learning_rate));
    }
    if !(t.learning_rate_min >= 0.0 && t.learning_rate_min <= t.learning_rate) {
        p.push(format!(
            "train.learning_rate_min = {}: must lie in [0, train.learning_rate]",
            t.learning_rate_min
        ));
    }
    if !(0.0..1.0).contains(&t.momentum) {
        p.push(format!("train.momentum = {}: must lie in [0, 1)", t.momentum));
    }
    if !(t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
        p.push(format!("train.weight_decay = {}: must not be negative", t.weight_decay));
    }
    if !positive(t.grad_clip) {
        p.push(format!("train.grad_clip = {}: must be positive", t.grad_clip));
    }

    if cfg.fitness.batch_size == 0 {
        p.push("fitness.batch_size = 0: must be positive".into());
    }

    let d = &cfg.data;
    if crate::data::DatasetKind::from_str(&d.dataset).is_err() {
        p.push(format!(
            "data.dataset = {:?}: must be one of {}",
            d.dataset,
            crate::data::DatasetKind::names()
        ));
    }
    if !(d.train_portion > 0.0 && d.train_portion < 1.0) {
        p.push(format!("data.train_portion = {}: must lie strictly between 0 and 1", d.train_portion));
    }
    if d.cutout && d.cutout_length == 0 {
        p.push("data.cutout_length = 0: must be positive when data.cutout is on".into());
    }
    if d.prefetch_depth == 0 {
        p.push("data.prefetch_depth = 0: must be at least 1".into());
    }
    if d.workers == 0 {
        p.push("data.workers = 0: must be at least 1".into());
    }

    let r = &cfg.run;
    if r.keep_checkpoints == 0 {
        p.push("run.keep_checkpoints = 0: keep at least 1".into());
    }
    if !is_device(&r.device) {
        p.push(format!("run.device = {:?}: must be cpu, cuda, cuda:N or auto", r.device));
    }
    validate_devices(&r.devices, &mut p);
    validate_collectives(r, &mut p);
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&r.log_level) {
        p.push(format!("run.log_level = {:?}: not a log filter ({e})", r.log_level));
    }
    validate_final_training(&cfg.final_training, &mut p);
    // Said before the search, not after it, when its result is to be trained.
    if cfg.final_training.enabled {
        if let Some(problem) = untrainable_result(cfg) {
            p.push(format!("final_training.enabled = true: {problem}"));
        }
    }
    let listen = &cfg.metrics.listen;
    match listen.parse::<std::net::SocketAddr>() {
        _ if listen.is_empty() => {}
        Err(_) => p.push(format!(
            "metrics.listen = {listen:?}: must be IP:PORT (e.g. 127.0.0.1:9464), or empty for none"
        )),
        // The system would pick a port that nothing tells Prometheus.
        Ok(addr) if addr.port() == 0 => p.push(format!(
            "metrics.listen = {listen:?}: port 0 is a port the system picks, which Prometheus could not be told; name one (e.g. 9464)"
        )),
        Ok(_) => {}
    }
    p
}

/// Why the result of a search under `cfg` could not be trained from scratch by its
/// `[final_training]`, if it could not.
pub fn untrainable_result(cfg: &Config) -> Option<String> {
    let dataset = crate::data::DatasetKind::from_str(&cfg.data.dataset).ok()?;
    let auxiliary = cfg.final_training.auxiliary;
    crate::final_training::settings::check_network_fits(dataset, auxiliary).err().map(|e| e.to_string())
}

fn validate_final_training(f: &super::schema::FinalTrainingSection, p: &mut Vec<String>) {
    let key = |name: &str| format!("final_training.{name}");
    for (name, value) in [
        ("epochs", f.epochs),
        ("layers", f.layers),
        ("batch_size", f.batch_size),
        ("test_batch_size", f.test_batch_size),
        ("test_every", f.test_every),
        ("keep_checkpoints", f.keep_checkpoints),
    ] {
        if value == 0 {
            p.push(format!("{} = 0: must be at least 1", key(name)));
        }
    }
    if f.layers > 0 && f.layers < 3 {
        p.push(format!("final_training.layers = {}: need at least 3 (two are reduction cells)", f.layers));
    }
    if f.init_channels <= 0 {
        p.push(format!("final_training.init_channels = {}: must be positive", f.init_channels));
    }
    if !positive(f.learning_rate) {
        p.push(format!("final_training.learning_rate = {}: must be positive", f.learning_rate));
    }
    if !(f.learning_rate_min >= 0.0 && f.learning_rate_min <= f.learning_rate) {
        p.push(format!(
            "final_training.learning_rate_min = {}: must lie in [0, final_training.learning_rate]",
            f.learning_rate_min
        ));
    }
    if !(0.0..1.0).contains(&f.momentum) {
        p.push(format!("final_training.momentum = {}: must lie in [0, 1)", f.momentum));
    }
    if !(f.weight_decay.is_finite() && f.weight_decay >= 0.0) {
        p.push(format!("final_training.weight_decay = {}: must not be negative", f.weight_decay));
    }
    if !positive(f.grad_clip) {
        p.push(format!("final_training.grad_clip = {}: must be positive", f.grad_clip));
    }
    if !(f.auxiliary_weight.is_finite() && f.auxiliary_weight >= 0.0) {
        p.push(format!("final_training.auxiliary_weight = {}: must not be negative", f.auxiliary_weight));
    }
    if !(0.0..1.0).contains(&f.drop_path_prob) {
        p.push(format!("final_training.drop_path_prob = {}: must lie in [0, 1)", f.drop_path_prob));
    }
    if !(0.0..1.0).contains(&f.label_smoothing) {
        p.push(format!("final_training.label_smoothing = {}: must lie in [0, 1)", f.label_smoothing));
    }
    if f.cutout && f.cutout_length == 0 {
        p.push("final_training.cutout_length = 0: must be positive when final_training.cutout is on".into());
    }
}

/// `run.devices`: device names of one kind (all CPU or all CUDA), no GPU twice.
fn validate_devices(devices: &[String], p: &mut Vec<String>) {
    for name in devices {
        if name == "auto" || !is_device(name) {
            p.push(format!("run.devices: {name:?} is not a device: each must be cpu, cuda or cuda:N"));
        }
    }
    let cuda = |name: &str| name.starts_with("cuda");
    if devices.iter().any(|d| cuda(d)) && devices.iter().any(|d| d == "cpu") {
        p.push(format!("run.devices = {devices:?}: mixes cpu and cuda; replicas train in step on one kind"));
    }
    let gpu_index = |name: &str| match name {
        "cuda" => Some(0),
        other => other.strip_prefix("cuda:").and_then(|n| n.parse::<usize>().ok()),
    };
    let mut seen = std::collections::BTreeSet::new();
    for index in devices.iter().filter_map(|d| gpu_index(d)) {
        if !seen.insert(index) {
            p.push(format!("run.devices = {devices:?}: cuda:{index} is listed twice; one replica per GPU"));
        }
    }
}

/// `run.collectives = "nccl"`: every replica on a GPU (for "auto" devices, and the build's
/// NCCL, that is checked at start).
fn validate_collectives(r: &RunSection, p: &mut Vec<String>) {
    if r.collectives != CollectivesSetting::Nccl {
        return;
    }
    let names = if r.devices.is_empty() { std::slice::from_ref(&r.device) } else { r.devices.as_slice() };
    if let Some(name) = names.iter().find(|name| !name.starts_with("cuda") && *name != "auto") {
        p.push(format!(
            "run.collectives = \"nccl\": NCCL sums gradients between GPUs, and a replica is on {name:?}; use \"gloo\" or \"auto\""
        ));
    }
}

/// True for finite values above zero (NaN is not positive).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

fn is_device(text: &str) -> bool {
    matches!(text, "cpu" | "cuda" | "auto")
        || text.strip_prefix("cuda:").is_some_and(|n| n.parse::<usize>().is_ok())
}
