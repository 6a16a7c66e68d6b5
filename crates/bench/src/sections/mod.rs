//! The measurement sections, one module each. A section measures, returns its figures and
//! its "how measured" text (a Markdown file of `crates/bench/how/`, included at compile time
//! and filled with the run's sizes and counts), and draws no conclusions: those live in
//! docs/FINDINGS.md.

pub(crate) mod access;
mod cold;
mod concurrency;
mod events;
mod option1;
mod package;
mod soak;
mod throughput;
mod ttfb;

use anyhow::Result;

use crate::context::Ctx;
use crate::report::Figures;

/// A section of the report, selectable with `--section`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Section {
    /// Cold start and first invocation of each function (harness).
    Cold,
    /// Time to first byte of the streaming options (harness and stack).
    Ttfb,
    /// Per-event latency of option 2's stream (harness and stack).
    Events,
    /// Option 2's throughput, memory and CPU against direct and a bare relay.
    Throughput,
    /// Option 1: a paced answer, and the memory of a large buffered answer.
    Option1,
    /// Release zips and binaries built by cargo lambda.
    Package,
    /// What the access record and EMF line cost each request, against the first byte.
    Access,
    /// Concurrent streams on options 2 and 3 with injected faults.
    Soak,
    /// Many paced streams in one option 2 process (AWS_LAMBDA_MAX_CONCURRENCY).
    Concurrency,
}

impl Section {
    /// Every section, in the order of the report (the first six keep the numbers they had
    /// before the access and soak sections were added, so reports stay comparable).
    pub(crate) fn in_report_order() -> &'static [Section] {
        &[
            Section::Cold,
            Section::Ttfb,
            Section::Events,
            Section::Throughput,
            Section::Option1,
            Section::Package,
            Section::Access,
            Section::Soak,
            Section::Concurrency,
        ]
    }

    /// The name on the command line (`--section cold`).
    pub(crate) fn key(self) -> &'static str {
        match self {
            Section::Cold => "cold",
            Section::Ttfb => "ttfb",
            Section::Events => "events",
            Section::Throughput => "throughput",
            Section::Option1 => "option1",
            Section::Package => "package",
            Section::Access => "access",
            Section::Soak => "soak",
            Section::Concurrency => "concurrency",
        }
    }

    /// The heading in the report.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Section::Cold => "1. Cold start and first invocation",
            Section::Ttfb => "2. Time to first byte",
            Section::Events => "3. Per-event latency of the streaming path",
            Section::Throughput => "4. Throughput, memory and CPU (option 2)",
            Section::Option1 => "5. Option 1 (buffered)",
            Section::Package => "6. Package size",
            Section::Access => "7. Access records and the first byte",
            Section::Soak => "8. Load with faults (concurrent streams)",
            Section::Concurrency => "9. Many streams in one process (option 2)",
        }
    }

    /// The "how measured" text, with `${name}` placeholders for the run's values.
    fn how_template(self) -> &'static str {
        match self {
            Section::Cold => include_str!("../../how/cold.md"),
            Section::Ttfb => include_str!("../../how/ttfb.md"),
            Section::Events => include_str!("../../how/events.md"),
            Section::Throughput => include_str!("../../how/throughput.md"),
            Section::Option1 => include_str!("../../how/option1.md"),
            Section::Package => include_str!("../../how/package.md"),
            Section::Access => include_str!("../../how/access.md"),
            Section::Soak => include_str!("../../how/soak.md"),
            Section::Concurrency => include_str!("../../how/concurrency.md"),
        }
    }

    /// Whether the section reaches the functions through the local stack (which is then
    /// started once for the whole run).
    pub(crate) fn needs_stack(self) -> bool {
        matches!(
            self,
            Section::Ttfb
                | Section::Events
                | Section::Throughput
                | Section::Option1
                | Section::Soak
        )
    }

    /// Fills this section's "how measured" text with `values`.
    pub(crate) fn how(self, values: &[(&str, String)]) -> Result<String> {
        crate::report::render(self.how_template(), values)
    }
}

/// What one section measured.
pub(crate) struct Measured {
    /// Its figures.
    pub(crate) figures: Figures,
    /// How they were measured (Markdown, one paragraph).
    pub(crate) how: String,
    /// Facts of the run that are not figures.
    pub(crate) notes: Vec<String>,
}

/// Runs one section.
pub(crate) async fn run(section: Section, ctx: &mut Ctx) -> Result<Measured> {
    match section {
        Section::Cold => cold::run(ctx).await,
        Section::Ttfb => ttfb::run(ctx).await,
        Section::Events => events::run(ctx).await,
        Section::Throughput => throughput::run(ctx).await,
        Section::Option1 => option1::run(ctx).await,
        Section::Package => package::run(ctx).await,
        Section::Access => access::run(ctx).await,
        Section::Soak => soak::run(ctx).await,
        Section::Concurrency => concurrency::run(ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn every_section_is_in_the_report_once_and_keys_match_the_command_line() {
        for s in Section::value_variants() {
            assert_eq!(
                Section::in_report_order()
                    .iter()
                    .filter(|x| *x == s)
                    .count(),
                1,
                "{s:?}"
            );
            let name = s.to_possible_value().map(|v| v.get_name().to_owned());
            assert_eq!(name.as_deref(), Some(s.key()));
            assert!(!s.how_template().trim().is_empty(), "{s:?}");
        }
    }
}
