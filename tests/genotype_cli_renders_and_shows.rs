//! `evnas genotype render|show` run as a user would: the built binary on a built-in genotype.

use std::process::Command;

use evnas::space::Genotype;

fn evnas(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_evnas")).args(args).output().expect("evnas binary runs")
}

#[test]
fn render_writes_dot_and_svg_for_both_cells_of_evnas_a() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("evnas-a");
    let out = evnas(&["genotype", "render", "EvNAS-A", "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    for file in ["normal.dot", "normal.svg", "reduction.dot", "reduction.svg"] {
        assert!(stdout.contains(file), "{stdout}");
    }
    let normal_dot = std::fs::read_to_string(out_dir.join("normal.dot")).unwrap();
    // EvNAS-A's normal node 3 reads node 1 through dil_conv_5x5.
    assert!(normal_dot.contains("\"1\" -> \"3\" [label=\"dil_conv_5x5\""), "{normal_dot}");
    let reduction_svg = std::fs::read_to_string(out_dir.join("reduction.svg")).unwrap();
    assert!(reduction_svg.starts_with("<svg") && reduction_svg.trim_end().ends_with("</svg>"));
    assert!(reduction_svg.contains(">dil_conv_5x5</text>"));
}

#[test]
fn show_prints_darts_notation_and_json_that_load_back() {
    let out = evnas(&["genotype", "show", "darts-v2"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(Genotype::parse_darts(&text).unwrap(), Genotype::builtin("DARTS_V2").unwrap());

    let out = evnas(&["genotype", "show", "EvNAS-B", "--json"]);
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    std::fs::write(&path, &out.stdout).unwrap();
    let out = evnas(&["genotype", "show", path.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        Genotype::builtin("EvNAS-B").unwrap().to_string()
    );
}

#[test]
fn show_of_a_bad_file_fails_naming_file_and_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.txt");
    std::fs::write(&path, "Genotype(normal=[('sep_conv_4x4', 0)])").unwrap();
    let out = evnas(&["genotype", "show", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("typo.txt") && stderr.contains("`sep_conv_4x4`"), "{stderr}");
}

/// Its reader gone (`evnas genotype show EvNAS-A | head -1`), it ends by SIGPIPE as any Unix
/// tool does, without a panic.
#[test]
fn a_reader_that_goes_away_ends_it_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_evnas"))
        .args(["genotype", "show", "EvNAS-A"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before it prints (libtorch alone takes longer to load).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
