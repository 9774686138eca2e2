//! Where and how a search computed its state: what the config's digest leaves out (a run may
//! move to another machine or device), yet what decides libtorch's rounding. Recorded with
//! every checkpoint, as resolved on the machine that computed it (`run.threads = 0` is that
//! machine's cores), so that a resume under another setup can say its numbers will differ.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeSetup {
    /// libtorch's CPU threads.
    pub threads: usize,
    /// This process's training replicas' devices, the leader's first ("cpu", "cuda:0").
    pub devices: Vec<String>,
    /// Training replicas in all, those of the job's other processes included.
    pub replicas: usize,
    /// Fitness evaluators of this process (each CPU one measures on its share of the threads).
    pub fitness_evaluators: usize,
}

impl ComputeSetup {
    /// What differs from `was`, as `name (was -> now)`; empty when nothing does.
    pub fn changes_from(&self, was: &ComputeSetup) -> Vec<String> {
        let mut changes = Vec::new();
        let mut compare = |name: &str, was: String, now: String| {
            if was != now {
                changes.push(format!("{name} ({was} -> {now})"));
            }
        };
        compare("CPU threads", was.threads.to_string(), self.threads.to_string());
        compare("the devices", was.devices.join(","), self.devices.join(","));
        compare("training replicas", was.replicas.to_string(), self.replicas.to_string());
        compare(
            "fitness evaluators",
            was.fitness_evaluators.to_string(),
            self.fitness_evaluators.to_string(),
        );
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_named_with_both_values_and_nothing_else() {
        let was =
            ComputeSetup { threads: 2, devices: vec!["cpu".into()], replicas: 1, fitness_evaluators: 2 };
        assert!(was.changes_from(&was).is_empty());
        let now = ComputeSetup {
            threads: 16,
            devices: vec!["cpu".into(), "cpu".into()],
            replicas: 2,
            ..was.clone()
        };
        assert_eq!(
            now.changes_from(&was),
            ["CPU threads (2 -> 16)", "the devices (cpu -> cpu,cpu)", "training replicas (1 -> 2)"]
        );
    }
}
