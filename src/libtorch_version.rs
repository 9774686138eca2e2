// Reads a libtorch install's version; dependency-free so that build.rs can `include!` it too.

/// The version of the libtorch whose lib directory is `lib_dir`: libtorch zips carry
/// `build-version`, PyTorch wheels carry `version.py`.
pub fn read_libtorch_version(lib_dir: &std::path::Path) -> Option<String> {
    let root = lib_dir.parent()?;
    if let Ok(text) = std::fs::read_to_string(root.join("build-version")) {
        return Some(text.trim().to_string());
    }
    let text = std::fs::read_to_string(root.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches('\'').trim_matches('"').to_string())
}
