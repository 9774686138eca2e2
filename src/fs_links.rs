//! Following symbolic links by hand, where the kernel's own following is not enough: to know
//! every link on the way to a file (a config watch must watch each), or where a link leads
//! when the file it names does not exist yet (an output written through it).

use std::path::{Component, Path, PathBuf};

/// Links followed at most (the kernel's own limit), so that a loop of links ends.
pub const MAX_LINKS: usize = 40;

/// The directory holding `path`: its parent, "." for a bare name, "/" for the root.
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => PathBuf::from("/"),
    }
}

/// The paths whose change changes what `file` (absolute) names: every symbolic link met on the
/// way to it, in order, then the path it ends at (which need not exist). Each is written
/// without `.` and `..` (resolved by name: the components before them are no links, those were
/// followed), so that a directory has one spelling, the one its watch reports events under.
pub fn resolution_chain(file: &Path) -> Vec<PathBuf> {
    let mut chain = Vec::new();
    let mut pending = file.to_path_buf();
    for _ in 0..MAX_LINKS {
        let mut prefix = PathBuf::new();
        let components: Vec<Component> = pending.components().collect();
        let mut link = None;
        for (i, component) in components.iter().enumerate() {
            match component {
                Component::CurDir => continue,
                Component::ParentDir => {
                    prefix.pop();
                    continue;
                }
                _ => prefix.push(component),
            }
            if !matches!(component, Component::Normal(_)) {
                continue;
            }
            let is_link = prefix.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink());
            if let Some(target) = is_link.then(|| std::fs::read_link(&prefix).ok()).flatten() {
                link = Some((i, target));
                break;
            }
        }
        let Some((i, target)) = link else {
            pending = prefix;
            break;
        };
        chain.push(prefix.clone());
        // A relative target is relative to the link's directory; an absolute one replaces it.
        let mut next = parent_dir(&prefix).join(target);
        next.extend(&components[i + 1..]);
        pending = next;
    }
    chain.push(pending);
    chain
}
