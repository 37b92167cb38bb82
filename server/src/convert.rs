//! `tracking-server convert --to legacy`: modern events (JSON lines) in, exactly the
//! lines the tracking-log sink would write out; rejected events reported on stderr.

use std::io::{BufRead, Write};

use event_model::config::{Chain, RoutingConfig};
use event_model::routing::Counters;
use event_model::Event;

use crate::sinks::tracking_log::{render, Options};

/// What a conversion did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConvertReport {
    pub written: u64,
    pub rejected: u64,
}

/// The pipeline of the first `tracking_log` sink of the routing tree.
pub fn tracking_log_pipeline(routing: &RoutingConfig) -> anyhow::Result<(Chain, Options)> {
    let counters = Counters::new();
    let pipelines = routing.pipelines(&counters)?;
    let pipeline = pipelines
        .into_iter()
        .find(|p| p.spec.kind == "tracking_log")
        .ok_or_else(|| anyhow::anyhow!("the routing configuration has no tracking_log sink"))?;
    let (_, own) = crate::sinks::take_policy(pipeline.spec.kind, &pipeline.spec.path, pipeline.spec.options, u64::MAX)?;
    let options = Options::from_table(&own, std::path::Path::new(".")).map_err(anyhow::Error::msg)?;
    Ok((pipeline.chain, options))
}

/// Converts every line of `input`; blank lines are skipped.
pub fn convert(
    input: impl BufRead,
    mut output: impl Write,
    mut errors: impl Write,
    chain: &Chain,
    options: &Options,
) -> std::io::Result<ConvertReport> {
    let mut report = ConvertReport::default();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        // A line is an event, or a log record (a request's events, as the log and the
        // JetStream stream hold them).
        let events = if let Err(invalid) = event_model::rules::json::validate(&line, event_model::rules::json::Dialect::Python) {
            Err(format!("invalid_json: {}", invalid.code()))
        } else if line.contains("\"events\"") {
            crate::record::decode(line.as_bytes()).map_err(|e| format!("invalid_record: {e}"))
        } else {
            Event::parse(&line).map(|e| vec![e]).map_err(|e| format!("invalid_event: {e}"))
        };
        let events = match events {
            Ok(events) => events,
            Err(reason) => {
                writeln!(errors, "line {number}: rejected: {reason}")?;
                report.rejected += 1;
                continue;
            }
        };
        for event in events {
            match render(event, chain, options.max_line_chars) {
                Ok(text) => {
                    output.write_all(text.as_bytes())?;
                    output.write_all(b"\n")?;
                    report.written += 1;
                }
                Err(why) => {
                    writeln!(errors, "line {number}: rejected: {why}")?;
                    report.rejected += 1;
                }
            }
        }
    }
    output.flush()?;
    Ok(report)
}
