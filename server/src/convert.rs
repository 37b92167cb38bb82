//! `tracking-server convert --to legacy`: modern events (JSON lines) in, exactly the
//! lines the tracking-log sink would write out; rejected events reported on stderr.

use std::io::{BufRead, Write};

use event_model::config::{Chain, RoutingConfig};
use event_model::routing::Counters;
use event_model::{Event, Value};

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
    let options = Options::from_table(pipeline.spec.options, std::path::Path::new(".")).map_err(anyhow::Error::msg)?;
    Ok((pipeline.chain, options))
}

/// Converts every line of `input`; blank lines are skipped.
pub fn convert(input: impl BufRead, mut output: impl Write, mut errors: impl Write, chain: &Chain, options: &Options) -> std::io::Result<ConvertReport> {
    let mut report = ConvertReport::default();
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        let event = serde_json::from_str::<Value>(&line)
            .map_err(|e| format!("invalid_json: {e}"))
            .and_then(|v| Event::from_value(v).map_err(|e| format!("invalid_event: {e}")));
        let rendered = event.and_then(|e| render(e, chain, options.max_line_chars).map_err(|why| why.to_string()));
        match rendered {
            Ok(text) => {
                output.write_all(text.as_bytes())?;
                output.write_all(b"\n")?;
                report.written += 1;
            }
            Err(reason) => {
                writeln!(errors, "line {number}: rejected: {reason}")?;
                report.rejected += 1;
            }
        }
    }
    output.flush()?;
    Ok(report)
}
