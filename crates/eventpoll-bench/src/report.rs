//! Presenting a pipetest [`Report`]: the table (comfy-table), the engine-vs-kernel ratios, the
//! SVG plot of cost per wait against N on log axes (plotters), and the JSON document with
//! every number and the machine's description (serde_json).

use crate::experiment::{fmt_count, fmt_ns, Cell, Method, Outcome, Report};
use comfy_table::{presets::UTF8_FULL_CONDENSED, CellAlignment, Table};
use serde_json::{json, Value};
use std::path::Path;

/// The pairs compared in the ratio table: (engine method, kernel method).
pub const PAIRS: [(Method, Method); 4] = [
    (Method::EngineLt, Method::EpollLt),
    (Method::EngineEt, Method::EpollEt),
    (Method::EngineHost, Method::EpollLt),
    (Method::EngineHostUring, Method::EpollLt),
];

/// The pipetest target: engine tokens/s at 10,000 pipes ÷ the kernel epoll's.
pub const TARGET_TOKENS_RATIO: f64 = 10.0;

/// The host-pipes target (issue 5): eventpoll over real pipes within 1.25× of the kernel's
/// epoll, i.e. its tokens/s at least 1/1.25 of the kernel's, at every N.
pub const TARGET_HOST_SLOWDOWN: f64 = 1.25;

/// Remarks printed under the table, numbered; the table shows `word [i]`.
#[derive(Debug, Default)]
pub struct Footnotes(pub Vec<String>);

impl Footnotes {
    /// Add `text` (once) and return `word` followed by its number, e.g. `skipped [2]`.
    pub fn mark(&mut self, word: &str, text: &str) -> String {
        let i = match self.0.iter().position(|t| t == text) {
            Some(i) => i,
            None => {
                self.0.push(text.to_string());
                self.0.len() - 1
            }
        };
        format!("{word} [{}]", i + 1)
    }

    fn outcome(&mut self, o: &Outcome) -> String {
        match o {
            Outcome::Ran(_) => String::new(),
            Outcome::Skipped(why) => self.mark("skipped", why),
            Outcome::Unavailable(why) => self.mark("unavailable", why),
            Outcome::NotImplemented(why) => self.mark("not yet implemented", why),
            Outcome::Failed(why) => self.mark("FAILED", why),
        }
    }
}

impl std::fmt::Display for Footnotes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, t) in self.0.iter().enumerate() {
            writeln!(f, "[{}] {t}", i + 1)?;
        }
        Ok(())
    }
}

/// The results table: one row per (method, N), grouped by method; a method whose cells all
/// share one non-run outcome gets a single "all" row. Long remarks go to `notes`.
pub fn table(report: &Report, notes: &mut Footnotes) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "method",
        "N",
        "tokens/s",
        "cost per wait",
        "per round",
        "ready/wait",
        "note",
    ]);
    let dash = || "-".to_string();
    for method in Method::ALL {
        let cells: Vec<&Cell> = report.cells.iter().filter(|c| c.method == method).collect();
        let Some(first) = cells.first() else { continue };
        if first.outcome.stats().is_none() && cells.iter().all(|c| c.outcome == first.outcome) {
            let note = notes.outcome(&first.outcome);
            t.add_row(vec![
                method.label().to_string(),
                "all".into(),
                dash(),
                dash(),
                dash(),
                dash(),
                note,
            ]);
            continue;
        }
        for c in cells {
            let row = match c.outcome.stats() {
                Some(s) => vec![
                    method.label().to_string(),
                    fmt_count(c.n as f64),
                    fmt_count(s.tokens_per_sec()),
                    fmt_ns(s.wait_ns()),
                    fmt_ns(s.round_ns()),
                    format!("{:.2}", s.ready_per_wait()),
                    c.note
                        .as_deref()
                        .map(|n| notes.mark("N capped", n))
                        .unwrap_or_default(),
                ],
                None => vec![
                    method.label().to_string(),
                    fmt_count(c.requested as f64),
                    dash(),
                    dash(),
                    dash(),
                    dash(),
                    notes.outcome(&c.outcome),
                ],
            };
            t.add_row(row);
        }
    }
    for i in 1..=5 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// One engine-vs-kernel comparison at a requested N.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    /// The requested N.
    pub requested: usize,
    /// N of the engine cell.
    pub engine_n: usize,
    /// N of the kernel cell (smaller when the descriptor limit capped it).
    pub kernel_n: usize,
    /// The engine method.
    pub engine: Method,
    /// The kernel method.
    pub kernel: Method,
    /// Engine tokens/s ÷ kernel tokens/s (above 1: the engine is faster).
    pub tokens_per_sec: f64,
    /// Kernel cost per wait ÷ engine cost per wait (above 1: the engine is cheaper).
    pub wait_cost: f64,
}

/// Every ratio the run can give: each pair at each N where both cells ran.
pub fn ratios(report: &Report) -> Vec<Ratio> {
    let mut out = Vec::new();
    for &requested in &report.config.sizes {
        for (engine, kernel) in PAIRS {
            let (Some(e), Some(k)) = (
                report.cell(engine, requested),
                report.cell(kernel, requested),
            ) else {
                continue;
            };
            if let (Some(es), Some(ks)) = (e.outcome.stats(), k.outcome.stats()) {
                out.push(Ratio {
                    requested,
                    engine_n: e.n,
                    kernel_n: k.n,
                    engine,
                    kernel,
                    tokens_per_sec: es.tokens_per_sec() / ks.tokens_per_sec().max(1e-12),
                    wait_cost: ks.wait_ns() / es.wait_ns().max(1e-12),
                });
            }
        }
    }
    out
}

/// The ratio table, or `None` when no engine cell could be compared.
pub fn ratio_table(report: &Report) -> Option<Table> {
    let rs = ratios(report);
    if rs.is_empty() {
        return None;
    }
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "N (engine / kernel)",
        "eventpoll vs",
        "tokens/s ratio",
        "wait cost ratio",
        "target",
    ]);
    for r in rs {
        let n = if r.engine_n == r.kernel_n {
            fmt_count(r.engine_n as f64)
        } else {
            format!(
                "{} / {}",
                fmt_count(r.engine_n as f64),
                fmt_count(r.kernel_n as f64)
            )
        };
        let host = matches!(r.engine, Method::EngineHost | Method::EngineHostUring);
        let target = if host {
            let met = if r.tokens_per_sec * TARGET_HOST_SLOWDOWN >= 1.0 {
                "met"
            } else {
                "NOT met"
            };
            format!("within {TARGET_HOST_SLOWDOWN}x: {met}")
        } else if r.requested == 10_000 {
            let met = if r.tokens_per_sec >= TARGET_TOKENS_RATIO {
                "met"
            } else {
                "NOT met"
            };
            format!("tokens/s >= {TARGET_TOKENS_RATIO}x: {met}")
        } else {
            String::new()
        };
        let versus = if r.engine == Method::EngineHostUring {
            format!("{} (host pipes, io_uring driver)", r.kernel.label())
        } else if r.engine == Method::EngineHost {
            format!("{} (host pipes, epoll driver)", r.kernel.label())
        } else {
            r.kernel.label().to_string()
        };
        t.add_row(vec![
            n,
            versus,
            format!("{:.2}x", r.tokens_per_sec),
            format!("{:.2}x", r.wait_cost),
            target,
        ]);
    }
    for i in 2..=3 {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    Some(t)
}

/// The whole text report (header, results, ratios, notes).
pub fn text(report: &Report) -> String {
    let c = &report.config;
    let mut notes = Footnotes::default();
    let t = table(report, &mut notes);
    let mut s = format!(
        "eventpoll bench: pipetest, K={} tokens in flight, seed {:#x}\n{}\n\n{t}\n{notes}",
        c.tokens,
        c.seed,
        report.machine.summary(),
    );
    match ratio_table(report) {
        Some(t) => {
            s += &format!(
            "\neventpoll vs the kernel's epoll (same run; above 1x: eventpoll is better)\n{t}\n"
        )
        }
        None => {
            s +=
                "\nNo eventpoll-vs-kernel ratios: no engine cell ran next to a kernel epoll cell.\n"
        }
    }
    let each = if report.config.passes > 1 {
        format!(
            "Each cell: {} passes over all cells (methods interleaved, a fresh rig each time), each the median of {} consecutive stretches; the median pass is shown (by tokens/s; the spread of all stretches is in the JSON).",
            report.config.passes,
            crate::experiment::CHUNKS
        )
    } else {
        format!(
            "Each cell: the median of {} consecutive stretches (by tokens/s; the spread is in the JSON).",
            crate::experiment::CHUNKS
        )
    };
    s += &format!(
        "\n{each}\n\
         cost per wait: time to learn which pipes are ready (for select and poll: copying the set in, the call, scanning the answer).\n\
         Kernel methods use 2 descriptors per pipe: with a limit of {} they run up to N={}; select up to N={} (FD_SETSIZE {}).\n\
         {} cells in {:.1} s.\n",
        fmt_count(report.machine.fd_limit.0 as f64),
        fmt_count(report.kernel_max_n as f64),
        fmt_count(report.select_max_n as f64),
        crate::sys::FD_SETSIZE,
        report.cells.iter().filter(|c| c.outcome.stats().is_some()).count(),
        report.elapsed.as_secs_f64()
    );
    s
}

/// The JSON document: the machine, the settings, every cell with every number, the ratios.
pub fn json(report: &Report) -> Value {
    let cells: Vec<Value> = report
        .cells
        .iter()
        .map(|c| {
            let mut v = json!({
                "method": c.method.key(),
                "label": c.method.label(),
                "requested_n": c.requested,
                "n": c.n,
                "status": c.outcome.status(),
                "note": c.note,
                "setup_s": c.setup.as_secs_f64(),
            });
            match &c.outcome {
                Outcome::Ran(s) => {
                    v["waits"] = json!(s.waits);
                    v["tokens"] = json!(s.tokens);
                    v["ready"] = json!(s.ready);
                    v["elapsed_s"] = json!(s.elapsed.as_secs_f64());
                    v["wait_time_s"] = json!(s.wait_time.as_secs_f64());
                    v["tokens_per_sec"] = json!(s.tokens_per_sec());
                    v["wait_ns"] = json!(s.wait_ns());
                    v["round_ns"] = json!(s.round_ns());
                    v["ready_per_wait"] = json!(s.ready_per_wait());
                    v["stretches"] = json!(crate::experiment::CHUNKS);
                    v["tokens_per_sec_min"] = json!(s.spread.0);
                    v["tokens_per_sec_max"] = json!(s.spread.1);
                }
                Outcome::Skipped(why)
                | Outcome::Unavailable(why)
                | Outcome::NotImplemented(why)
                | Outcome::Failed(why) => v["reason"] = json!(why),
            }
            v
        })
        .collect();
    let ratios: Vec<Value> = ratios(report)
        .iter()
        .map(|r| {
            json!({
                "requested_n": r.requested,
                "engine": r.engine.key(),
                "engine_n": r.engine_n,
                "kernel": r.kernel.key(),
                "kernel_n": r.kernel_n,
                "tokens_per_sec_ratio": r.tokens_per_sec,
                "wait_cost_ratio": r.wait_cost,
            })
        })
        .collect();
    json!({
        "benchmark": "pipetest",
        "tool": format!("eventpoll bench {}", env!("CARGO_PKG_VERSION")),
        "machine": report.machine.to_json(),
        "config": {
            "sizes": report.config.sizes,
            "tokens": report.config.tokens,
            "seed": report.config.seed,
            "budget_s": report.config.budget.as_secs_f64(),
            "passes": report.config.passes,
        },
        "kernel_max_n": report.kernel_max_n,
        "select_max_n": report.select_max_n,
        "elapsed_s": report.elapsed.as_secs_f64(),
        "cells": cells,
        "ratios": ratios,
    })
}

/// Draw cost per wait against N (log-log), one line per method that ran, into an SVG file.
pub fn svg(report: &Report, path: &Path) -> Result<(), String> {
    use plotters::prelude::*;
    let series: Vec<(Method, Vec<(f64, f64)>)> = Method::ALL
        .iter()
        .map(|&m| {
            let pts = report
                .cells
                .iter()
                .filter(|c| c.method == m)
                .filter_map(|c| {
                    c.outcome
                        .stats()
                        .map(|s| (c.n as f64, s.wait_ns().max(1.0)))
                })
                .collect::<Vec<_>>();
            (m, pts)
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    let all = series.iter().flat_map(|(_, p)| p.iter());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, 1.0f64, f64::MAX, 1.0f64);
    for &(x, y) in all {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    if series.is_empty() {
        (xmin, xmax, ymin, ymax) = (10.0, 100_000.0, 100.0, 1e6);
    }
    let x_range = (xmin / 2.0).max(1.0)..xmax * 2.0;
    let y_range = (ymin / 2.0).max(1.0)..ymax * 2.0;
    let colors = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
    ];
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "pipetest: cost per wait vs pipes watched (K={}, Linux {})",
        report.config.tokens, report.machine.kernel
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(x_range.log_scale(), y_range.log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("N (pipes watched)")
        .y_desc("cost per wait")
        .x_label_formatter(&|x| fmt_count(*x))
        .y_label_formatter(&|y| fmt_ns(*y))
        .draw()
        .map_err(|e| err(&e))?;
    for (m, pts) in &series {
        let color = colors[Method::ALL.iter().position(|x| x == m).unwrap_or(0) % colors.len()];
        let style = ShapeStyle::from(&color).stroke_width(2);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), style))
            .map_err(|e| err(&e))?
            .label(m.label())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{run, Config, Silent};
    use std::time::Duration;

    fn tiny() -> Report {
        run(
            &Config {
                sizes: vec![10, 100],
                tokens: 4,
                seed: 3,
                budget: Duration::from_millis(300),
                methods: Method::ALL.to_vec(),
                passes: 2,
            },
            &mut Silent,
        )
    }

    #[test]
    fn json_output_parses_and_has_every_cell() {
        let r = tiny();
        let text = serde_json::to_string_pretty(&json(&r)).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["benchmark"], "pipetest");
        assert!(back["machine"]["kernel"]
            .as_str()
            .is_some_and(|k| !k.is_empty()));
        assert!(back["machine"]["cpu_model"].is_string());
        assert!(back["machine"]["cores"].as_u64().unwrap() >= 1);
        let cells = back["cells"].as_array().unwrap();
        assert_eq!(cells.len(), r.cells.len());
        let poll10 = cells
            .iter()
            .find(|c| c["method"] == "poll" && c["n"] == 10)
            .unwrap();
        assert_eq!(poll10["status"], "ok");
        assert!(poll10["tokens_per_sec"].as_f64().unwrap() > 0.0);
        assert!(poll10["wait_ns"].as_f64().unwrap() > 0.0);
        let (lo, mid, hi) = (
            poll10["tokens_per_sec_min"].as_f64().unwrap(),
            poll10["tokens_per_sec"].as_f64().unwrap(),
            poll10["tokens_per_sec_max"].as_f64().unwrap(),
        );
        assert!(lo <= mid && mid <= hi, "{lo} {mid} {hi}");
        let host = cells
            .iter()
            .find(|c| c["method"] == "eventpoll-host-pipes")
            .unwrap();
        assert_eq!(host["status"], "ok");
        assert!(host["tokens_per_sec"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn table_and_svg_render() {
        let r = tiny();
        let t = text(&r);
        assert!(
            t.contains("kernel epoll LT") && t.contains("eventpoll LT (host pipes)"),
            "{t}"
        );
        let dir = std::env::temp_dir().join(format!("eventpoll-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plot.svg");
        svg(&r, &path).unwrap();
        let body = std::fs::read_to_string(&path).unwrap();
        assert!(body.starts_with("<svg") && body.contains("kernel epoll LT"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
