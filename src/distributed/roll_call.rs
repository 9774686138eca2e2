//! The roll call a job's processes answer in its store before they form the control group:
//! each rank once. Gloo's group formation says nothing while it waits and cannot tell a rank
//! that never came from one given to two processes (RANK=$SLURM_NODEID with two tasks a node,
//! a rank started again by hand while the others wait): either way the job waited out its
//! 15 minutes. Here a waiting process names the ranks it waits for, and a rank answered twice
//! ends the whole job at once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::error::DistributedError;
use super::store::Store;

/// How often a waiting process reads the roll call (one small request to the store each).
const POLL: Duration = Duration::from_millis(250);
/// Counts the ranks that answered (each once).
const ANSWERED_KEY: &str = "roll_call/answered";
/// Counts the answers for a rank that had answered.
const TAKEN_KEY: &str = "roll_call/taken";
/// The first to reach a verdict adds 1 here and says it.
const DECIDED_KEY: &str = "roll_call/decided";
const VERDICT_KEY: &str = "roll_call/verdict";
/// Counts the processes that read a verdict that ends the job.
const HEARD_KEY: &str = "roll_call/heard";
/// How long the process hosting the store waits for every process to read such a verdict
/// before it ends (and the store with it).
const HEARD_WAIT: Duration = Duration::from_secs(2);

/// Ranks a process still waits for, and for how long it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub missing: Vec<usize>,
    pub waited: Duration,
}

/// One process's part in the roll call.
pub(super) struct RollCall<'a> {
    pub rank: usize,
    /// The launcher's variable that gave `rank` (RANK, SLURM_PROCID), for the errors.
    pub variable: &'static str,
    pub size: usize,
    /// This process hosts the store: it ends last.
    pub hosts_store: bool,
    /// How long to wait for all ranks to answer.
    pub timeout: Duration,
    /// How often to say whom it waits for.
    pub report_every: Duration,
    /// Where its answer is held while it waits, for a signal to take back.
    pub withdrawal: Option<&'a Withdrawal>,
}

impl RollCall<'_> {
    /// Answers in `store` (keys of this launch attempt) and returns once every rank did;
    /// `report` hears whom it waits for every `report_every`. Fails at once where a rank
    /// answered twice (this one: [`DistributedError::RankTaken`]; another:
    /// [`DistributedError::RankTwice`]), or once a process waited `timeout` (naming the ranks
    /// missing). The verdict is one for all: a rank answering again after all were present ends
    /// alone.
    pub fn answer(
        &self,
        store: &Arc<Store>,
        report: &mut dyn FnMut(&Waiting),
    ) -> Result<(), DistributedError> {
        // The store fails when its host ended: c10d names only the key it was asked for.
        self.answer_in(store, report).map_err(|e| match e {
            DistributedError::StoreKey { reason, .. } if !self.hosts_store => {
                DistributedError::StoreLost { reason }
            }
            other => other,
        })
    }

    fn answer_in(
        &self,
        store: &Arc<Store>,
        report: &mut dyn FnMut(&Waiting),
    ) -> Result<(), DistributedError> {
        let (rank, size, variable) = (self.rank, self.size, self.variable);
        if store.add(&rank_key(rank), 1)? > 1 {
            store.add(TAKEN_KEY, 1)?;
            let verdict = decide(store, Verdict::Twice(rank))?;
            if verdict.is_some() {
                store.add(HEARD_KEY, 1)?;
            }
            // (None: the first to decide has not said it; the job cannot form without it.)
            let job_ended = verdict != Some(Verdict::AllPresent);
            return Err(DistributedError::RankTaken { rank, variable, job_ended });
        }
        if store.add(ANSWERED_KEY, 1)? == size as i64 {
            decide(store, Verdict::AllPresent)?;
        }
        // (The host's answer needs no taking back: the store ends with it.)
        let _held = self.withdrawal.filter(|_| !self.hosts_store).map(|w| w.hold(store, rank));
        let started = Instant::now();
        let mut next_report = self.report_every;
        let verdict = loop {
            if let Some(verdict) = verdict(store)? {
                break verdict;
            }
            let waited = started.elapsed();
            if waited >= self.timeout {
                let found =
                    Verdict::Missing { ranks: missing(store, size)?, by: rank, seconds: waited.as_secs() };
                break decide(store, found.clone())?.unwrap_or(found);
            }
            if waited >= next_report {
                report(&Waiting { missing: missing(store, size)?, waited });
                next_report += self.report_every;
            }
            std::thread::sleep(POLL.min(self.timeout - waited));
        };
        let error = match verdict {
            Verdict::AllPresent => return Ok(()),
            Verdict::Twice(twice) => DistributedError::RankTwice { rank, size, twice, variable },
            Verdict::Missing { ranks, by, seconds } => {
                DistributedError::RanksMissing { size, missing: ranks, waited_by: by, seconds }
            }
        };
        // All it needs of the store is read: the process hosting it may end.
        store.add(HEARD_KEY, 1)?;
        if self.hosts_store {
            wait_until_all_heard(store);
        }
        Err(error)
    }
}

/// A process's answer while it waits, for it to take back when it ends at a signal before the
/// job forms: its rank counted as present, and starting it again (a Ctrl-C, then the same
/// command) would have been a second answer, which ends the job.
pub struct Withdrawal(Mutex<Option<(Arc<Store>, usize)>>);

impl Withdrawal {
    pub const fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// Takes this process's answer back, unless none is held or a verdict was said (the job
    /// then forms, or ends, with it). Best effort: the process is ending.
    pub fn withdraw(&self) {
        let Some((store, rank)) = self.slot().take() else { return };
        if matches!(verdict(&store), Ok(None)) {
            // The count first: a rank started again meanwhile is then not all present early.
            let _ = store.add(ANSWERED_KEY, -1);
            let _ = store.add(&rank_key(rank), -1);
        }
    }

    fn hold(&self, store: &Arc<Store>, rank: usize) -> Held<'_> {
        *self.slot() = Some((Arc::clone(store), rank));
        Held(self)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(Arc<Store>, usize)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Lets go of a held answer once the roll call is over for its process.
struct Held<'a>(&'a Withdrawal);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.slot().take();
    }
}

/// What the roll call found: one for all the job's processes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    AllPresent,
    /// This rank answered twice.
    Twice(usize),
    /// Rank `by` waited `seconds` in vain for `ranks`.
    Missing {
        ranks: Vec<usize>,
        by: usize,
        seconds: u64,
    },
}

impl Verdict {
    fn text(&self) -> String {
        match self {
            Verdict::AllPresent => "all present".into(),
            Verdict::Twice(rank) => format!("rank {rank} twice"),
            Verdict::Missing { ranks, by, seconds } => {
                let ranks: Vec<String> = ranks.iter().map(ToString::to_string).collect();
                format!("missing {by} {seconds} {}", ranks.join(","))
            }
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if text == "all present" {
            return Some(Verdict::AllPresent);
        }
        if let Some(missing) = text.strip_prefix("missing ") {
            let mut parts = missing.splitn(3, ' ');
            let (by, seconds) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
            let ranks = parts
                .next()?
                .split(',')
                .filter(|r| !r.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            return Some(Verdict::Missing { ranks, by, seconds });
        }
        text.strip_prefix("rank ")?.strip_suffix(" twice")?.parse().ok().map(Verdict::Twice)
    }
}

/// The verdict said so far, if any.
fn verdict(store: &Store) -> Result<Option<Verdict>, DistributedError> {
    Ok(store.get_if_set(VERDICT_KEY)?.and_then(|said| Verdict::parse(&String::from_utf8_lossy(&said))))
}

/// Says `found` unless another verdict was said first; returns the one in force (`None`: the
/// first to decide has not said it within seconds).
fn decide(store: &Store, found: Verdict) -> Result<Option<Verdict>, DistributedError> {
    if store.add(DECIDED_KEY, 1)? == 1 {
        store.set(VERDICT_KEY, found.text().as_bytes())?;
        return Ok(Some(found));
    }
    // Said by the first, perhaps a moment from now.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(said) = verdict(store)? {
            return Ok(Some(said));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Until every process that answered read the verdict (its store goes when this one ends), for
/// [`HEARD_WAIT`] at most; a store that fails is left to the others' errors.
fn wait_until_all_heard(store: &Store) {
    let deadline = Instant::now() + HEARD_WAIT;
    let all_heard = || -> Result<bool, DistributedError> {
        let answered = store.add(ANSWERED_KEY, 0)? + store.add(TAKEN_KEY, 0)?;
        Ok(store.add(HEARD_KEY, 0)? >= answered)
    };
    while Instant::now() < deadline && !all_heard().unwrap_or(true) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ranks that have not answered (or took their answer back).
fn missing(store: &Store, size: usize) -> Result<Vec<usize>, DistributedError> {
    let mut missing = Vec::new();
    for rank in 0..size {
        // Adding 0 reads the count, 0 where unset.
        if store.add(&rank_key(rank), 0)? <= 0 {
            missing.push(rank);
        }
    }
    Ok(missing)
}

fn rank_key(rank: usize) -> String {
    format!("roll_call/rank_{rank}")
}

/// "2, 3 and 5" (at most `shown`, then how many more).
pub fn ranks_listed(ranks: &[usize], shown: usize) -> String {
    let named: Vec<String> = ranks.iter().take(shown).map(ToString::to_string).collect();
    let more = ranks.len().saturating_sub(shown);
    match (named.as_slice(), more) {
        ([], _) => "none".into(),
        ([one], 0) => one.clone(),
        (all, 0) => format!("{} and {}", all[..all.len() - 1].join(", "), all[all.len() - 1]),
        (some, more) => format!("{} and {more} more", some.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(_: &Waiting) {}

    fn roll(rank: usize, size: usize, timeout: Duration, report_every: Duration) -> RollCall<'static> {
        RollCall {
            rank,
            variable: "RANK",
            size,
            hosts_store: rank == 0,
            timeout,
            report_every,
            withdrawal: None,
        }
    }

    fn answer(store: &Arc<Store>, rank: usize, size: usize) -> Result<(), DistributedError> {
        roll(rank, size, Duration::from_secs(60), Duration::MAX).answer(store, &mut quiet)
    }

    /// `ranks` answering on threads of `scope`.
    fn answering<'s>(
        scope: &'s std::thread::Scope<'s, '_>,
        store: &'s Arc<Store>,
        ranks: impl IntoIterator<Item = usize>,
        size: usize,
    ) -> Vec<std::thread::ScopedJoinHandle<'s, Result<(), DistributedError>>> {
        ranks.into_iter().map(|rank| scope.spawn(move || answer(store, rank, size))).collect()
    }

    #[test]
    fn verdicts_read_back() {
        let missing = |ranks: Vec<usize>| Verdict::Missing { ranks, by: 3, seconds: 900 };
        for verdict in
            [Verdict::AllPresent, Verdict::Twice(0), Verdict::Twice(17), missing(vec![]), missing(vec![1, 2])]
        {
            assert_eq!(Verdict::parse(&verdict.text()), Some(verdict));
        }
        assert_eq!(Verdict::parse("rank x twice"), None);
    }

    #[test]
    fn ranks_are_listed_briefly() {
        assert_eq!(ranks_listed(&[], 8), "none");
        assert_eq!(ranks_listed(&[3], 8), "3");
        assert_eq!(ranks_listed(&[2, 3, 5], 8), "2, 3 and 5");
        assert_eq!(ranks_listed(&[1, 2, 3, 4], 2), "1, 2 and 2 more");
    }

    #[test]
    fn all_present_lets_every_rank_on() {
        let store = Arc::new(Store::in_process().unwrap());
        std::thread::scope(|s| {
            let others = answering(s, &store, 1..3, 3);
            answer(&store, 0, 3).unwrap();
            for other in others {
                other.join().unwrap().unwrap();
            }
        });
    }

    /// Rank 1 answered twice while rank 2 never came: both answers of rank 1 and rank 0 fail
    /// at once, naming it.
    #[test]
    fn a_rank_answered_twice_ends_the_job_at_once() {
        let store = Arc::new(Store::in_process().unwrap());
        let started = Instant::now();
        std::thread::scope(|s| {
            let first = s.spawn(|| answer(&store, 1, 3));
            let rank0 = s.spawn(|| answer(&store, 0, 3));
            std::thread::sleep(Duration::from_millis(300));
            let again = answer(&store, 1, 3).unwrap_err();
            assert!(matches!(again, DistributedError::RankTaken { rank: 1, job_ended: true, .. }), "{again}");
            for other in [first, rank0] {
                let err = other.join().unwrap().unwrap_err();
                assert!(matches!(err, DistributedError::RankTwice { twice: 1, .. }), "{err}");
            }
        });
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    /// All present first: a rank answering again later ends alone; the verdict stands.
    #[test]
    fn a_rank_answering_after_all_were_present_ends_alone() {
        let store = Arc::new(Store::in_process().unwrap());
        std::thread::scope(|s| {
            let rank1 = s.spawn(|| answer(&store, 1, 2));
            answer(&store, 0, 2).unwrap();
            rank1.join().unwrap().unwrap();
        });
        let late = answer(&store, 1, 2).unwrap_err();
        assert!(matches!(late, DistributedError::RankTaken { rank: 1, job_ended: false, .. }), "{late}");
    }

    /// The first to give up ends every wait: a rank with a longer timeout fails with it, and
    /// the one hosting the store ends once the others read that.
    #[test]
    fn the_first_to_give_up_ends_every_wait() {
        let store = Arc::new(Store::in_process().unwrap());
        let started = Instant::now();
        std::thread::scope(|s| {
            let patient = s.spawn(|| answer(&store, 1, 3));
            let err =
                roll(0, 3, Duration::from_secs(1), Duration::MAX).answer(&store, &mut quiet).unwrap_err();
            assert!(
                matches!(&err, DistributedError::RanksMissing { missing, waited_by: 0, seconds: 1, .. } if missing == &[2]),
                "{err}"
            );
            // What rank 0 found, said by rank 1 too.
            let patient = patient.join().unwrap().unwrap_err();
            assert_eq!(patient.to_string(), err.to_string());
        });
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert_eq!(store.add(HEARD_KEY, 0).unwrap(), 2);
    }

    /// A store whose host ends while a process waits is said to be gone (c10d names the key).
    #[test]
    fn a_store_that_goes_away_is_said_to_be_gone() {
        use crate::distributed::StoreRole;
        let server = Store::tcp("127.0.0.1", 0, StoreRole::Server, Duration::from_secs(10)).unwrap();
        let port = server.port().unwrap();
        let client =
            Arc::new(Store::tcp("127.0.0.1", port, StoreRole::Client, Duration::from_secs(10)).unwrap());
        std::thread::scope(|s| {
            let waiting = s.spawn(|| {
                RollCall { hosts_store: false, ..roll(1, 3, Duration::from_secs(60), Duration::MAX) }
                    .answer(&client, &mut quiet)
            });
            std::thread::sleep(Duration::from_millis(500));
            drop(server);
            let err = waiting.join().unwrap().unwrap_err();
            assert!(matches!(err, DistributedError::StoreLost { .. }), "{err}");
        });
    }

    /// A process that took its answer back (ended at a signal while it waited) can be started
    /// again: the job forms with the new one.
    #[test]
    fn an_answer_taken_back_lets_its_rank_answer_again() {
        static WITHDRAWAL: Withdrawal = Withdrawal::new();
        let store = Arc::new(Store::in_process().unwrap());
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                RollCall {
                    withdrawal: Some(&WITHDRAWAL),
                    ..roll(1, 3, Duration::from_secs(60), Duration::MAX)
                }
                .answer(&store, &mut quiet)
            });
            while WITHDRAWAL.slot().is_none() {
                std::thread::sleep(Duration::from_millis(10));
            }
            WITHDRAWAL.withdraw();
            assert_eq!(missing(&store, 3).unwrap(), [0, 1, 2]);
            let others = answering(s, &store, [0, 2], 3);
            answer(&store, 1, 3).unwrap();
            for other in others {
                other.join().unwrap().unwrap();
            }
            // (Its process would have ended; here it reads the verdict too.)
            first.join().unwrap().unwrap();
        });
    }

    /// A process waiting says whom for, and gives up after the timeout naming them.
    #[test]
    fn missing_ranks_are_named() {
        let store = Arc::new(Store::in_process().unwrap());
        let mut heard = Vec::new();
        let err = roll(1, 4, Duration::from_millis(900), Duration::from_millis(300))
            .answer(&store, &mut |w| heard.push(w.missing.clone()))
            .unwrap_err();
        assert!(heard.len() >= 2, "{heard:?}");
        assert!(heard.iter().all(|m| m == &[0, 2, 3]), "{heard:?}");
        match err {
            DistributedError::RanksMissing { size: 4, missing, waited_by: 1, .. } => {
                assert_eq!(missing, [0, 2, 3])
            }
            other => panic!("{other}"),
        }
    }
}
