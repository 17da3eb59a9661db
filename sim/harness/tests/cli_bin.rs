//! The built `minikv-sim` binary: in the plain build it only says how to build it; in the
//! madsim build, help and bad input (which never reach a simulation) exit as documented.

use std::process::{Command, Output};

fn minikv_sim(args: &[&str]) -> (Option<i32>, String, String) {
    let Output { status, stdout, stderr } =
        Command::new(env!("CARGO_BIN_EXE_minikv-sim")).args(args).output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (status.code(), text(stdout), text(stderr))
}

#[cfg(not(madsim))]
#[test]
fn the_plain_binary_says_how_to_build_it() {
    let (code, out, err) = minikv_sim(&["run", "--scenario", "basic", "--seed", "1"]);
    assert_eq!(code, Some(2));
    assert!(out.is_empty(), "{out}");
    assert_eq!(err, "minikv-sim must be built with --cfg madsim; use cargo xtask sim\n");
}

#[cfg(madsim)]
#[test]
fn help_and_bad_input_exit_as_documented() {
    let dir = std::env::temp_dir().join(format!("minikv-sim-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (code, out, _) = minikv_sim(&["run", "--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("--check-determinism"), "{out}");

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "description = \"d\"\n[[phase]]\nname = \"p\"\nduration_ms = 0\n")
        .unwrap();
    let (code, _, err) = minikv_sim(&["run", "--scenario", bad.to_str().unwrap(), "--seed", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("{}:4: ", bad.display())), "{err}");

    let seed_file = dir.join("s.toml");
    std::fs::write(
        &seed_file,
        "scenario = \"basic\"\nseed = 1\ncommit = \"x\"\nbug = \"y\"\nz = 1\n",
    )
    .unwrap();
    let (code, _, err) = minikv_sim(&["replay", seed_file.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&format!("{}:5: ", seed_file.display())) && err.contains("`z`"), "{err}");

    let (code, _, err) = minikv_sim(&["sweep", "--scenario", "basic", "--seeds", "4..2"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--seeds") && err.contains("empty"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
