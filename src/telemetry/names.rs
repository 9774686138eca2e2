//! Every metric evnas exposes, by name, in one place: Prometheus conventions (the `evnas_`
//! prefix, base units, `_total` counters, histograms with explicit buckets, bounded labels).
//! Descriptions go out with the first scrape (`# HELP`).

use metrics::Unit;

pub const TRAIN_IMAGES_TOTAL: &str = "evnas_train_images_total";
pub const TRAIN_BATCHES_TOTAL: &str = "evnas_train_batches_total";
pub const FITNESS_IMAGES_TOTAL: &str = "evnas_fitness_images_total";
pub const INDIVIDUALS_EVALUATED_TOTAL: &str = "evnas_individuals_evaluated_total";
pub const GENERATIONS_TOTAL: &str = "evnas_generations_total";
/// Label `outcome`: applied | refused | invalid.
pub const RELOADS_TOTAL: &str = "evnas_reloads_total";
/// Label `kind`: boundary | stop.
pub const CHECKPOINTS_TOTAL: &str = "evnas_checkpoints_total";
/// Label `actor`: the actor's name (bounded by the pipeline's shape).
pub const ACTOR_FAILURES_TOTAL: &str = "evnas_actor_failures_total";

pub const TRAIN_STEP_DURATION_SECONDS: &str = "evnas_train_step_duration_seconds";
pub const FITNESS_BATCH_DURATION_SECONDS: &str = "evnas_fitness_batch_duration_seconds";
/// Label `phase`: train | evaluate | breed.
pub const PHASE_DURATION_SECONDS: &str = "evnas_phase_duration_seconds";
pub const GENERATION_DURATION_SECONDS: &str = "evnas_generation_duration_seconds";
/// Label `kind`: boundary | stop.
pub const CHECKPOINT_DURATION_SECONDS: &str = "evnas_checkpoint_duration_seconds";
/// Histogram of each wait for a batch; its `_sum` is the total wait. Label `actor`: trainer | fitness.
pub const DATA_WAIT_SECONDS: &str = "evnas_data_wait_seconds";
/// Histogram of each unit of work (a batch, an individual, a generation's GA, a checkpoint);
/// its `_sum` is the busy time. Label `actor`: trainer | fitness | ga | checkpoint writer.
pub const ACTOR_BUSY_SECONDS: &str = "evnas_actor_busy_seconds";

pub const GENERATION: &str = "evnas_generation";
/// Label `phase`: train | evaluate | breed | idle; 1 for the phase running.
pub const PHASE: &str = "evnas_phase";
/// Label `stat`: best | mean | worst.
pub const FITNESS_TOP1_RATIO: &str = "evnas_fitness_top1_ratio";
pub const TRAIN_LOSS: &str = "evnas_train_loss";
pub const TRAIN_TOP1_RATIO: &str = "evnas_train_top1_ratio";
pub const POPULATION_DIVERSITY_RATIO: &str = "evnas_population_diversity_ratio";
pub const LEARNING_RATE: &str = "evnas_learning_rate";
pub const CONFIG_POPULATION: &str = "evnas_config_population";
pub const CONFIG_GENERATIONS: &str = "evnas_config_generations";
pub const CONFIG_TOURNAMENT_SIZE: &str = "evnas_config_tournament_size";
pub const CONFIG_ELITES: &str = "evnas_config_elites";
pub const CONFIG_MUTATION_RATE: &str = "evnas_config_mutation_rate";
pub const CONFIG_FITNESS_SUBSET: &str = "evnas_config_fitness_subset";
/// Label `state`: running | paused | stopped | finished; 1 for the state the search is in.
pub const SEARCH_STATE: &str = "evnas_search_state";
pub const CHECKPOINT_BYTES: &str = "evnas_checkpoint_bytes";
pub const CHECKPOINT_GENERATION: &str = "evnas_checkpoint_generation";
/// Free on the run directory's filesystem, measured when the search opens and after each checkpoint.
pub const RUN_DIR_AVAILABLE_BYTES: &str = "evnas_run_dir_available_bytes";
pub use crate::data::metric_names::{PREFETCH_IMAGES_TOTAL, PREFETCH_QUEUE_DEPTH};
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "evnas_process_resident_memory_bytes";
/// Seconds since the Unix epoch when the process started: its changes count restarts.
pub const PROCESS_START_TIME_SECONDS: &str = "evnas_process_start_time_seconds";
/// Label `device`: cuda:N.
pub const CUDA_MEMORY_USED_BYTES: &str = "evnas_cuda_memory_used_bytes";
/// Labels `version`, `libtorch`; always 1.
pub const BUILD_INFO: &str = "evnas_build_info";

// Training found cells from scratch (`evnas train`, final_training).
pub const FINAL_TRAINING_IMAGES_TOTAL: &str = "evnas_final_training_images_total";
pub const FINAL_TRAINING_STEP_DURATION_SECONDS: &str = "evnas_final_training_step_duration_seconds";
pub const FINAL_TRAINING_EPOCH: &str = "evnas_final_training_epoch";
pub const FINAL_TRAINING_EPOCHS: &str = "evnas_final_training_epochs";
pub const FINAL_TRAINING_LEARNING_RATE: &str = "evnas_final_training_learning_rate";
pub const FINAL_TRAINING_LOSS: &str = "evnas_final_training_loss";
/// Label `split`: train | test.
pub const FINAL_TRAINING_TOP1_RATIO: &str = "evnas_final_training_top1_ratio";
/// Label `split`: train | test.
pub const FINAL_TRAINING_TOP5_RATIO: &str = "evnas_final_training_top5_ratio";
pub const FINAL_TRAINING_IMAGES_PER_SECOND: &str = "evnas_final_training_images_per_second";
pub const FINAL_TRAINING_RUNNING: &str = "evnas_final_training_running";

/// The phases of [`PHASE`], the states of [`SEARCH_STATE`], the outcomes of [`RELOADS_TOTAL`].
pub const PHASES: [&str; 4] = ["train", "evaluate", "breed", "idle"];
pub const SEARCH_STATES: [&str; 4] = ["running", "paused", "stopped", "finished"];
pub const RELOAD_OUTCOMES: [&str; 3] = ["applied", "refused", "invalid"];

/// Bucket bounds (seconds) of the histograms: a CPU batch takes tens of milliseconds to
/// seconds, a GPU one milliseconds; phases and generations take seconds to hours.
pub const STEP_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
pub const WAIT_BUCKETS: &[f64] = &[0.00001, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0];
pub const PHASE_BUCKETS: &[f64] =
    &[0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0];

/// Which histograms get which buckets.
pub fn histogram_buckets() -> [(&'static str, &'static [f64]); 8] {
    [
        (TRAIN_STEP_DURATION_SECONDS, STEP_BUCKETS),
        (FINAL_TRAINING_STEP_DURATION_SECONDS, STEP_BUCKETS),
        (FITNESS_BATCH_DURATION_SECONDS, STEP_BUCKETS),
        (DATA_WAIT_SECONDS, WAIT_BUCKETS),
        (ACTOR_BUSY_SECONDS, PHASE_BUCKETS),
        (PHASE_DURATION_SECONDS, PHASE_BUCKETS),
        (GENERATION_DURATION_SECONDS, PHASE_BUCKETS),
        (CHECKPOINT_DURATION_SECONDS, PHASE_BUCKETS),
    ]
}

/// What a metric is, for its description and for the list of what /metrics holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One documented metric.
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

const fn metric(name: &'static str, kind: Kind, unit: Option<Unit>, help: &'static str) -> Metric {
    Metric { name, kind, unit, help }
}

use Kind::{Counter, Gauge, Histogram};
const COUNT: Option<Unit> = Some(Unit::Count);
const SECONDS: Option<Unit> = Some(Unit::Seconds);
const BYTES: Option<Unit> = Some(Unit::Bytes);

/// Every metric evnas exposes, with its help text.
pub const METRICS: &[Metric] = &[
    metric(TRAIN_IMAGES_TOTAL, Counter, COUNT, "Training images passed through the supernet."),
    metric(TRAIN_BATCHES_TOTAL, Counter, COUNT, "Supernet training steps."),
    metric(FITNESS_IMAGES_TOTAL, Counter, COUNT, "Validation images evaluated for fitness."),
    metric(INDIVIDUALS_EVALUATED_TOTAL, Counter, COUNT, "Fitness measurements of individuals."),
    metric(GENERATIONS_TOTAL, Counter, COUNT, "Generations recorded by this process."),
    metric(RELOADS_TOTAL, Counter, COUNT, "Config reloads, by outcome (applied, refused, invalid)."),
    metric(CHECKPOINTS_TOTAL, Counter, COUNT, "Checkpoints made durable, by kind (boundary, stop)."),
    metric(ACTOR_FAILURES_TOTAL, Counter, COUNT, "Pipeline actors that failed, by actor."),
    metric(PREFETCH_IMAGES_TOTAL, Counter, COUNT, "Images decoded and augmented by the data workers."),
    metric(TRAIN_STEP_DURATION_SECONDS, Histogram, SECONDS, "One supernet training step."),
    metric(
        FITNESS_BATCH_DURATION_SECONDS,
        Histogram,
        SECONDS,
        "One validation batch of a fitness measurement.",
    ),
    metric(PHASE_DURATION_SECONDS, Histogram, SECONDS, "One phase of a generation, by phase."),
    metric(GENERATION_DURATION_SECONDS, Histogram, SECONDS, "One generation, wall time."),
    metric(CHECKPOINT_DURATION_SECONDS, Histogram, SECONDS, "Writing one checkpoint (hash, fsync, rename)."),
    metric(
        DATA_WAIT_SECONDS,
        Histogram,
        SECONDS,
        "Each wait for a batch, by actor; the sum is the total wait.",
    ),
    metric(ACTOR_BUSY_SECONDS, Histogram, SECONDS, "Each unit of an actor's work; the sum is its busy time."),
    metric(GENERATION, Gauge, COUNT, "1-based generation running, or the last one recorded."),
    metric(PHASE, Gauge, None, "1 for the phase of the generation running (train, evaluate, breed, idle)."),
    metric(
        FITNESS_TOP1_RATIO,
        Gauge,
        None,
        "Top-1 fitness of the last recorded generation: best, mean, worst.",
    ),
    metric(TRAIN_LOSS, Gauge, None, "Mean supernet training loss of the last recorded generation."),
    metric(TRAIN_TOP1_RATIO, Gauge, None, "Supernet training top-1 of the last recorded generation."),
    metric(
        POPULATION_DIVERSITY_RATIO,
        Gauge,
        None,
        "Mean pairwise Hamming distance of the decoded genotypes.",
    ),
    metric(LEARNING_RATE, Gauge, None, "Learning rate of the generation running."),
    metric(CONFIG_POPULATION, Gauge, COUNT, "search.population in force."),
    metric(CONFIG_GENERATIONS, Gauge, COUNT, "search.generations (the budget) in force."),
    metric(CONFIG_TOURNAMENT_SIZE, Gauge, COUNT, "search.tournament_size in force."),
    metric(CONFIG_ELITES, Gauge, COUNT, "search.elites in force."),
    metric(CONFIG_MUTATION_RATE, Gauge, None, "search.mutation_rate in force."),
    metric(CONFIG_FITNESS_SUBSET, Gauge, COUNT, "fitness.subset in force (0: the whole validation part)."),
    metric(
        SEARCH_STATE,
        Gauge,
        None,
        "1 for the state the search is in (running, paused, stopped, finished).",
    ),
    metric(CHECKPOINT_BYTES, Gauge, BYTES, "Size of the newest checkpoint."),
    metric(
        RUN_DIR_AVAILABLE_BYTES,
        Gauge,
        BYTES,
        "Bytes free on the filesystem of the search's run directory (when it opens, after each checkpoint).",
    ),
    metric(
        CHECKPOINT_GENERATION,
        Gauge,
        COUNT,
        "Generation boundary (0-based) of the newest durable checkpoint.",
    ),
    metric(PREFETCH_QUEUE_DEPTH, Gauge, COUNT, "Training batches ready ahead of the trainer."),
    metric(PROCESS_RESIDENT_MEMORY_BYTES, Gauge, BYTES, "Resident memory of the process."),
    metric(
        PROCESS_START_TIME_SECONDS,
        Gauge,
        SECONDS,
        "Start of the process in seconds since the Unix epoch; its changes count restarts.",
    ),
    metric(CUDA_MEMORY_USED_BYTES, Gauge, BYTES, "Memory in use on a CUDA device (all processes)."),
    metric(BUILD_INFO, Gauge, None, "Always 1; the labels name the evnas and libtorch versions."),
    metric(FINAL_TRAINING_IMAGES_TOTAL, Counter, COUNT, "Training images through the network being trained."),
    metric(
        FINAL_TRAINING_STEP_DURATION_SECONDS,
        Histogram,
        SECONDS,
        "One training step of the network being trained.",
    ),
    metric(FINAL_TRAINING_EPOCH, Gauge, COUNT, "Epochs of the network being trained that are done."),
    metric(FINAL_TRAINING_EPOCHS, Gauge, COUNT, "Epochs the network being trained will be trained for."),
    metric(FINAL_TRAINING_LEARNING_RATE, Gauge, None, "Learning rate of the epoch running."),
    metric(FINAL_TRAINING_LOSS, Gauge, None, "Mean training loss of the last finished epoch."),
    metric(
        FINAL_TRAINING_TOP1_RATIO,
        Gauge,
        None,
        "Top-1 of the last finished (train) or tested (test) epoch.",
    ),
    metric(
        FINAL_TRAINING_TOP5_RATIO,
        Gauge,
        None,
        "Top-5 of the last finished (train) or tested (test) epoch.",
    ),
    metric(
        FINAL_TRAINING_IMAGES_PER_SECOND,
        Gauge,
        None,
        "Training images per second of the last finished epoch.",
    ),
    metric(
        FINAL_TRAINING_RUNNING,
        Gauge,
        None,
        "1 while a network is being trained from scratch, 0 once its training finished, stopped or failed.",
    ),
];

/// Registers every metric's unit and help text with the installed recorder.
pub fn describe() {
    for m in METRICS {
        match (m.kind, m.unit) {
            (Counter, Some(unit)) => metrics::describe_counter!(m.name, unit, m.help),
            (Counter, None) => metrics::describe_counter!(m.name, m.help),
            (Gauge, Some(unit)) => metrics::describe_gauge!(m.name, unit, m.help),
            (Gauge, None) => metrics::describe_gauge!(m.name, m.help),
            (Histogram, Some(unit)) => metrics::describe_histogram!(m.name, unit, m.help),
            (Histogram, None) => metrics::describe_histogram!(m.name, m.help),
        }
    }
}

/// The documented names as they appear on /metrics of a CPU search that ran a generation
/// (histograms by their `_count` series; CUDA memory only exists on CUDA; training a network
/// is not a search).
pub fn exposed() -> Vec<String> {
    METRICS
        .iter()
        .filter(|m| m.name != CUDA_MEMORY_USED_BYTES && !m.name.starts_with("evnas_final_training_"))
        .map(|m| if m.kind == Histogram { format!("{}_count", m.name) } else { m.name.to_string() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_histogram_has_buckets_and_every_name_is_conventional() {
        let bucketed: Vec<&str> = histogram_buckets().iter().map(|(n, _)| *n).collect();
        for m in METRICS {
            assert!(m.name.starts_with("evnas_"), "{}", m.name);
            assert_eq!(m.kind == Histogram, bucketed.contains(&m.name), "{}", m.name);
            assert_eq!(m.kind == Counter, m.name.ends_with("_total"), "{}", m.name);
            if m.unit == SECONDS {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
        }
        let mut names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METRICS.len(), "a metric is listed twice");
    }
}
