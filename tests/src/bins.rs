//! Locating binaries: the external servers (`nats-server`, `initdb`,
//! `postgres`) on PATH or under `/usr/lib/postgresql/*/bin`, and the
//! project's own binaries in the cargo target dir of the running test.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{HarnessError, Result};

/// Env var naming the `nats-server` binary to use instead of searching.
pub const NATS_SERVER_ENV: &str = "LULL_TEST_NATS_SERVER";
/// Env var naming a directory holding `initdb` and `postgres` to use instead of searching.
pub const PG_BIN_DIR_ENV: &str = "LULL_TEST_PG_BIN_DIR";
/// Env var naming a directory holding the built Lull binaries, instead of the
/// profile dir derived from the running test executable.
pub const LULL_BIN_DIR_ENV: &str = "LULL_TEST_BIN_DIR";
/// Where Debian/Ubuntu install the Postgres server binaries, one dir per major version.
pub const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";

/// Where to look for external binaries. [`SearchPath::from_env`] is what the
/// harness uses; tests build their own to check lookup failures.
#[derive(Debug, Clone, Default)]
pub struct SearchPath {
    /// The directories of `$PATH`, in order.
    pub path: Vec<PathBuf>,
    /// The directory holding `<version>/bin` Postgres installs (`/usr/lib/postgresql`).
    pub pg_root: PathBuf,
    /// Explicit `nats-server` binary (from [`NATS_SERVER_ENV`]).
    pub nats_override: Option<PathBuf>,
    /// Explicit Postgres bin dir (from [`PG_BIN_DIR_ENV`]).
    pub pg_override: Option<PathBuf>,
}

impl SearchPath {
    /// `$PATH`, [`DEBIAN_PG_ROOT`] and the override env vars of this process.
    pub fn from_env() -> Self {
        let nonempty = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        SearchPath {
            path: std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
            pg_root: PathBuf::from(DEBIAN_PG_ROOT),
            nats_override: nonempty(NATS_SERVER_ENV),
            pg_override: nonempty(PG_BIN_DIR_ENV),
        }
    }
}

/// The server binaries' directory for Postgres: `initdb` and `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    /// Path of `initdb`.
    pub initdb: PathBuf,
    /// Path of `postgres`.
    pub postgres: PathBuf,
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn join_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) -> String {
    let v: Vec<String> = dirs.into_iter().map(|d| d.display().to_string()).collect();
    if v.is_empty() {
        "(nothing)".into()
    } else {
        v.join(", ")
    }
}

/// Finds `nats-server`: the override, else the first on PATH.
pub fn nats_server(sp: &SearchPath) -> Result<PathBuf> {
    if let Some(p) = &sp.nats_override {
        return if is_executable(p) {
            Ok(p.clone())
        } else {
            Err(HarnessError::MissingBinary {
                name: "nats-server".into(),
                looked_in: format!("{} (from {NATS_SERVER_ENV})", p.display()),
            })
        };
    }
    sp.path
        .iter()
        .map(|d| d.join("nats-server"))
        .find(|p| is_executable(p))
        .ok_or_else(|| HarnessError::MissingBinary {
            name: "nats-server".into(),
            looked_in: format!("PATH: {}", join_dirs(sp.path.iter().map(PathBuf::as_path))),
        })
}

/// The `<root>/<version>/bin` dirs, highest major version first.
fn versioned_pg_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u64>> = name.split('.').map(|p| p.parse().ok()).collect();
            version.map(|v| (v, e.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, p)| p).collect()
}

/// Finds a directory holding both `initdb` and `postgres`: the override, else
/// the first such dir on PATH, else the highest version under `pg_root`.
pub fn postgres(sp: &SearchPath) -> Result<PgBinaries> {
    let in_dir = |d: &Path| {
        let (initdb, postgres) = (d.join("initdb"), d.join("postgres"));
        (is_executable(&initdb) && is_executable(&postgres))
            .then_some(PgBinaries { initdb, postgres })
    };
    if let Some(d) = &sp.pg_override {
        return in_dir(d).ok_or_else(|| HarnessError::MissingBinary {
            name: "initdb/postgres".into(),
            looked_in: format!("{} (from {PG_BIN_DIR_ENV})", d.display()),
        });
    }
    let versioned = versioned_pg_dirs(&sp.pg_root);
    let candidates: Vec<&Path> = sp
        .path
        .iter()
        .map(PathBuf::as_path)
        .chain(versioned.iter().map(PathBuf::as_path))
        .collect();
    candidates
        .iter()
        .find_map(|d| in_dir(d))
        .ok_or_else(|| HarnessError::MissingBinary {
            name: "initdb/postgres".into(),
            looked_in: format!(
                "PATH: {}; {}/*/bin",
                join_dirs(sp.path.iter().map(PathBuf::as_path)),
                sp.pg_root.display()
            ),
        })
}

/// The directories where cargo put the binaries built alongside the running
/// test executable: `<target>/<profile>/deps/<test>` → `<target>/<profile>`
/// (also right for `<target>/<triple>/<profile>` and any `CARGO_TARGET_DIR`).
/// [`LULL_BIN_DIR_ENV`] takes precedence when set.
pub fn lull_bin_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os(LULL_BIN_DIR_ENV).filter(|v| !v.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            if dir.file_name().is_some_and(|n| n == "deps") {
                if let Some(profile) = dir.parent() {
                    dirs.push(profile.to_path_buf());
                }
            }
            dirs.push(dir.to_path_buf());
        }
    }
    dirs
}

/// Finds one of the project's binaries (`lull-coordinator`, `lull-agent`,
/// `lullctl`) among `dirs` (normally [`lull_bin_dirs`]).
pub fn lull_binary_in(name: &str, dirs: &[PathBuf]) -> Result<PathBuf> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| HarnessError::NotBuilt {
            name: name.into(),
            looked_in: join_dirs(dirs.iter().map(PathBuf::as_path)),
        })
}

/// Finds one of the project's binaries next to the running test executable.
pub fn lull_binary(name: &str) -> Result<PathBuf> {
    lull_binary_in(name, &lull_bin_dirs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exe(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn picks_highest_postgres_version() {
        let root = tempfile::tempdir().unwrap();
        for v in ["9.6", "13", "16", "notaversion"] {
            exe(&root.path().join(v).join("bin/initdb"));
            exe(&root.path().join(v).join("bin/postgres"));
        }
        // 17 is incomplete: no postgres binary.
        exe(&root.path().join("17/bin/initdb"));
        let sp = SearchPath {
            pg_root: root.path().into(),
            ..Default::default()
        };
        let found = postgres(&sp).unwrap();
        assert_eq!(found.initdb, root.path().join("16/bin/initdb"));
        assert_eq!(found.postgres, root.path().join("16/bin/postgres"));
    }

    #[test]
    fn path_wins_over_versioned_dirs() {
        let root = tempfile::tempdir().unwrap();
        let onpath = root.path().join("onpath");
        exe(&onpath.join("initdb"));
        exe(&onpath.join("postgres"));
        exe(&onpath.join("nats-server"));
        exe(&root.path().join("pg/15/bin/initdb"));
        exe(&root.path().join("pg/15/bin/postgres"));
        let sp = SearchPath {
            path: vec![root.path().join("empty"), onpath.clone()],
            pg_root: root.path().join("pg"),
            ..Default::default()
        };
        assert_eq!(postgres(&sp).unwrap().initdb, onpath.join("initdb"));
        assert_eq!(nats_server(&sp).unwrap(), onpath.join("nats-server"));
    }

    #[test]
    fn non_executable_files_do_not_count() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("nats-server"), "").unwrap();
        let sp = SearchPath {
            path: vec![root.path().into()],
            ..Default::default()
        };
        assert!(nats_server(&sp).is_err());
    }

    #[test]
    fn lull_binary_not_built_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let err = lull_binary_in("lull-agent", &[dir.path().into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lull-agent"), "{err}");
        assert!(err.contains("cargo build --workspace"), "{err}");
        exe(&dir.path().join("lull-agent"));
        assert_eq!(
            lull_binary_in("lull-agent", &[dir.path().into()]).unwrap(),
            dir.path().join("lull-agent")
        );
    }
}
