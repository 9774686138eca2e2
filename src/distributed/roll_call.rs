//! The roll call a job's processes answer in its store before they form the control group:
//! each rank once. Gloo's group formation says nothing while it waits and cannot tell a rank
//! that never came from one given to two processes (RANK=$SLURM_NODEID with two tasks a node,
//! a rank started again by hand while the others wait): either way the job waited out its
//! 15 minutes. Here a waiting process names the ranks it waits for, and a rank answered twice
//! ends the whole job at once. A process that answered beats while it waits, so that one
//! killed meanwhile (SIGKILL, a crash: nothing took its answer back) can be started again: the
//! new process takes the place of the silent one.

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
/// What a take-back leaves in the place it claims ([`place_key`]).
const TAKEN_BACK: &[u8] = b"taken back";
/// How long a rank's beat must stand still before another process for that rank takes its
/// place (one that lives beats every [`POLL`]).
const GONE_AFTER: Duration = Duration::from_secs(5);
/// The ranks rank 0 saw silent while all had answered ("1,3"), for every process's log.
const SILENT_KEY: &str = "roll_call/silent";
/// Counts the processes that read a verdict that ends the job.
const HEARD_KEY: &str = "roll_call/heard";
/// How long the process hosting the store waits for every process to read such a verdict
/// before it ends (and the store with it).
const HEARD_WAIT: Duration = Duration::from_secs(2);

/// The ranks a process still waits for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Absent {
    /// Not answered (or taken back).
    pub missing: Vec<usize>,
    /// Answered, but their process went silent (killed while it waited): a new one may take
    /// its place.
    pub silent: Vec<usize>,
}

impl Absent {
    /// Both kinds, in rank order.
    pub fn all(&self) -> Vec<usize> {
        let mut all: Vec<usize> = self.missing.iter().chain(&self.silent).copied().collect();
        all.sort_unstable();
        all
    }

    /// "rank(s) 2 of the 4 never came", "rank(s) 1 of the 4 answered, then went silent (killed
    /// while waiting?)", or both.
    pub fn describe(&self, size: usize) -> String {
        let silent = "answered, then went silent (killed while waiting?)";
        match (self.missing.as_slice(), self.silent.as_slice()) {
            (_, []) => format!("rank(s) {} of the {size} never came", ranks_listed(&self.missing, 16)),
            ([], _) => format!("rank(s) {} of the {size} {silent}", ranks_listed(&self.silent, 16)),
            _ => format!(
                "rank(s) {} of the {size} never came, and rank(s) {} {silent}",
                ranks_listed(&self.missing, 16),
                ranks_listed(&self.silent, 16)
            ),
        }
    }
}

/// What a process hears while it answers the roll call, for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// The ranks it still waits for, and for how long it has.
    Waiting { absent: Absent, waited: Duration },
    /// The process that had answered for its rank has not beaten for `silent` (it was killed
    /// while it waited): this one took its place.
    TookPlace { silent: Duration },
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
    /// How often to say whom it waits for ([`Heard::Waiting`]).
    pub report_every: Duration,
    /// Where its answer is held while it waits, for a signal to take back.
    pub withdrawal: Option<&'a Withdrawal>,
}

impl RollCall<'_> {
    /// Answers in `store` (keys of this launch attempt) and returns once every rank did;
    /// `report` hears whom it waits for every `report_every`. Fails at once where two live
    /// processes answered for a rank (this one second: [`DistributedError::RankTaken`];
    /// otherwise [`DistributedError::RankTwice`]), or once a process waited `timeout` (naming the
    /// ranks missing). The verdict is one for all: a rank answering again after all were present
    /// ends alone. A process answering for a rank whose first process went silent takes its place.
    pub fn answer(&self, store: &Arc<Store>, report: &mut dyn FnMut(&Heard)) -> Result<(), DistributedError> {
        // The store fails when its host ended: c10d names only the key it was asked for.
        self.answer_in(store, report).map_err(|e| match e {
            DistributedError::StoreKey { reason, .. } if !self.hosts_store => {
                DistributedError::StoreLost { reason }
            }
            other => other,
        })
    }

    fn answer_in(&self, store: &Arc<Store>, report: &mut dyn FnMut(&Heard)) -> Result<(), DistributedError> {
        let (rank, size, variable) = (self.rank, self.size, self.variable);
        // Held where a signal can take it back before anything of it is in the store, except
        // the host's: the store ends with it.
        let answer = Arc::new(Answer::new(store, rank));
        let _held = Held::new(&answer, self.withdrawal.filter(|_| !self.hosts_store));
        if !answer.first_for_rank()? {
            // A signal while it waits to take a silent one's place takes back its count alone.
            if let Some(took) = take_place_of_silent(store, rank, &answer)? {
                if let Took::Place { silent } = took {
                    report(&Heard::TookPlace { silent });
                }
            } else {
                answer.let_go();
                store.add(TAKEN_KEY, 1)?;
                let verdict = decide(store, Verdict::Twice(rank))?;
                if verdict.is_some() {
                    store.add(HEARD_KEY, 1)?;
                }
                // (None: the first to decide has not said it; the job cannot form without it.)
                let job_ended = verdict != Some(Verdict::AllPresent);
                return Err(DistributedError::RankTaken { rank, variable, job_ended });
            }
        };
        let started = Instant::now();
        let mut next_report = self.report_every;
        // Rank 0 says when all are present: all answered, and every answer's process beats.
        let mut beats = (rank == 0).then(|| Beats::new(size));
        let verdict = loop {
            if let Some(verdict) = verdict(store)? {
                break verdict;
            }
            // A beat not following this process's own: another process beats for its rank (it
            // was taken for silent, and lives).
            if !answer.beat()? {
                break decide(store, Verdict::Twice(rank))?.unwrap_or(Verdict::Twice(rank));
            }
            if let Some(beats) = beats.as_mut() {
                if all_answered(store, size)? {
                    beats.read(store)?;
                    if beats.all_moved() {
                        break decide(store, Verdict::AllPresent)?.unwrap_or(Verdict::AllPresent);
                    }
                    beats.publish_silent(store)?;
                }
            }
            let waited = started.elapsed();
            if waited >= self.timeout {
                let absent = absent(store, size)?;
                let found = Verdict::Missing { absent, by: rank, seconds: waited.as_secs() };
                break decide(store, found.clone())?.unwrap_or(found);
            }
            if waited >= next_report {
                report(&Heard::Waiting { absent: absent(store, size)?, waited });
                next_report += self.report_every;
            }
            std::thread::sleep(POLL.min(self.timeout - waited));
        };
        let error = match verdict {
            Verdict::AllPresent => {
                // Still its rank's one process: one stopped (not killed) while another took its
                // place finds, continued, that the beat went on without it.
                return if answer.beat()? {
                    Ok(())
                } else {
                    Err(DistributedError::RankTaken { rank, variable, job_ended: false })
                };
            }
            Verdict::Twice(twice) => DistributedError::RankTwice { rank, size, twice, variable },
            Verdict::Missing { absent, by, seconds } => {
                DistributedError::RanksMissing { size, absent, waited_by: by, seconds }
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

/// Whether every rank answered (some perhaps by a process killed since).
fn all_answered(store: &Store, size: usize) -> Result<bool, DistributedError> {
    Ok(store.add(ANSWERED_KEY, 0)? >= size as i64)
}

/// Rank 0's watch over the beats of the processes that answered, once all did: each must move
/// while it watches, or its process was killed (and waits for a new one to take its place).
struct Beats {
    /// Each rank's beat as last read; `None` until first read.
    seen: Vec<Option<Seen>>,
    /// The silent ranks last told to the others ([`SILENT_KEY`]).
    published: Vec<usize>,
}

/// A rank's beat as rank 0 last read it.
#[derive(Clone, Copy)]
struct Seen {
    beat: i64,
    /// When it was first read at this value.
    since: Instant,
    /// It moved while watched.
    moved: bool,
}

impl Beats {
    fn new(size: usize) -> Self {
        Self { seen: vec![None; size], published: Vec::new() }
    }

    fn read(&mut self, store: &Store) -> Result<(), DistributedError> {
        for (rank, seen) in self.seen.iter_mut().enumerate() {
            let beat = store.add(&beat_key(rank), 0)?;
            match seen {
                Some(seen) if seen.beat == beat => {}
                Some(seen) => *seen = Seen { beat, since: Instant::now(), moved: true },
                None => *seen = Some(Seen { beat, since: Instant::now(), moved: false }),
            }
        }
        Ok(())
    }

    /// Every rank's beat moved while watched, and lately: a process killed since its beat
    /// moved is not taken for present.
    fn all_moved(&self) -> bool {
        self.seen.iter().all(|seen| seen.is_some_and(|s| s.moved && s.since.elapsed() < 4 * POLL))
    }

    /// The ranks whose beat stood still for [`GONE_AFTER`] while watched.
    fn silent(&self) -> Vec<usize> {
        let still = |seen: &Option<Seen>| seen.is_some_and(|s| s.since.elapsed() >= GONE_AFTER);
        (0..self.seen.len()).filter(|&rank| still(&self.seen[rank])).collect()
    }

    /// Tells every process which ranks went silent, when that changed.
    fn publish_silent(&mut self, store: &Store) -> Result<(), DistributedError> {
        let silent = self.silent();
        if silent != self.published {
            store.set(SILENT_KEY, list_text(&silent).as_bytes())?;
            self.published = silent;
        }
        Ok(())
    }
}

/// The ranks not answered (or taken back), and those rank 0 last saw silent (while all had
/// answered).
fn absent(store: &Store, size: usize) -> Result<Absent, DistributedError> {
    let missing = missing(store, size)?;
    let said = store.get_if_set(SILENT_KEY)?.unwrap_or_default();
    let silent = parse_list(&String::from_utf8_lossy(&said)).unwrap_or_default();
    // Silent ranks count only while all answered.
    let silent = if missing.is_empty() { silent } else { Vec::new() };
    Ok(Absent { missing, silent })
}

/// How a process found its rank answered for came to answer for it.
enum Took {
    /// The process that answered had not beaten for `silent` (killed while it waited): its
    /// answer is this one's now.
    Place { silent: Duration },
    /// That process took its answer back as it ended (at a signal): this one's is the rank's
    /// first now.
    Freed,
}

/// Takes the place of the process that answered for `rank` first if that one stays silent for
/// [`GONE_AFTER`] and no verdict is said meanwhile, recording it in `answer` (held, not yet
/// counted); `None` where it beats (two live processes for one rank), a verdict was said, or
/// another new process for `rank` took the place first.
fn take_place_of_silent(
    store: &Store,
    rank: usize,
    answer: &Answer,
) -> Result<Option<Took>, DistributedError> {
    let key = beat_key(rank);
    let last = store.add(&key, 0)?;
    let since = Instant::now();
    while since.elapsed() < GONE_AFTER {
        if verdict(store)?.is_some() || store.add(&key, 0)? != last {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
    let claim = claim_tag();
    // Claimed and recorded under the answer's lock: a signal meanwhile takes back what this
    // process holds after the claim, not before it.
    answer.with_held(|held| {
        let holder = store.compare_set(&place_key(rank, last), b"", &claim)?;
        if holder == claim {
            // Its count stands for the silent one's answer, which is this one's now.
            store.add(&rank_key(rank), -1)?;
            (held.counted, held.beat, held.claim) = (true, Some(last), claim);
            Ok(Some(Took::Place { silent: since.elapsed() }))
        } else if holder == TAKEN_BACK {
            store.add(ANSWERED_KEY, 1)?;
            held.counted = true;
            // A place of its own, not the one taken back.
            held.beat_once()?;
            Ok(Some(Took::Freed))
        } else {
            Ok(None)
        }
    })
}

/// A claim on a place ([`place_key`]) that no other process makes: pid, clock and count.
fn claim_tag() -> Vec<u8> {
    static CLAIMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = CLAIMS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("process {} at {} #{count}", std::process::id(), clock.as_nanos()).into_bytes()
}

/// Where a signal finds the answer of a process that waits, to take it back before the process
/// ends (before the job forms): its rank counted as present, and starting it again (a Ctrl-C,
/// then the same command) would have been a second answer, which ends the job.
pub struct Withdrawal(Mutex<Option<Arc<Answer>>>);

impl Withdrawal {
    pub const fn new() -> Self {
        Self(Mutex::new(None))
    }

    /// Takes back the answer of this process's roll call, if one waits (see
    /// [`Answer::take_back`]). On the way out: the process ends next.
    pub fn withdraw(&self) {
        let answer = self.slot().take();
        if let Some(answer) = answer {
            answer.take_back();
        }
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<Arc<Answer>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One process's answer to the roll call: what of it is in the store, for its beats and for a
/// take-back at a signal. Its store work is done under its lock, so that a take-back never
/// comes between a change in the store and its record here.
struct Answer(Mutex<AnswerState>);

enum AnswerState {
    Held(HeldAnswer),
    /// Taken back at a signal: the process is on its way out.
    TakenBack,
    /// The roll call is over for this process: nothing to take back.
    Over,
}

/// An answer while its process waits.
struct HeldAnswer {
    store: Arc<Store>,
    rank: usize,
    /// One of its rank's answers ([`rank_key`]) is this process's.
    in_rank: bool,
    /// Counted among the answers ([`ANSWERED_KEY`]), its own or a silent one's it took over
    /// (not while it waits to take a silent one's place).
    counted: bool,
    /// The rank's beat this process gave last, or where it took a silent one's place: where a
    /// new process for its rank claims the place once it stands still, and a take-back first.
    beat: Option<i64>,
    /// This process's claim on the place at `beat` where it took it there; empty otherwise.
    claim: Vec<u8>,
}

impl HeldAnswer {
    /// Beats once for the rank: false where the beat does not follow this process's last, as
    /// another process beats for the rank.
    fn beat_once(&mut self) -> Result<bool, DistributedError> {
        let now = self.store.add(&beat_key(self.rank), 1)?;
        if self.beat.is_some_and(|last| now != last + 1) {
            return Ok(false);
        }
        self.beat = Some(now);
        self.claim.clear();
        Ok(true)
    }
}

impl Answer {
    fn new(store: &Arc<Store>, rank: usize) -> Self {
        let store = Arc::clone(store);
        let held = HeldAnswer { store, rank, in_rank: false, counted: false, beat: None, claim: Vec::new() };
        Self(Mutex::new(AnswerState::Held(held)))
    }

    /// Answers for the rank: true where this is its first answer, then counted among the
    /// answers and beaten once, so that it has a place of its own to claim at a take-back.
    fn first_for_rank(&self) -> Result<bool, DistributedError> {
        self.with_held(|held| {
            let answers = held.store.add(&rank_key(held.rank), 1)?;
            held.in_rank = true;
            if answers != 1 {
                return Ok(false);
            }
            held.store.add(ANSWERED_KEY, 1)?;
            held.counted = true;
            held.beat_once()
        })
    }

    /// Beats once for the rank ([`HeldAnswer::beat_once`]).
    fn beat(&self) -> Result<bool, DistributedError> {
        self.with_held(HeldAnswer::beat_once)
    }

    /// Ends the roll call for this process without taking anything back at a signal: its
    /// answer was one too many, and the verdict says so. (One taken back meanwhile is on its
    /// way out, and says nothing more.)
    fn let_go(&self) {
        let mut state = self.state();
        if matches!(*state, AnswerState::TakenBack) {
            drop(state);
            wait_for_exit();
        }
        *state = AnswerState::Over;
    }

    /// Takes this answer back, unless the roll call is over for it, a verdict was said (the job
    /// then forms, or ends, with it) or a new process for its rank took its place (it was
    /// stopped, not killed, meanwhile). Best effort: the process ends next, and its roll call
    /// does nothing more in the store.
    fn take_back(&self) {
        let held = {
            let mut state = self.state();
            match std::mem::replace(&mut *state, AnswerState::TakenBack) {
                AnswerState::Held(held) => held,
                other => {
                    *state = other;
                    return;
                }
            }
        };
        let HeldAnswer { store, rank, in_rank, counted, beat, claim } = held;
        if !matches!(verdict(&store), Ok(None)) {
            return;
        }
        if counted {
            // Its place is claimed as a new process for its rank would claim it: the first
            // claim has it.
            let Ok(beat) = beat.map_or_else(|| store.add(&beat_key(rank), 0), Ok) else { return };
            match store.compare_set(&place_key(rank, beat), &claim, TAKEN_BACK) {
                Ok(holder) if holder == TAKEN_BACK => {}
                _ => return,
            }
            // The count first: a rank started again meanwhile is then not all present early.
            let _ = store.add(ANSWERED_KEY, -1);
        }
        if in_rank {
            let _ = store.add(&rank_key(rank), -1);
        }
    }

    /// `change` applied to the held answer under its lock. Where a signal took the answer back
    /// meanwhile, the process is on its way out: it waits here for that ([`wait_for_exit`]),
    /// doing nothing more in the job's store.
    fn with_held<R>(&self, change: impl FnOnce(&mut HeldAnswer) -> R) -> R {
        let mut state = self.state();
        match &mut *state {
            AnswerState::Held(held) => change(held),
            AnswerState::TakenBack => {
                drop(state);
                wait_for_exit();
            }
            AnswerState::Over => unreachable!("the roll call is over for this answer"),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, AnswerState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Waits for the exit of a process whose answer was taken back: the signal's handler that took
/// it back ends the process.
fn wait_for_exit() -> ! {
    loop {
        std::thread::park();
    }
}

/// An answer held for its roll call, where `withdrawal` (the signal path's) finds it; once the
/// roll call is over for its process, there is nothing to take back.
struct Held<'w> {
    answer: Arc<Answer>,
    withdrawal: Option<&'w Withdrawal>,
}

impl<'w> Held<'w> {
    fn new(answer: &Arc<Answer>, withdrawal: Option<&'w Withdrawal>) -> Self {
        if let Some(withdrawal) = withdrawal {
            *withdrawal.slot() = Some(Arc::clone(answer));
        }
        Self { answer: Arc::clone(answer), withdrawal }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.answer.state();
            if matches!(*state, AnswerState::Held(_)) {
                *state = AnswerState::Over;
            }
        }
        if let Some(withdrawal) = self.withdrawal {
            let mut slot = withdrawal.slot();
            if slot.as_ref().is_some_and(|held| Arc::ptr_eq(held, &self.answer)) {
                *slot = None;
            }
        }
    }
}

/// What the roll call found: one for all the job's processes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    AllPresent,
    /// This rank answered twice.
    Twice(usize),
    /// Rank `by` waited `seconds` in vain for the `absent`.
    Missing {
        absent: Absent,
        by: usize,
        seconds: u64,
    },
}

impl Verdict {
    fn text(&self) -> String {
        match self {
            Verdict::AllPresent => "all present".into(),
            Verdict::Twice(rank) => format!("rank {rank} twice"),
            Verdict::Missing { absent, by, seconds } => {
                format!("missing {by} {seconds} {} {}", list_text(&absent.missing), list_text(&absent.silent))
            }
        }
    }

    fn parse(text: &str) -> Option<Self> {
        if text == "all present" {
            return Some(Verdict::AllPresent);
        }
        if let Some(missing) = text.strip_prefix("missing ") {
            let mut parts = missing.splitn(4, ' ');
            let (by, seconds) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
            let absent = Absent { missing: parse_list(parts.next()?)?, silent: parse_list(parts.next()?)? };
            return Some(Verdict::Missing { absent, by, seconds });
        }
        text.strip_prefix("rank ")?.strip_suffix(" twice")?.parse().ok().map(Verdict::Twice)
    }
}

/// Ranks as the store holds them: "1,2", "" for none.
fn list_text(ranks: &[usize]) -> String {
    ranks.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn parse_list(text: &str) -> Option<Vec<usize>> {
    text.split(',').filter(|r| !r.is_empty()).map(|r| r.parse().ok()).collect()
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

/// Counts the beats of the process that answered for `rank`, one each [`POLL`] while it waits.
/// Where the answer of a process that stopped beating at `beat` is claimed, once: by a new
/// process for its rank, taking its place, or by its own take-back ([`TAKEN_BACK`]).
fn place_key(rank: usize, beat: i64) -> String {
    format!("{}/place_at_{beat}", beat_key(rank))
}

fn beat_key(rank: usize) -> String {
    format!("roll_call/beat_{rank}")
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

    fn quiet(_: &Heard) {}

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
        let missing = |missing: Vec<usize>, silent: Vec<usize>| Verdict::Missing {
            absent: Absent { missing, silent },
            by: 3,
            seconds: 900,
        };
        for verdict in [
            Verdict::AllPresent,
            Verdict::Twice(0),
            Verdict::Twice(17),
            missing(vec![], vec![]),
            missing(vec![1, 2], vec![]),
            missing(vec![], vec![4]),
            missing(vec![1], vec![0, 3]),
        ] {
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
                matches!(&err, DistributedError::RanksMissing { absent, waited_by: 0, seconds: 1, .. } if absent.missing == [2]),
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

    /// Roll calls side by side in one process (tests of jobs on threads) share the signal's
    /// way to their answers, yet each beats for its own rank: the job forms.
    #[test]
    fn roll_calls_sharing_a_withdrawal_keep_their_own_answers() {
        let store = Arc::new(Store::in_process().unwrap());
        let shared = Withdrawal::new();
        let roll_call = |rank| RollCall {
            hosts_store: false,
            withdrawal: Some(&shared),
            ..roll(rank, 3, Duration::from_secs(60), Duration::MAX)
        };
        std::thread::scope(|s| {
            let (store, roll_call) = (&store, &roll_call);
            let others: Vec<_> =
                [1, 2].map(|rank| s.spawn(move || roll_call(rank).answer(store, &mut quiet))).into();
            std::thread::sleep(Duration::from_secs(1));
            answer(store, 0, 3).unwrap();
            for other in others {
                other.join().unwrap().unwrap();
            }
        });
    }

    /// A process that took its answer back (ended at a signal while it waited) can be started
    /// again: the new one answers as the first did, without waiting for the old one's beat to
    /// stand still, and the job forms.
    #[test]
    fn an_answer_taken_back_lets_its_rank_answer_again() {
        let store = Arc::new(Store::in_process().unwrap());
        let withdrawal = Withdrawal::new();
        let held = answered_first(&store, &withdrawal);
        withdrawal.withdraw();
        drop(held);
        assert_eq!(missing(&store, 3).unwrap(), [0, 1, 2]);
        assert_eq!(store.add(ANSWERED_KEY, 0).unwrap(), 0);
        let started = Instant::now();
        std::thread::scope(|s| {
            let others = answering(s, &store, [0, 2], 3);
            answer(&store, 1, 3).unwrap();
            for other in others {
                other.join().unwrap().unwrap();
            }
        });
        assert!(started.elapsed() < GONE_AFTER, "{:?}", started.elapsed());
    }

    /// A process that waits to take a silent one's place and is stopped by a signal meanwhile
    /// takes back its own count alone: the silent one's answer stands.
    #[test]
    fn a_signal_while_taking_a_place_takes_back_only_its_count() {
        let store = Arc::new(Store::in_process().unwrap());
        ended_after_answering(&store, 1);
        let withdrawal = Withdrawal::new();
        let answer = Arc::new(Answer::new(&store, 1));
        let held = Held::new(&answer, Some(&withdrawal));
        assert!(!answer.first_for_rank().unwrap());
        withdrawal.withdraw();
        drop(held);
        assert_eq!(store.add(&rank_key(1), 0).unwrap(), 1);
        assert_eq!(store.add(ANSWERED_KEY, 0).unwrap(), 1);
    }

    /// Rank 0 takes a rank for present only while its beat moves: one whose beat moved once and
    /// then stood still (killed since) is not.
    #[test]
    fn a_beat_that_stopped_moving_is_not_present() {
        let long_ago = Instant::now().checked_sub(Duration::from_secs(2)).unwrap();
        let beats =
            |since| Beats { seen: vec![Some(Seen { beat: 5, since, moved: true })], published: Vec::new() };
        assert!(beats(Instant::now()).all_moved());
        assert!(!beats(long_ago).all_moved());
    }

    /// What a process of rank `rank` leaves once it ended while it waited (killed: nothing took
    /// its answer back): its answer, and beats that have stopped.
    fn ended_after_answering(store: &Store, rank: usize) {
        store.add(&rank_key(rank), 1).unwrap();
        store.add(ANSWERED_KEY, 1).unwrap();
        store.add(&beat_key(rank), 7).unwrap();
    }

    /// Rank 1's answer on a thread of `scope`, in place of a silent process; returns once it
    /// took the place.
    fn taking_place<'s>(
        scope: &'s std::thread::Scope<'s, '_>,
        store: &'s Arc<Store>,
    ) -> std::thread::ScopedJoinHandle<'s, Result<(), DistributedError>> {
        let (send, taken) = std::sync::mpsc::channel();
        let handle = scope.spawn(move || {
            roll(1, 3, Duration::from_secs(60), Duration::MAX).answer(store, &mut |heard| {
                if let Heard::TookPlace { silent } = heard {
                    send.send(*silent).unwrap();
                }
            })
        });
        let silent = taken.recv_timeout(GONE_AFTER * 3).expect("it takes the place");
        assert!(silent >= GONE_AFTER, "{silent:?}");
        handle
    }

    /// A process of rank 1 that answered first (and so beat once), its answer where
    /// `withdrawal` (its signal path) finds it.
    fn answered_first<'w>(store: &Arc<Store>, withdrawal: &'w Withdrawal) -> Held<'w> {
        let answer = Arc::new(Answer::new(store, 1));
        let held = Held::new(&answer, Some(withdrawal));
        assert!(answer.first_for_rank().unwrap());
        held
    }

    /// A process stopped (SIGSTOP) while it waited, whose place a new process took, then
    /// continued and stopped by a signal before its next beat, takes back nothing: its answer
    /// is the new process's, and the job forms with it.
    #[test]
    fn a_process_whose_place_was_taken_takes_back_nothing() {
        let store = Arc::new(Store::in_process().unwrap());
        let stopped = Withdrawal::new();
        let held = answered_first(&store, &stopped);
        std::thread::scope(|s| {
            let rank0 = s.spawn(|| answer(&store, 0, 3));
            let rank1 = taking_place(s, &store);
            stopped.withdraw();
            drop(held);
            assert_eq!(store.add(&rank_key(1), 0).unwrap(), 1);
            let rank2 = s.spawn(|| answer(&store, 2, 3));
            for rank in [rank0, rank1, rank2] {
                rank.join().unwrap().unwrap();
            }
        });
    }

    /// A process that takes its answer back (a Ctrl-C) while a new process for its rank
    /// waits for its place frees the place: the new one's answer is the rank's first, and the
    /// job forms with it.
    #[test]
    fn a_take_back_while_a_new_process_waits_frees_the_place() {
        let store = Arc::new(Store::in_process().unwrap());
        let ending = Withdrawal::new();
        let held = answered_first(&store, &ending);
        std::thread::scope(|s| {
            let others = answering(s, &store, [0, 2], 3);
            let rank1 = s.spawn(|| answer(&store, 1, 3));
            std::thread::sleep(Duration::from_secs(1));
            ending.withdraw();
            drop(held);
            for rank in others.into_iter().chain([rank1]) {
                rank.join().unwrap().unwrap();
            }
        });
        assert_eq!(store.add(&rank_key(1), 0).unwrap(), 1);
        assert_eq!(store.add(ANSWERED_KEY, 0).unwrap(), 3);
    }

    /// A process killed while it waited (SIGKILL: nothing took its answer back) leaves its
    /// rank answered, but silent: all present waits for a new process for it, which takes the
    /// place of the silent one once its beat stood still; the job forms.
    #[test]
    fn a_new_process_takes_the_place_of_a_silent_one() {
        let store = Arc::new(Store::in_process().unwrap());
        ended_after_answering(&store, 1);
        std::thread::scope(|s| {
            let others = answering(s, &store, [0, 2], 3);
            std::thread::sleep(Duration::from_secs(1));
            assert_eq!(verdict(&store).unwrap(), None);
            let rank1 = taking_place(s, &store);
            rank1.join().unwrap().unwrap();
            for other in others {
                other.join().unwrap().unwrap();
            }
        });
    }

    /// A silent rank that no new process replaces is named when rank 0 gives up.
    /// Every process says so while it waits, rank 0 seeing the beats and the others told.
    #[test]
    fn a_silent_rank_is_named_missing() {
        let store = Arc::new(Store::in_process().unwrap());
        ended_after_answering(&store, 1);
        std::thread::scope(|s| {
            let rank2 = s.spawn(|| {
                let mut heard = Vec::new();
                let report_every = Duration::from_millis(300);
                let result = roll(2, 3, Duration::from_secs(60), report_every)
                    .answer(&store, &mut |h| heard.push(h.clone()));
                (result, heard)
            });
            let err = roll(0, 3, GONE_AFTER + Duration::from_secs(1), Duration::MAX)
                .answer(&store, &mut quiet)
                .unwrap_err();
            let silent = Absent { missing: vec![], silent: vec![1] };
            assert!(
                matches!(&err, DistributedError::RanksMissing { absent, waited_by: 0, .. } if absent == &silent),
                "{err}"
            );
            assert!(err.to_string().starts_with("rank(s) 1 of the 3 answered, then went silent"), "{err}");
            let (rank2, heard) = rank2.join().unwrap();
            assert_eq!(rank2.unwrap_err().to_string(), err.to_string());
            let told = |h: &Heard| matches!(h, Heard::Waiting { absent, .. } if absent == &silent);
            assert!(heard.iter().any(told), "{heard:?}");
        });
    }

    /// The silent process was alive after all (stopped, then continued): two processes beat for
    /// rank 1, and the job ends, naming it.
    #[test]
    fn a_silent_process_that_beats_again_ends_the_job() {
        let store = Arc::new(Store::in_process().unwrap());
        ended_after_answering(&store, 1);
        std::thread::scope(|s| {
            let rank0 = s.spawn(|| answer(&store, 0, 3));
            let rank1 = taking_place(s, &store);
            // The old process's next beat.
            store.add(&beat_key(1), 1).unwrap();
            for rank in [rank0, rank1] {
                let err = rank.join().unwrap().unwrap_err();
                assert!(matches!(err, DistributedError::RankTwice { twice: 1, .. }), "{err}");
            }
        });
    }

    /// A process waiting says whom for, and gives up after the timeout naming them.
    #[test]
    fn missing_ranks_are_named() {
        let store = Arc::new(Store::in_process().unwrap());
        let mut heard = Vec::new();
        let err = roll(1, 4, Duration::from_millis(900), Duration::from_millis(300))
            .answer(&store, &mut |h| {
                if let Heard::Waiting { absent, .. } = h {
                    heard.push(absent.all())
                }
            })
            .unwrap_err();
        assert!(heard.len() >= 2, "{heard:?}");
        assert!(heard.iter().all(|m| m == &[0, 2, 3]), "{heard:?}");
        match err {
            DistributedError::RanksMissing { size: 4, absent, waited_by: 1, .. } => {
                assert_eq!(absent, Absent { missing: vec![0, 2, 3], silent: vec![] })
            }
            other => panic!("{other}"),
        }
    }
}
