//! The README is where a user looks up an error code or a setting; the code is where they are
//! defined. These tests keep the two in agreement, both ways: every code the API can return is
//! in the README's error table with its status (and nothing else is), and every variable the
//! functions read is in its configuration table (and nothing else is).

use std::collections::BTreeSet;
use std::sync::Mutex;

use agentcore_core::error::catalogue;
use agentcore_core::Config;

const README: &str = include_str!("../../../README.md");

/// The rows of the first table after `heading` (a line of the README), split into cells.
fn table_after(heading: &str) -> Vec<Vec<String>> {
    let start = README
        .lines()
        .position(|l| l.trim() == heading)
        .unwrap_or_else(|| panic!("README has no {heading:?}"));
    README
        .lines()
        .skip(start + 1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(cells)
        .collect()
}

/// A table row's cells, trimmed.
fn cells(row: &str) -> Vec<String> {
    row.trim_matches('|')
        .split('|')
        .map(|c| c.trim().to_owned())
        .collect()
}

/// The `code` spans of a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_error_table_lists_every_code_with_its_status() {
    let documented: BTreeSet<(u16, String)> = error_rows()
        .into_iter()
        .flat_map(|row| {
            let status: u16 = row[0].parse().unwrap_or_default();
            code_spans(&row[1])
                .into_iter()
                .map(move |code| (status, code))
        })
        .collect();
    let defined: BTreeSet<(u16, String)> = catalogue()
        .into_iter()
        .map(|f| (f.status.as_u16(), f.code.to_owned()))
        .collect();
    assert!(!defined.is_empty());
    let missing: Vec<_> = defined.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&defined).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README error table: missing {missing:?}, not returned by the code {stale:?}"
    );
}

/// The rows of the error-section tables that list codes (the content-type table has none).
fn error_rows() -> Vec<Vec<String>> {
    let section = README
        .split("### Errors")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap_or_default();
    section
        .lines()
        .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
        .map(cells)
        .collect()
}

#[test]
fn the_readme_lists_each_code_once() {
    let mut seen = BTreeSet::new();
    for row in error_rows() {
        for code in code_spans(&row[1]) {
            assert!(seen.insert(code.clone()), "{code} is listed twice");
        }
    }
    assert!(seen.contains("invalid_json"), "{seen:?}");
}

/// Variables read outside `Config` (the logging set-up follows Lambda's own controls).
const READ_ELSEWHERE: [&str; 2] = ["AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL"];

#[test]
fn the_readme_configuration_table_lists_every_variable_the_functions_read() {
    let asked = Mutex::new(BTreeSet::new());
    // Values that take every branch that reads more variables: JWT callers read `JWT_*`.
    let config = Config::from_lookup(|name| {
        if let Ok(mut asked) = asked.lock() {
            asked.insert(name.to_owned());
        }
        match name {
            "AGENT_RUNTIME_ARN" => {
                Some("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-1".into())
            }
            "CALLER_IDENTITY" => Some("jwt".into()),
            "JWT_ISSUER" => Some("https://issuer.example.com".into()),
            "JWT_AUDIENCE" => Some("app".into()),
            _ => None,
        }
    });
    assert!(config.is_ok(), "{:?}", config.err());
    let mut read: BTreeSet<String> = asked.into_inner().unwrap_or_default();
    read.extend(READ_ELSEWHERE.iter().map(|s| (*s).to_owned()));
    let documented: BTreeSet<String> = table_after("## Configuration")
        .iter()
        .flat_map(|row| code_spans(&row[0]))
        .collect();
    let missing: Vec<_> = read.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&read).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README configuration table: missing {missing:?}, not read by the functions {stale:?}"
    );
}
