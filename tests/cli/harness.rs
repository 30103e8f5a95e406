//! The `Test` builder: a scratch directory to run the binary in, files to put there, the
//! arguments and environment, and the captured result.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_qualys-connector");

/// Environment variables that would change a run; removed so tests are hermetic.
pub const SCRUBBED_ENV: [&str; 4] = [
    "QUALYS_PASSWORD",
    "QUALYS_PROXY_PASSWORD",
    "PKCS12_PASSWORD",
    "POSIXLY_CORRECT",
];

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Outcome {
    fn from(out: std::process::Output) -> Outcome {
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Outcome {
    /// Everything the run printed, both streams.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_output_contains(&self, needle: &str) -> &Self {
        assert!(
            self.output().contains(needle),
            "output lacks {needle:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Test {
    pub fn new() -> Test {
        Test {
            dir: tempfile::tempdir().expect("scratch directory"),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `InputPlugins/QualysGuard.yaml`, the default configuration path.
    pub fn config(self, yaml: &str) -> Test {
        self.file("InputPlugins/QualysGuard.yaml", yaml.as_bytes())
    }

    pub fn file(self, name: &str, contents: impl AsRef<[u8]>) -> Test {
        let path = self.path(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create directory");
        }
        let mut f = std::fs::File::create(&path).expect("create file");
        f.write_all(contents.as_ref()).expect("write file");
        self
    }

    pub fn args<S: AsRef<str>>(mut self, args: &[S]) -> Test {
        self.args
            .extend(args.iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The binary's command line in the scratch directory, with the scrubbed environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(self.dir.path()).args(&self.args);
        for key in SCRUBBED_ENV {
            cmd.env_remove(key);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self) -> Outcome {
        Outcome::from(self.command().output().expect("run the binary"))
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    /// Names of all files in the scratch directory (not recursive).
    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("list scratch directory")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

/// A file of the shared real-world fixtures (`../shared/fixtures`), or `None` with a
/// visible skip line when the folder is absent.
pub fn shared_fixture(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/qualys")
        .join(name);
    if path.exists() {
        Some(path)
    } else {
        // Written straight to the process's stderr, past the test harness's capture, so
        // the skip is seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIP: shared fixture {} is absent; test skipped",
            path.display()
        );
        None
    }
}

/// The project's own example report.
pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// Lines of `text` that start with `prefix`.
pub fn count_lines(text: &str, prefix: &str) -> usize {
    text.lines().filter(|l| l.starts_with(prefix)).count()
}
