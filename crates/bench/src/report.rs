//! Figures, their targets, and the Markdown report. The report holds only what the run
//! measured and how: conclusions drawn from it belong in docs/FINDINGS.md, which cites the
//! generated file and its commit.

use std::fmt::Write as _;

use crate::sections::Section;

/// What a figure is compared with.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// The median must be at most this.
    AtMost(f64),
    /// The median must be at least this.
    AtLeast(f64),
    /// Shown for context, no target.
    None,
}

/// One measured figure: its samples (one per repetition).
#[derive(Clone, Debug)]
pub(crate) struct Figure {
    /// The section it belongs to.
    pub(crate) section: Section,
    /// What it is.
    pub(crate) name: String,
    /// Unit of the samples.
    pub(crate) unit: &'static str,
    /// One value per repetition.
    pub(crate) samples: Vec<f64>,
    /// Its target.
    pub(crate) target: Target,
}

impl Figure {
    /// The median of the samples (NaN when there are none).
    pub(crate) fn median(&self) -> f64 {
        median(&self.samples)
    }

    fn min(&self) -> f64 {
        self.samples.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn max(&self) -> f64 {
        self.samples
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }

    /// `Some(true)` when the median meets the target, `None` when there is none.
    pub(crate) fn met(&self) -> Option<bool> {
        let m = self.median();
        match self.target {
            Target::AtMost(t) => Some(m <= t),
            Target::AtLeast(t) => Some(m >= t),
            Target::None => None,
        }
    }

    /// A count (no unit, whole samples) as a whole number; anything else with [`num`].
    fn num(&self, x: f64) -> String {
        let whole = |v: f64| v.fract() == 0.0 && v.abs() < 1e15;
        if self.unit.is_empty() && self.samples.iter().all(|v| whole(*v)) && whole(x) {
            format!("{x:.0}")
        } else {
            num(x)
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::AtMost(t) => format!("≤ {} {}", self.num(t), self.unit),
            Target::AtLeast(t) => format!("≥ {} {}", self.num(t), self.unit),
            Target::None => "—".to_owned(),
        }
    }

    fn status(&self) -> &'static str {
        match self.met() {
            Some(true) => "✓",
            Some(false) => "✗",
            None => "",
        }
    }
}

/// The figures one section measured, in the order it added them.
pub(crate) struct Figures {
    section: Section,
    list: Vec<Figure>,
}

impl Figures {
    /// No figures yet, for `section`.
    pub(crate) fn new(section: Section) -> Self {
        Self {
            section,
            list: Vec::new(),
        }
    }

    /// Adds a figure (one sample per repetition) and prints it on stderr as it is measured,
    /// so that a long run shows its progress.
    pub(crate) fn add(
        &mut self,
        name: impl Into<String>,
        unit: &'static str,
        samples: Vec<f64>,
        target: Target,
    ) {
        let f = Figure {
            section: self.section,
            name: name.into(),
            unit,
            samples,
            target,
        };
        eprintln!(
            "bench:   {} = {} {} (n={}){}",
            f.name,
            f.num(f.median()),
            f.unit,
            f.samples.len(),
            match f.met() {
                Some(true) => " ✓",
                Some(false) => " ✗",
                None => "",
            }
        );
        self.list.push(f);
    }

    /// The figures.
    pub(crate) fn into_vec(self) -> Vec<Figure> {
        self.list
    }
}

/// One value per repetition, taken from a list of per-repetition records.
pub(crate) fn col<T>(reps: &[T], value: impl Fn(&T) -> f64) -> Vec<f64> {
    reps.iter().map(value).collect()
}

/// Fills the `${name}` placeholders of a "how measured" text (a Markdown file of
/// `crates/bench/how/`). `${...}` rather than `{...}`: the texts quote JSON. A placeholder
/// left without a value is an error, so that a renamed value cannot leave `${reps}` in the
/// report.
pub(crate) fn render(template: &str, values: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("${{{name}}}"), value);
    }
    if let Some(at) = out.find("${") {
        let rest: String = out[at..].chars().take(40).collect();
        anyhow::bail!("a \"how measured\" text has a placeholder without a value: {rest}");
    }
    // The files are wrapped at 100 columns for reading; the report wants one paragraph.
    Ok(out.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// The median of `v` (mean of the two middle values for an even count).
pub(crate) fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Nearest-rank percentile `p` (0..=100) of `v`.
pub(crate) fn percentile(v: &[i64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1] as f64
}

/// A number with as many decimals as its size deserves.
pub(crate) fn num(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// The figures of one section as a Markdown table.
pub(crate) fn table(figures: &[Figure], section: Section) -> String {
    let mut out = String::new();
    out.push_str("| Figure | Median | Min | Max | n | Target | |\n");
    out.push_str("|---|---:|---:|---:|---:|---|:-:|\n");
    for f in figures.iter().filter(|f| f.section == section) {
        let _ = writeln!(
            out,
            "| {} | {} {} | {} | {} | {} | {} | {} |",
            f.name,
            f.num(f.median()),
            f.unit,
            f.num(f.min()),
            f.num(f.max()),
            f.samples.len(),
            f.target_text(),
            f.status()
        );
    }
    out
}

/// Everything the report needs besides the figures.
pub(crate) struct Meta {
    /// `key: value` lines about the machine, versions, commit, command, date.
    pub(crate) environment: Vec<(String, String)>,
    /// Per section: how it was measured (Markdown).
    pub(crate) how: Vec<(Section, String)>,
    /// Facts of the run that are not figures (retried requests, sizes near a limit).
    pub(crate) notes: Vec<String>,
}

/// The whole report.
pub(crate) fn markdown(figures: &[Figure], meta: &Meta, sections: &[Section]) -> String {
    let mut out = String::new();
    out.push_str("# Benchmarks\n\n");
    out.push_str(
        "Written by the benchmark driver (`crates/bench`); regenerate with `make bench`, \
         never edit by hand. Every figure is the median of its repetitions (n), with min \
         and max; the target column is checked against the median. What the figures mean \
         is in [docs/FINDINGS.md](docs/FINDINGS.md), which names the run it read.\n\n",
    );
    out.push_str("## Environment\n\n");
    for (k, v) in &meta.environment {
        let _ = writeln!(out, "- **{k}**: {v}");
    }
    out.push('\n');
    let met: Vec<&Figure> = figures.iter().filter(|f| f.met().is_some()).collect();
    let passed = met.iter().filter(|f| f.met() == Some(true)).count();
    let _ = writeln!(
        out,
        "## Summary\n\n{passed} of {} targets met.\n",
        met.len()
    );
    for f in met.iter().filter(|f| f.met() == Some(false)) {
        let _ = writeln!(
            out,
            "- ✗ {}: {} {} (target {})",
            f.name,
            f.num(f.median()),
            f.unit,
            f.target_text()
        );
    }
    out.push('\n');
    for &section in Section::in_report_order() {
        if !sections.contains(&section) {
            continue;
        }
        let _ = writeln!(out, "## {}\n", section.title());
        out.push_str(&table(figures, section));
        out.push('\n');
        if let Some((_, how)) = meta.how.iter().find(|(s, _)| *s == section) {
            let _ = writeln!(out, "**How measured.** {}\n", how.trim_end());
        }
    }
    if !meta.notes.is_empty() {
        out.push_str("## Notes\n\n");
        for n in &meta.notes {
            let _ = writeln!(out, "- {n}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let v: Vec<i64> = (1..=1000).collect();
        assert_eq!(percentile(&v, 50.0), 500.0);
        assert_eq!(percentile(&v, 99.0), 990.0);
        assert_eq!(percentile(&[7], 99.0), 7.0);
    }

    #[test]
    fn render_fills_placeholders_and_refuses_missing_ones() {
        let text = render("n = ${n},\n`{\"a\": 1}`", &[("n", "5".into())]).expect("renders");
        assert_eq!(text, "n = 5, `{\"a\": 1}`");
        assert!(render("${missing}", &[]).is_err());
    }
}
