//! Section 6, package size: the release zips cargo lambda builds, and the binaries they pack.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use super::{Measured, Section};
use crate::clients::Function;
use crate::context::Ctx;
use crate::machine::command_output;
use crate::report::{Figures, Target};

/// Measures the section.
pub(super) async fn run(ctx: &mut Ctx) -> Result<Measured> {
    let cl = local_stack::stack::find_cargo_lambda()
        .context("cargo-lambda was not found on PATH or in .venv/bin: run `make setup`")?;
    // cargo-lambda runs its helpers (cargo-zigbuild, ...) from PATH: .venv/bin first, as
    // the Makefile has it.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths: Vec<PathBuf> = vec![ctx.root.join(".venv/bin")];
    paths.extend(std::env::split_paths(&path));
    let joined = std::env::join_paths(paths).context("building PATH")?;
    let mut cmd = tokio::process::Command::new(&cl);
    cmd.current_dir(&ctx.root).env("PATH", joined).args([
        "lambda",
        "build",
        "--release",
        "--compiler",
        "cargo",
        "--x86-64",
        "--output-format",
        "zip",
    ]);
    for f in Function::ALL {
        cmd.arg("--bin").arg(f.name());
    }
    eprintln!("bench: cargo lambda build --release --compiler cargo --x86-64 --output-format zip (may compile) ...");
    let status = cmd
        .status()
        .await
        .with_context(|| format!("running {}", cl.display()))?;
    if !status.success() {
        bail!("cargo lambda build failed ({status})");
    }
    let mut figs = Figures::new(Section::Package);
    let mut notes = Vec::new();
    let mut stripped = Vec::new();
    for f in Function::ALL {
        let zip = ctx
            .root
            .join("target/lambda")
            .join(f.name())
            .join("bootstrap.zip");
        let zlen = std::fs::metadata(&zip)
            .with_context(|| format!("stat {}", zip.display()))?
            .len();
        if zlen > 5_000_000 && zlen <= 5 * 1_048_576 {
            notes.push(format!(
                "{} bootstrap.zip is {zlen} bytes: over 5 MB (10^6, the unit used here) but under 5 MiB.",
                f.name()
            ));
        }
        figs.add(
            format!("{} bootstrap.zip", f.label()),
            "MB",
            vec![zlen as f64 / 1e6],
            Target::AtMost(5.0),
        );
        let built = ctx
            .root
            .join("target/x86_64-unknown-linux-gnu/release")
            .join(f.name());
        let bin = if built.is_file() {
            built
        } else {
            ctx.binary(f)
        };
        let blen = std::fs::metadata(&bin)
            .with_context(|| format!("stat {}", bin.display()))?
            .len();
        let kind = command_output(
            Path::new("file"),
            &["-b", &bin.to_string_lossy()],
            &ctx.root,
        );
        stripped.push(format!(
            "{}: {}",
            f.name(),
            if kind.contains("not stripped") {
                "NOT stripped"
            } else if kind.contains("stripped") {
                "stripped"
            } else {
                "unknown (no `file`)"
            }
        ));
        figs.add(
            format!("{} binary (bootstrap, stripped)", f.label()),
            "MB",
            vec![blen as f64 / 1e6],
            Target::None,
        );
    }
    Ok(Measured {
        figures: figs,
        how: Section::Package.how(&[("stripped", stripped.join(", "))])?,
        notes,
    })
}
