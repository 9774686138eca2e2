//! Operating `evnas serve` as an operator does, with the real tools: its /metrics hold every
//! documented name and pass `promtool check metrics`; a real Prometheus scrapes it and every
//! expression of the Grafana dashboard returns data; the alerting rules pass promtool's checks
//! and unit tests and evaluate without error on what it scraped; reloads (SIGHUP, a file replaced by
//! rename) apply at the next generation boundary, invalid files and restart-only changes are
//! refused; pause, resume, stop and a new search.id work; a reload during training, a burst of
//! SIGHUPs and a kill -9 right after a reload end as the uninterrupted run with the same
//! reload; systemd's notify protocol (READY, STATUS, WATCHDOG, RELOADING, STOPPING).

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::search::{add_tiny_final_training, assert_same_search, tiny_setup};
use common::served::{config_with_runs, free_port, http_get, search_dir_named, url_encode, Served};

/// Generous bound for a tiny search on a slow, shared machine.
const DEADLINE: Duration = Duration::from_secs(240);

/// `tiny_setup`'s config under `root`, with search `id`, its runs under `root/<id>`, metrics on
/// `port` (0: none), and `extra` lines appended to its [search] section.
fn served_config(root: &Path, generations: usize, id: &str, port: u16, extra: &str) -> PathBuf {
    let (config, _) = tiny_setup(root, generations);
    let runs = root.join(format!("runs-{id}"));
    let own = config_with_runs(&config, root, &runs);
    let listen = if port == 0 { String::new() } else { format!("127.0.0.1:{port}") };
    let text = std::fs::read_to_string(&own)
        .unwrap()
        .replace("[search]\n", &format!("[search]\nid = \"{id}\"\n{extra}"))
        .replace("listen = \"\"", &format!("listen = \"{listen}\""));
    std::fs::write(&own, text).unwrap();
    own
}

/// Replaces `key = …` of `config` by `key = value` the way editors save: a new file renamed
/// over the old one.
fn set_by_rename(config: &Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let mut found = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.split('=').next().map(str::trim) == Some(key) {
                found = true;
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !found {
        let at = lines.iter().position(|l| l == "[search]").unwrap() + 1;
        lines.insert(at, format!("{key} = {value}"));
    }
    let tmp = config.with_extension("toml.new");
    std::fs::write(&tmp, lines.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, config).unwrap();
}

fn metrics_text(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(body) = http_get(port, "/metrics") {
            return body;
        }
        assert!(Instant::now() < deadline, "nothing serves metrics on port {port}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The value of the first sample of `series` (a name with or without labels) on /metrics.
fn sample(port: u16, series: &str) -> Option<f64> {
    metrics_text(port)
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// The settings each generation of `run` records.
fn recorded(run: &Path, key: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("generations.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["settings"][key].as_f64().unwrap()
        })
        .collect()
}

#[test]
fn metrics_hold_every_documented_name_and_promtool_accepts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = served_config(tmp.path(), 2, "metrics", port, "");
    let mut served = Served::start(&config, None);
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    let text = metrics_text(port);
    for name in evnas::telemetry::names::exposed() {
        assert!(
            text.lines().any(|l| l.starts_with(&name) && l[name.len()..].starts_with([' ', '{'])),
            "{name} is not on /metrics:\n{text}"
        );
    }
    assert!(text.contains("# TYPE evnas_train_step_duration_seconds histogram"), "{text}");
    assert_eq!(sample(port, "evnas_generations_total"), Some(2.0));
    assert_eq!(sample(port, "evnas_search_state{state=\"finished\"}"), Some(1.0));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus, installed by scripts/setup.sh)");
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics: {said}");
    served.sigterm();
    let (status, log) = served.wait(Duration::from_secs(30)).expect("serve did not exit on SIGTERM");
    assert!(status.success(), "{status}\n{log}");
}

/// A Prometheus server on loopback, its data in a temporary directory; killed when dropped.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, target: u16) -> Self {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: ['{}']\nscrape_configs:\n  - job_name: evnas\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n",
                alert_rules().display()
            ),
        )
        .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian package prometheus, installed by scripts/setup.sh)");
        Self { child, port }
    }

    /// The result of an instant query.
    fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", url_encode(expr));
        self.get(&path)["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// The alerting rules it evaluates (`/api/v1/rules`: name, query, health, state, ...).
    fn rules(&self) -> Vec<serde_json::Value> {
        let groups = self.get("/api/v1/rules")["data"]["groups"].as_array().cloned().unwrap_or_default();
        groups.iter().flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default()).collect()
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let Some(body) = http_get(self.port, path) else { return serde_json::Value::Null };
        serde_json::from_str(&body).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The alerting rules operators load into their Prometheus.
fn alert_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prometheus/evnas-alerts.yml")
}

/// `promtool check rules` and `promtool test rules` (the rules' own unit tests: each alert fires
/// on its trouble and not beside it), and every metric the rules name is one evnas exposes (a
/// misspelt name in an `unless` would silently keep an alert from ever firing, or make it fire).
#[test]
fn alert_rules_pass_promtool_and_name_only_real_metrics() {
    let rules = alert_rules();
    let tests = rules.with_file_name("evnas-alerts.test.yml");
    for (verb, file) in [("check", &rules), ("test", &tests)] {
        let out = Command::new("promtool")
            .args([verb, "rules"])
            .arg(file)
            .current_dir(file.parent().unwrap())
            .output()
            .expect("promtool (Debian package prometheus, installed by scripts/setup.sh)");
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.contains("SUCCESS"), "promtool {verb} rules: {said}");
    }
    let text = std::fs::read_to_string(&rules).unwrap();
    let documented: Vec<&str> = evnas::telemetry::names::METRICS.iter().map(|m| m.name).collect();
    let mut named: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("evnas_"))
        .collect();
    named.sort_unstable();
    named.dedup();
    assert!(named.len() >= 10, "{named:?}");
    for name in named {
        let base = ["_sum", "_count", "_bucket"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        assert!(documented.contains(&base), "the alert rules name {name}, which evnas does not expose");
    }
}

/// Every PromQL expression of config/grafana/evnas.json, variables substituted.
fn dashboard_expressions() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(root.join("scripts/dashboard-queries.py"))
        .arg(root.join("config/grafana/evnas.json"))
        .output()
        .expect("python3");
    assert!(out.status.success(), "dashboard-queries.py: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

#[test]
fn prometheus_scrapes_serve_and_every_dashboard_query_returns_data() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = served_config(tmp.path(), 3, "scraped", port, "");
    // The search's result trained afterwards, so that the final-training panels have data too.
    add_tiny_final_training(tmp.path(), &config, true);
    let mut served = Served::start(&config, None);
    let prometheus = Prometheus::start(tmp.path(), port);
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    let expressions = dashboard_expressions();
    assert!(expressions.len() > 20, "{expressions:?}");
    // A few scrapes after the end, so that every series has its final samples.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let empty: Vec<&String> = expressions
            .iter()
            .filter(|e| !e.contains("cuda")) // CUDA memory exists only on CUDA devices.
            .filter(|e| prometheus.query(e).is_empty())
            .collect();
        if empty.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "dashboard expressions without data: {empty:#?}");
        std::thread::sleep(Duration::from_secs(2));
    }
    let best = prometheus.query("evnas_fitness_top1_ratio{stat=\"best\"}");
    let value: f64 = best[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(value > 0.0 && value <= 1.0, "{best:?}");
    // The alerting rules evaluate on the real series without error (a vector match that is
    // not one-to-one, say, is an error only real data shows), and a healthy search that
    // finished fires none of them.
    // The final training's stall alert looks at whether it runs: it no longer does, from the
    // first scrape after its end (the last may have come while it still ran).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = prometheus.query("evnas_final_training_running");
        if running.first().map(|r| r["value"][1].clone()) == Some("0".into()) {
            break;
        }
        assert!(Instant::now() < deadline, "still running after its end: {running:?}");
        std::thread::sleep(Duration::from_secs(1));
    }
    let rules = prometheus.rules();
    assert_eq!(rules.len(), 7, "{rules:#?}");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule:#?}");
        assert_ne!(rule["state"], "firing", "{rule:#?}");
    }
    served.stop_cleanly();
}

#[test]
fn reloads_apply_at_the_next_boundary_and_bad_ones_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = served_config(tmp.path(), 4, "reloaded", port, "");
    // The first batches of generations 2 and 3 (6 batches a generation) take 4 s more: reloads
    // sent after generation 1 is logged arrive while generation 2 trains, those sent once the
    // first reload is in force while generation 3 trains.
    let mut served =
        Served::start(&config, Some("train.batch=6*off->1*sleep(4000)->5*off->1*sleep(4000)->off"));
    served.wait_for_log("generation 1/4", DEADLINE);

    // SIGHUP with a new mutation rate: in force from generation 3.
    let text =
        std::fs::read_to_string(&config).unwrap().replace("elites = 1", "elites = 1\nmutation_rate = 0.5");
    std::fs::write(&config, text).unwrap();
    served.signal(libc::SIGHUP);
    served.wait_for_log("search.mutation_rate = 0.5 (was 0.1) in force from generation 3", DEADLINE);
    assert_eq!(sample(port, "evnas_config_mutation_rate"), Some(0.5));

    // An invalid file and a restart-only change (seen by the file watch alone): refused, the
    // old values stay.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("elites = 1", "elites = 1\nmutation_rat = 0.7")).unwrap();
    served.wait_for_log("refused, invalid config", DEADLINE);
    assert!(served.log().contains("unknown field `mutation_rat`"), "{}", served.log());
    std::fs::write(
        &config,
        good.replace("layers = 3", "layers = 4").replace("mutation_rate = 0.5", "mutation_rate = 0.9"),
    )
    .unwrap();
    served.wait_for_log("supernet.layers: 3 -> 4: the supernet is built", DEADLINE);
    served.wait_for_log("the running config is unchanged", DEADLINE);
    std::fs::write(&config, &good).unwrap();
    served.wait_for_log("nothing changed", DEADLINE);

    // A file replaced by rename, without a signal, while generation 3 trains: from generation 4.
    set_by_rename(&config, "tournament_size", "3");
    served.wait_for_log("reload (config file changed): search.tournament_size: 2 -> 3", DEADLINE);
    served.wait_for_log("search.tournament_size = 3 (was 2) in force from generation 4", DEADLINE);
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    let run = tmp.path().join("runs-reloaded").join("reloaded");
    assert_eq!(recorded(&run, "mutation_rate"), [0.1, 0.1, 0.5, 0.5]);
    assert_eq!(recorded(&run, "tournament_size"), [2.0, 2.0, 2.0, 3.0]);
    let text = metrics_text(port);
    assert!(text.contains("evnas_reloads_total{outcome=\"invalid\"} 1"), "{text}");
    assert!(text.contains("evnas_reloads_total{outcome=\"refused\"} 1"), "{text}");
    assert_eq!(sample(port, "evnas_config_tournament_size"), Some(3.0));
    served.stop_cleanly();
}

/// A budget cut below the generations run ends the search at the next boundary: the log says
/// so, and the budget in force is the generations run (progress stays at most 100%).
#[test]
fn a_budget_cut_below_the_generations_run_ends_the_search_there() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = served_config(tmp.path(), 4, "cut", port, "");
    // Generation 2's first batch (6 batches a generation) takes 4 s more: the cut arrives while
    // generation 2 trains.
    let mut served = Served::start(&config, Some("train.batch=6*off->1*sleep(4000)->off"));
    served.wait_for_log("generation 1/4", DEADLINE);
    set_by_rename(&config, "generations", "1");
    served.wait_for_log(
        "search.generations = 1 (was 4): 2 generation(s) have run, so the search ends now",
        DEADLINE,
    );
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    assert_eq!(sample(port, "evnas_generation"), Some(2.0));
    assert_eq!(sample(port, "evnas_config_generations"), Some(2.0));
    served.stop_cleanly();
}

/// An edit saved while serve starts, after it has read its config and before its file watch
/// began, is not lost: once running, serve finds the file changed and takes it as a reload.
#[test]
fn an_edit_saved_while_serve_starts_is_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = served_config(tmp.path(), 2, "edited", port, "");
    // Once its config is read, serve waits 6 s before its watch starts; the edit
    // comes 3 s after the start. (Were serve slower than that to read it, it would start with
    // the edit: the check below holds then too.)
    let mut served = Served::start(&config, Some("serve.start=sleep(6000)"));
    std::thread::sleep(Duration::from_secs(3));
    set_by_rename(&config, "tournament_size", "3");
    let deadline = Instant::now() + DEADLINE;
    while sample(port, "evnas_config_tournament_size") != Some(3.0) {
        assert!(Instant::now() < deadline, "the edit was never applied:\n{}", served.log());
        assert!(served.child.try_wait().unwrap().is_none(), "serve exited:\n{}", served.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    served.stop_cleanly();
}

/// Serves `config` with generation 2's first batch delayed, sets the mutation rate to 0.5 once
/// generation 1 is logged (`during` runs right after), and returns the search's directory once
/// it is finished (`serve` then stopped).
fn serve_with_a_reload(config: &Path, during: impl FnOnce(&mut Served)) -> PathBuf {
    let mut served = Served::start(config, Some("train.batch=6*off->1*sleep(3000)->off"));
    served.wait_for_log("generation 1/3", DEADLINE);
    set_by_rename(config, "mutation_rate", "0.5");
    during(&mut served);
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    served.sigterm();
    let (status, log) = served.wait(Duration::from_secs(30)).expect("serve did not exit");
    assert!(status.success(), "{status}\n{log}");
    let runs = config.parent().unwrap();
    search_dir_named(runs, "same")
}

#[test]
fn a_reload_in_training_a_sighup_burst_and_a_kill_after_a_reload_end_as_one_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let setup = |name: &str| {
        let root = tmp.path().join(name);
        std::fs::create_dir_all(&root).unwrap();
        served_config(&root, 3, "same", 0, "")
    };
    // Uninterrupted: the reload arrives while generation 2 trains.
    let reference = serve_with_a_reload(&setup("reference"), |served| {
        served.wait_for_log("in force from generation 3", DEADLINE);
    });
    assert_eq!(recorded(&reference, "mutation_rate"), [0.1, 0.1, 0.5]);

    // The same, with 50 SIGHUPs on top.
    let burst = serve_with_a_reload(&setup("burst"), |served| {
        for _ in 0..50 {
            served.signal(libc::SIGHUP);
        }
        served.wait_for_log("in force from generation 3", DEADLINE);
    });
    assert_same_search(&burst, &reference);

    // Killed right after the reload is accepted; the restart takes the file as it is.
    let config = setup("killed");
    let mut served = Served::start(&config, Some("train.batch=6*off->1*sleep(3000)->off"));
    served.wait_for_log("generation 1/3", DEADLINE);
    set_by_rename(&config, "mutation_rate", "0.5");
    served.wait_for_log("search.mutation_rate: 0.1 -> 0.5", DEADLINE);
    served.signal(libc::SIGKILL);
    let _ = served.wait(Duration::from_secs(30)).expect("serve was not killed");
    let mut restarted = Served::start(&config, None);
    restarted.wait_for_log("search finished; serving until stopped", DEADLINE);
    restarted.stop_cleanly();
    let killed = search_dir_named(config.parent().unwrap(), "same");
    assert_same_search(&killed, &reference);
}

#[test]
fn pause_resume_stop_and_a_new_search_id() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = served_config(tmp.path(), 4, "first", port, "");
    let runs = tmp.path().join("runs-first");
    let mut served = Served::start(&config, None);
    served.wait_for_log("generation 1/4", DEADLINE);

    set_by_rename(&config, "state", "\"paused\"");
    served.wait_for_log("search paused;", DEADLINE);
    assert_eq!(sample(port, "evnas_search_state{state=\"paused\"}"), Some(1.0));
    // A paused search is in no phase and has no batches waiting.
    assert_eq!(sample(port, "evnas_phase{phase=\"idle\"}"), Some(1.0));
    assert_eq!(sample(port, "evnas_phase{phase=\"train\"}"), Some(0.0));
    assert_eq!(sample(port, "evnas_prefetch_queue_depth"), Some(0.0));
    assert!(runs.join("first").join("stop-checkpoint").is_dir());
    let trained = sample(port, "evnas_train_batches_total");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sample(port, "evnas_train_batches_total"), trained, "a paused search trains on");

    set_by_rename(&config, "state", "\"running\"");
    served.wait_for_log("resuming, stopped", DEADLINE);
    set_by_rename(&config, "state", "\"stopped\"");
    served.wait_for_log("search stopped; the best individual so far", DEADLINE);
    assert_eq!(sample(port, "evnas_search_state{state=\"stopped\"}"), Some(1.0));
    assert!(runs.join("first").join("best").join("genotype.json").is_file());

    // A new search.id (and state running): a new search in its own run directory; the old
    // one keeps its checkpoints.
    set_by_rename(&config, "state", "\"running\"");
    served.wait_for_log_n("resuming, stopped", 2, DEADLINE);
    set_by_rename(&config, "id", "\"second\"");
    served.wait_for_log("switching searches", DEADLINE);
    served.wait_for_log("search=second", DEADLINE);
    served.wait_for_log_n("generation 1/4", 2, DEADLINE);
    assert!(runs.join("second").join("config.json").is_file());
    assert!(runs.join("first").join("stop-checkpoint").is_dir());

    // A new search whose data is not where its config says: refused before "second" stops,
    // naming data.path and the missing file.
    let text = std::fs::read_to_string(&config).unwrap();
    let data = tmp.path().join("data").display().to_string();
    let edited = text
        .replacen(&format!("path = \"{data}\""), "path = \"/nonexistent/evnas-data\"", 1)
        .replacen("id = \"second\"", "id = \"third\"", 1);
    assert_eq!(edited.matches("nonexistent").count() + edited.matches("third").count(), 2, "{text}");
    std::fs::write(config.with_extension("toml.new"), &edited).unwrap();
    std::fs::rename(config.with_extension("toml.new"), &config).unwrap();
    served.wait_for_log("refused: switching to search third: data.path = /nonexistent/evnas-data", DEADLINE);
    assert!(
        served.log().contains("cannot read /nonexistent/evnas-data/train-images-idx3-ubyte.gz"),
        "{}",
        served.log()
    );
    assert!(!runs.join("third").exists());
    std::fs::write(config.with_extension("toml.new"), &text).unwrap();
    std::fs::rename(config.with_extension("toml.new"), &config).unwrap();

    // "second" is the service's: a resume of it by hand is refused, naming the service, and a
    // switch to "first" while another process (here: this test) writes it is refused too.
    let out = common::search::evnas().args(["search", "--resume"]).arg(runs.join("second")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let held_by = |pid: u32| format!("is in use by another evnas process (pid {pid} on ");
    assert!(stderr.contains(&held_by(served.child.id())), "{stderr}");
    let lock = evnas::run_lock::RunLock::acquire(&runs.join("first")).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(config.with_extension("toml.new"), text.replacen("id = \"second\"", "id = \"first\"", 1))
        .unwrap();
    std::fs::rename(config.with_extension("toml.new"), &config).unwrap();
    served.wait_for_log("refused: switching to search first: ", DEADLINE);
    assert!(served.log().contains(&held_by(std::process::id())), "{}", served.log());
    drop(lock);
    std::fs::write(config.with_extension("toml.new"), &text).unwrap();
    std::fs::rename(config.with_extension("toml.new"), &config).unwrap();

    // Back to "first" with another seed, in one edit: "first" cannot resume under that config,
    // so the reload is refused, naming the key, and "second" trains on.
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = text.replacen("seed = 7", "seed = 8", 1).replacen("id = \"second\"", "id = \"first\"", 1);
    assert_ne!(edited, text);
    std::fs::write(config.with_extension("toml.new"), edited).unwrap();
    std::fs::rename(config.with_extension("toml.new"), &config).unwrap();
    served.wait_for_log("refused: switching to search first: the search in", DEADLINE);
    assert!(served.log().contains("differing in search.seed: 7 -> 8"), "{}", served.log());
    let trained = sample(port, "evnas_train_batches_total").unwrap();
    let deadline = Instant::now() + DEADLINE;
    while sample(port, "evnas_train_batches_total").unwrap() <= trained {
        assert!(Instant::now() < deadline, "the running search stopped after a refused switch");
        std::thread::sleep(Duration::from_millis(200));
    }
    served.stop_cleanly();

    // The file now names a search it cannot resume: validate (systemd's ExecReload) and a
    // start both refuse it as a config problem, exit 2, which the unit does not restart.
    for args in [&["validate", "--config"][..], &["serve", "--config"][..]] {
        let out = common::search::evnas().args(args).arg(&config).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("was started with another config, differing in search.seed: 7 -> 8"),
            "{stderr}"
        );
    }
}

/// A switch to another search undone while the first still stops (its batch in progress takes
/// 4 s): accepted, not refused as in use (its lock is the service's own), and the first search
/// resumes once stopped and runs to its end.
#[test]
fn switching_back_to_a_search_that_still_stops_resumes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let config = served_config(tmp.path(), 3, "first", 0, "");
    let mut served = Served::start(&config, Some("train.batch=6*off->1*sleep(4000)->off"));
    served.wait_for_log("generation 1/3", DEADLINE);
    set_by_rename(&config, "id", "\"second\"");
    served.wait_for_log("switching searches", DEADLINE);
    set_by_rename(&config, "id", "\"first\"");
    served.wait_for_log("search.id: second -> first", DEADLINE);
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    let log = served.log();
    assert!(!log.contains("refused"), "{log}");
    let history = std::fs::read_to_string(tmp.path().join("runs-first/first/generations.jsonl")).unwrap();
    assert_eq!(history.lines().count(), 3, "{log}");
    served.stop_cleanly();
}

/// The NOTIFY_SOCKET a service manager would give: a thread reads every datagram as it comes,
/// with its arrival time.
struct NotifySocket {
    path: PathBuf,
    got: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                sink.lock().unwrap().push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned()));
            }
        });
        Self { path, got }
    }

    /// Waits until a datagram holds `text`.
    fn wait_for(&self, text: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.messages().iter().any(|m| m.contains(text)) {
            assert!(Instant::now() < deadline, "no {text:?} on the notify socket: {:?}", self.messages());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn messages(&self) -> Vec<String> {
        self.got.lock().unwrap().iter().map(|(_, m)| m.clone()).collect()
    }

    fn times_of(&self, text: &str) -> Vec<Instant> {
        self.got.lock().unwrap().iter().filter(|(_, m)| m.contains(text)).map(|(t, _)| *t).collect()
    }
}

#[test]
fn sd_notify_ready_status_reloading_stopping_and_a_watchdog_that_stops_on_a_hang() {
    let tmp = tempfile::tempdir().unwrap();
    let config = served_config(tmp.path(), 3, "notified", 0, "");
    let socket = NotifySocket::bind(tmp.path());
    let path = socket.path.display().to_string();
    // Generation 2's third batch hangs for 8 s; the watchdog interval is 2 s.
    let mut served = Served::start_with(
        &config,
        Some("train.batch=8*off->1*sleep(8000)->off"),
        &[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", "2000000")],
    );
    socket.wait_for("READY=1", DEADLINE);
    socket.wait_for("WATCHDOG=1", Duration::from_secs(10));
    socket.wait_for("STATUS=generation 1/3", DEADLINE);
    served.wait_for_log("not pinging the watchdog", DEADLINE);
    served.signal(libc::SIGHUP);
    socket.wait_for("RELOADING=1", Duration::from_secs(20));
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    served.sigterm();
    socket.wait_for("STOPPING=1", Duration::from_secs(20));
    assert!(served.wait(Duration::from_secs(30)).is_some_and(|(s, _)| s.success()));

    let messages = socket.messages();
    let reloading = messages.iter().position(|m| m.contains("RELOADING=1")).unwrap();
    assert!(messages[reloading].contains("MONOTONIC_USEC="), "{messages:?}");
    assert!(
        messages[reloading + 1..].iter().any(|m| m.contains("READY=1")),
        "no READY after RELOADING: {messages:?}"
    );
    // While the trainer hung, no ping for longer than the interval; pings before and after.
    let pings = socket.times_of("WATCHDOG=1");
    let longest = pings.windows(2).map(|w| w[1] - w[0]).max().unwrap();
    assert!(longest >= Duration::from_secs(4), "the watchdog was pinged through the hang: {pings:?}");
    assert!(pings.len() >= 4, "{pings:?}");
}

/// Where stderr is the journal's stream (JOURNAL_STREAM names its device and inode, as systemd
/// sets it for a service), every line starts with its syslog priority and carries no time of its
/// own; elsewhere, lines are as on a terminal. (No journald runs here: the stream is a file that
/// JOURNAL_STREAM names, as systemd would name its socket.)
#[test]
fn lines_to_the_journal_carry_their_priority() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    // A warning (a log filter that does not parse) and an error (no such config file).
    let stderr_lines = |journal_stream: Option<&dyn Fn(&std::fs::Metadata) -> String>| {
        let path = tmp.path().join("stderr");
        let file = std::fs::File::create(&path).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evnas"));
        cmd.args(["validate", "--config"]).arg(tmp.path().join("missing.toml"));
        cmd.env("EVNAS_LOG", "evnas=loudly").env_remove("JOURNAL_STREAM");
        if let Some(name) = journal_stream {
            cmd.env("JOURNAL_STREAM", name(&file.metadata().unwrap()));
        }
        let status = cmd.stderr(file).status().unwrap();
        assert_eq!(status.code(), Some(2));
        std::fs::read_to_string(&path).unwrap().lines().map(String::from).collect::<Vec<_>>()
    };
    let this_file = |m: &std::fs::Metadata| format!("{}:{}", m.dev(), m.ino());
    let lines = stderr_lines(Some(&this_file));
    let warning = lines.iter().find(|l| l.contains("EVNAS_LOG is not a log filter")).expect("a warning");
    assert!(warning.starts_with("<4>"), "{lines:?}");
    assert!(!warning.contains("Z "), "the journal stamps lines itself: {warning}");
    let error = lines.iter().find(|l| l.contains("error:")).expect("an error");
    assert!(error.starts_with("<3>error: "), "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with('<')), "{lines:?}");

    // Not the journal's: no stream named, or another one (stderr redirected since).
    let another = |m: &std::fs::Metadata| format!("{}:{}", m.dev(), m.ino() + 1);
    for lines in [stderr_lines(None), stderr_lines(Some(&another))] {
        assert!(lines.iter().any(|l| l.starts_with("error: ")), "{lines:?}");
        assert!(lines.iter().all(|l| !l.starts_with('<')), "{lines:?}");
    }
}

/// A finished search stays served; a budget raised while it is paused continues it once it
/// runs again (from its final population, bred first); served again after a restart, its
/// progress gauges show where it ended.
#[test]
fn a_finished_search_given_more_generations_while_paused_continues_when_running() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = served_config(tmp.path(), 2, "longer", port, "");
    let mut served = Served::start(&config, None);
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    set_by_rename(&config, "state", "\"paused\"");
    served.wait_for_log("search.state: \"running\" -> \"paused\"", DEADLINE);
    set_by_rename(&config, "generations", "3");
    served.wait_for_log("search.generations: 2 -> 3", DEADLINE);
    set_by_rename(&config, "state", "\"running\"");
    served.wait_for_log("search.generations = 3 (was 2) in force from generation 3", DEADLINE);
    served.wait_for_log_n("search finished; serving until stopped", 2, DEADLINE);
    let run = tmp.path().join("runs-longer").join("longer");
    assert_eq!(recorded(&run, "generations"), [2.0, 2.0, 3.0]);
    served.stop_cleanly();

    let mut served = Served::start(&config, None);
    served.wait_for_log("opening the finished search", DEADLINE);
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    assert!(!served.log().contains("search running"), "{}", served.log());
    assert_eq!(sample(port, "evnas_search_state{state=\"finished\"}"), Some(1.0));
    assert_eq!(sample(port, "evnas_generation"), Some(3.0));
    assert_eq!(sample(port, "evnas_checkpoint_generation"), Some(3.0));
    // What `df` shows for the run directory's filesystem, give or take what other writers did.
    let free = sample(port, "evnas_run_dir_available_bytes").expect("free space is exported");
    let measured = evnas::checkpoint::available_bytes(&run).unwrap() as f64;
    assert!(free > 0.0 && (free - measured).abs() < 0.05 * measured, "{free} vs {measured}");
    assert_eq!(sample(port, "evnas_config_generations"), Some(3.0));
    assert_eq!(sample(port, "evnas_phase{phase=\"idle\"}"), Some(1.0));
    let history = std::fs::read_to_string(run.join("generations.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(history.lines().last().unwrap()).unwrap();
    let best = sample(port, "evnas_fitness_top1_ratio{stat=\"best\"}").unwrap();
    assert!((best - last["fitness"]["best"].as_f64().unwrap() / 100.0).abs() < 1e-9, "{best}");
    served.stop_cleanly();
}

/// An emptied config file is no reload. A reload that would continue a finished search is
/// refused while another process holds the search (checked before anything changes); one whose
/// search then cannot be opened (every checkpoint corrupt) leaves the service up with the
/// search stopped, saying why, where a restart would only fail again, and tries again by itself.
#[test]
fn a_search_a_reload_cannot_continue_leaves_the_service_up() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = served_config(tmp.path(), 1, "held", port, "");
    let mut served = Served::start(&config, None);
    served.wait_for_log("search finished; serving until stopped", DEADLINE);
    let run = tmp.path().join("runs-held").join("held");

    // A save caught half-way, the file emptied and not yet written: an empty file would be a
    // valid config (all defaults) of another search, yet it is refused.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, "").unwrap();
    served.wait_for_log("is empty (a save not yet written?)", DEADLINE);
    std::fs::write(&config, &text).unwrap();
    served.wait_for_log("reload (config file changed): nothing changed", DEADLINE);
    assert!(!served.log().contains("switching searches"), "{}", served.log());

    // Another process takes the search's lock (as a second `evnas search --resume` would);
    // without a fork, so that killing it frees the lock.
    let mut holder = Command::new("flock")
        .args([
            "-n",
            "--no-fork",
            run.join("evnas.lock").to_str().unwrap(),
            "-c",
            "echo held; exec sleep 600",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) runs");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    set_by_rename(&config, "generations", "2");
    served.wait_for_log("refused: continuing search held:", DEADLINE);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(served.log().contains("in use by another"), "{}", served.log());
    assert_eq!(sample(port, "evnas_search_state{state=\"finished\"}"), Some(1.0));

    for checkpoint in std::fs::read_dir(run.join("checkpoints")).unwrap() {
        for file in std::fs::read_dir(checkpoint.unwrap().path()).unwrap() {
            let file = file.unwrap().path();
            if file.file_name().unwrap() != "manifest.json" {
                std::fs::write(&file, b"not what the manifest hashed").unwrap();
            }
        }
    }
    served.signal(libc::SIGHUP);
    served.wait_for_log("cannot open search held:", DEADLINE);
    // Logged first, then counted and the state set: read once both are there.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sample(port, "evnas_search_state{state=\"stopped\"}") != Some(1.0)
        || sample(port, "evnas_actor_failures_total{actor=\"search opener\"}") != Some(1.0)
    {
        assert!(Instant::now() < deadline, "{}\n{}", metrics_text(port), served.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served.child.try_wait().unwrap().is_none(), "serve exited:\n{}", served.log());

    // It tries again by itself: once the cause is gone (here: the corrupt checkpoints removed,
    // so the search starts again from its saved config), the search opens and runs to its end.
    assert!(served.log().contains("trying again in 10 s"), "{}", served.log());
    std::fs::remove_dir_all(run.join("checkpoints")).unwrap();
    served.wait_for_log("trying again to open the search", DEADLINE);
    served.wait_for_log_n("search finished; serving until stopped", 2, DEADLINE);
    served.stop_cleanly();
}

/// `evnas search --metrics-listen` serves the same metrics while it runs in the foreground.
#[test]
fn search_serves_metrics_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let (config, _) = tiny_setup(tmp.path(), 2);
    let port = free_port();
    let mut search = common::search::search_command(&config, &tmp.path().join("run"), &[])
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    loop {
        if sample(port, "evnas_train_batches_total").is_some_and(|n| n > 0.0) {
            break;
        }
        assert!(search.try_wait().unwrap().is_none(), "the search ended before its metrics were seen");
        assert!(Instant::now() < deadline, "no training batches on /metrics");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(search.wait().unwrap().success());
}
