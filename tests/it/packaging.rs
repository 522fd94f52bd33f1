//! The Debian package: the metadata names files that exist and every piece the
//! service needs (binary, unit, sysusers and tmpfiles entries, example
//! configuration); the maintainer scripts parse and never remove data; and, where
//! `cargo deb` is installed (`.ci/run` installs it), a package built from the test
//! binary holds exactly those files with the right modes and scripts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UNIT: &str = "./lib/systemd/system/ihms-connect.service";
const SYSUSERS: &str = "./usr/lib/sysusers.d/ihms-connect.conf";
const TMPFILES: &str = "./usr/lib/tmpfiles.d/ihms-connect.conf";
const CONFIG: &str = "./etc/ihms-connect/config.toml";
const BINARY: &str = "./usr/bin/ihms-connect";
const SCRIPTS: [&str; 3] = ["postinst", "prerm", "postrm"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn deb_metadata() -> toml::Table {
    let text = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let manifest: toml::Table = text.parse().expect("toml");
    manifest["package"]["metadata"]["deb"]
        .as_table()
        .expect("[package.metadata.deb]")
        .clone()
}

/// A script's lines that are not comments.
fn code(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect()
}

/// Checks one maintainer script: it parses, stops on errors, and removes nothing.
fn check_script(name: &str, path: &Path) {
    let text = std::fs::read_to_string(path).expect("script");
    assert!(text.starts_with("#!/bin/sh\n"), "{name} runs under /bin/sh");
    assert!(
        text.contains("\nset -e\n"),
        "{name} stops at the first error"
    );
    ok(Command::new("sh").arg("-n").arg(path).output().expect("sh"));
    for word in ["rm ", "rmdir", "userdel", "deluser", "/var/lib"] {
        assert!(
            !code(&text).iter().any(|l| l.contains(word)),
            "{name} must not remove data or the service user ({word})"
        );
    }
}

#[test]
fn the_package_metadata_names_existing_files_and_everything_the_service_needs() {
    let deb = deb_metadata();
    let assets = deb["assets"].as_array().expect("assets");
    let mut targets = Vec::new();
    for asset in assets {
        let asset = asset.as_array().expect("asset");
        let (source, target) = (
            asset[0].as_str().expect("source"),
            asset[1].as_str().expect("target"),
        );
        // The binary is built by `cargo deb`; every other source is in the tree.
        if source != "target/release/ihms-connect" {
            assert!(root().join(source).is_file(), "{source} exists");
        }
        let target = if target.ends_with('/') {
            let file = Path::new(source).file_name().expect("name");
            format!("./{target}{}", file.to_string_lossy())
        } else {
            format!("./{target}")
        };
        targets.push(target);
    }
    for needed in [BINARY, UNIT, SYSUSERS, TMPFILES, CONFIG] {
        assert!(targets.iter().any(|t| t == needed), "{needed} is packaged");
    }
    assert_eq!(
        deb["conf-files"].as_array().expect("conf-files")[0].as_str(),
        Some("/etc/ihms-connect/config.toml"),
        "the configuration survives upgrades as a conffile"
    );
    let scripts = root().join(deb["maintainer-scripts"].as_str().expect("scripts dir"));
    for name in SCRIPTS {
        check_script(name, &scripts.join(name));
    }
    let postinst = std::fs::read_to_string(scripts.join("postinst")).expect("postinst");
    let postinst = code(&postinst).join("\n");
    assert!(postinst.contains("systemd-sysusers ihms-connect.conf"));
    assert!(postinst.contains("systemd-tmpfiles --create ihms-connect.conf"));
    assert!(
        !postinst.contains("enable") && !postinst.contains(" start "),
        "a first install waits for the master key before the service runs"
    );
}

#[test]
fn cargo_deb_packages_the_binary_unit_sysusers_tmpfiles_and_config_with_its_scripts() {
    let cargo = env!("CARGO");
    let probe = Command::new(cargo).args(["deb", "--version"]).output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!(
            "cargo-deb is not installed (`cargo install cargo-deb --locked`); skipping the package build"
        );
        return;
    }
    // Package the binary this test run built, placed where `cargo deb --no-build`
    // looks for a release build, in a target directory of its own.
    let tmp = tempfile::tempdir().expect("tmp");
    let target = tmp.path().join("target");
    std::fs::create_dir_all(target.join("release")).expect("release dir");
    let bin = target.join("release/ihms-connect");
    if std::fs::hard_link(env!("CARGO_BIN_EXE_ihms-connect"), &bin).is_err() {
        std::fs::copy(env!("CARGO_BIN_EXE_ihms-connect"), &bin).expect("copy binary");
    }
    let deb = tmp.path().join("ihms-connect.deb");
    ok(Command::new(cargo)
        .args(["deb", "--no-build", "--fast", "--quiet", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .arg("--output")
        .arg(&deb)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo deb"));

    let listing = ok(Command::new("dpkg-deb")
        .arg("-c")
        .arg(&deb)
        .output()
        .expect("dpkg-deb"));
    let mode_of = |path: &str| {
        listing
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
    };
    for (path, mode) in [
        (BINARY, "-rwxr-xr-x"),
        (UNIT, "-rw-r--r--"),
        (SYSUSERS, "-rw-r--r--"),
        (TMPFILES, "-rw-r--r--"),
        (CONFIG, "-rw-r-----"),
    ] {
        assert_eq!(mode_of(path).as_deref(), Some(mode), "{path} in {listing}");
    }

    let control = tmp.path().join("control");
    ok(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&deb)
        .arg(&control)
        .output()
        .expect("dpkg-deb -e"));
    let fields = std::fs::read_to_string(control.join("control")).expect("control");
    assert!(fields.contains("Package: ihms-connect\n"), "{fields}");
    let depends = fields
        .lines()
        .find(|l| l.starts_with("Depends:"))
        .unwrap_or_default();
    assert!(depends.contains("systemd"), "{fields}");
    let conffiles = std::fs::read_to_string(control.join("conffiles")).expect("conffiles");
    assert_eq!(conffiles.trim(), "/etc/ihms-connect/config.toml");
    for name in SCRIPTS {
        let path = control.join(name);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("script").permissions(),
        );
        assert_eq!(mode & 0o111, 0o111, "{name} is executable");
        check_script(name, &path);
    }

    // The packaged binary runs.
    let unpacked = tmp.path().join("unpacked");
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpacked)
        .output()
        .expect("dpkg-deb -x"));
    let version = ok(Command::new(unpacked.join("usr/bin/ihms-connect"))
        .arg("--version")
        .output()
        .expect("run"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
}
