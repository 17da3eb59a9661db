//! Seed files (`seeds/*.toml`): the regression corpus. Each file names a scenario, a seed, the
//! commit where the seed found a bug and one line on the bug; `minikv-sim replay` re-runs it and
//! the test suite replays every file expecting a pass.
//!
//! Errors reuse [`ScenarioError`] (the crate's error for input files): they name the file, the
//! line and the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::scenario::{ScenarioError, line_of};

/// Longest `bug` line a seed file may carry; a longer one is a paragraph, not a line.
pub const BUG_LINE_MAX_CHARS: usize = 500;

/// One seed file, as written on disk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFileToml {
    scenario: Spanned<String>,
    seed: Spanned<u64>,
    commit: Spanned<String>,
    bug: Spanned<String>,
}

/// The same fields in the same order, for writing (spans are for reading only).
#[derive(Serialize)]
struct SeedFileOut<'a> {
    scenario: &'a str,
    seed: u64,
    commit: &'a str,
    bug: &'a str,
}

/// A regression seed: what to run and why it is in the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFile {
    /// A scenario name (`scenarios/NAME.toml`) or a path to a scenario file.
    pub scenario: String,
    pub seed: u64,
    /// The commit the seed found its bug at (`git rev-parse --short HEAD`, or "unknown").
    pub commit: String,
    /// One line on the bug.
    pub bug: String,
}

impl SeedFile {
    /// Reads and validates a seed file.
    pub fn load(path: &Path) -> Result<SeedFile, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        SeedFile::parse(&text, &path.display().to_string())
    }

    /// Parses and validates seed-file text; `path` only labels errors.
    pub fn parse(text: &str, path: &str) -> Result<SeedFile, ScenarioError> {
        let invalid = |at: usize, message: String| ScenarioError::Invalid {
            path: path.to_string(),
            line: line_of(text, at),
            message,
        };
        let raw: SeedFileToml = toml::from_str(text).map_err(|e| {
            invalid(e.span().map_or(0, |s| s.start), e.message().trim().to_string())
        })?;
        for (key, value) in [("scenario", &raw.scenario), ("commit", &raw.commit)] {
            let v = value.get_ref();
            if v.is_empty() || v.chars().any(char::is_whitespace) {
                let m = format!("{key} must be one word without spaces, got {v:?}");
                return Err(invalid(value.span().start, m));
            }
        }
        let bug = raw.bug.get_ref();
        if bug.trim().is_empty() || bug.contains('\n') || bug.chars().count() > BUG_LINE_MAX_CHARS {
            let m = format!("bug must be one non-empty line of at most {BUG_LINE_MAX_CHARS} chars");
            return Err(invalid(raw.bug.span().start, m));
        }
        Ok(SeedFile {
            scenario: raw.scenario.into_inner(),
            seed: raw.seed.into_inner(),
            commit: raw.commit.into_inner(),
            bug: raw.bug.into_inner(),
        })
    }

    /// The file's text; `parse(to_toml())` gives back `self`.
    pub fn to_toml(&self) -> String {
        let out = SeedFileOut {
            scenario: &self.scenario,
            seed: self.seed,
            commit: &self.commit,
            bug: &self.bug,
        };
        toml::to_string(&out).expect("a seed file always serializes")
    }

    /// The file name a sweep saves this seed under: `<scenario stem>-<seed>.toml`.
    pub fn file_name(&self) -> String {
        let stem = Path::new(&self.scenario)
            .file_stem()
            .map_or_else(|| self.scenario.clone(), |s| s.to_string_lossy().into_owned());
        format!("{stem}-{}.toml", self.seed)
    }
}

/// Squeezes a report message into a seed file's one `bug` line.
pub fn one_line(message: &str) -> String {
    let line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= BUG_LINE_MAX_CHARS {
        return line;
    }
    let mut cut: String = line.chars().take(BUG_LINE_MAX_CHARS - 3).collect();
    cut.push_str("...");
    cut
}

/// The corpus directory, `seeds/` at the repository root.
pub fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds")
}

/// The seed files in `dir` (`*.toml`), sorted by path.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let read = std::fs::read_dir(dir).map_err(|e| ScenarioError::Read {
        path: dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let mut paths: Vec<PathBuf> = read
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "scenario = \"partitions\"\nseed = 7\ncommit = \"303d239\"\nbug = \"stale read after a leader change\"\n";

    #[test]
    fn parses_and_round_trips() {
        let s = SeedFile::parse(GOOD, "seeds/x.toml").unwrap();
        assert_eq!(s.scenario, "partitions");
        assert_eq!(s.seed, 7);
        assert_eq!(s.commit, "303d239");
        assert_eq!(s.file_name(), "partitions-7.toml");
        let text = s.to_toml();
        assert_eq!(SeedFile::parse(&text, "y.toml").unwrap(), s);
        let odd = SeedFile { bug: "quote \" and \\ kept".into(), ..s };
        assert_eq!(SeedFile::parse(&odd.to_toml(), "z.toml").unwrap(), odd);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = format!("{GOOD}found_by = \"me\"\n");
        let err = SeedFile::parse(&text, "seeds/x.toml").unwrap_err().to_string();
        assert!(err.starts_with("seeds/x.toml:5: "), "{err}");
        assert!(err.contains("found_by"), "{err}");
    }

    #[test]
    fn missing_key_is_named() {
        let text = GOOD.replace("commit = \"303d239\"\n", "");
        let err = SeedFile::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:"), "{err}");
        assert!(err.contains("commit"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line_and_key() {
        let text = GOOD.replace("seed = 7", "seed = -1");
        let err = SeedFile::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:2: "), "{err}");
        let text = GOOD.replace("seed = 7", "seed = \"seven\"");
        let err = SeedFile::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:2: "), "{err}");
        let text = GOOD.replace("\"303d239\"", "\"\"");
        let err = SeedFile::parse(&text, "x.toml").unwrap_err().to_string();
        assert_eq!(err, "x.toml:3: commit must be one word without spaces, got \"\"");
        let text = GOOD.replace("\"stale read after a leader change\"", "\"two\\nlines\"");
        let err = SeedFile::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.starts_with("x.toml:4: bug must be one non-empty line"), "{err}");
    }

    #[test]
    fn one_line_squeezes_whitespace_and_length() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
        let long = "x".repeat(BUG_LINE_MAX_CHARS + 10);
        let cut = one_line(&long);
        assert_eq!(cut.chars().count(), BUG_LINE_MAX_CHARS);
        assert!(cut.ends_with("..."));
    }

    #[test]
    fn corpus_dir_exists_and_lists() {
        let files = list(&seeds_dir()).unwrap();
        assert!(files.iter().all(|p| p.extension().is_some_and(|x| x == "toml")), "{files:?}");
    }
}
