//! A self-contained HTML timeline of one non-linearizable key, in the spirit of Porcupine's
//! visualization: one row per process, one bar per operation, the longest linearizable prefix
//! numbered in linearization order, the operation that cannot be placed in red.
//!
//! Everything is inline (CSS, JavaScript, data); the page loads no external asset.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::history::{History, Outcome};
use crate::lin::{KeyFailure, describe};

/// Pixels per distinct timestamp; times are rank-compressed so short intervals stay visible.
const PX_PER_TICK: usize = 14;
const ROW_HEIGHT_PX: usize = 34;
const LEFT_MARGIN_PX: usize = 90;

#[derive(Serialize)]
struct Bar {
    id: usize,
    row: usize,
    x: usize,
    width: usize,
    label: String,
    detail: String,
    /// "failed-op", "concurrent", "linearized", "other"
    class: &'static str,
    /// Position in the linearizable prefix (1-based), if linearized.
    order: Option<usize>,
}

/// Renders the timeline page for `failure` (from `lin::check_with`).
pub fn render(history: &History, failure: &KeyFailure, explanation: &str) -> String {
    let ops = &history.ops;
    let open_end = i64::MAX;
    // Rank-compress every time that appears on the key.
    let mut times: Vec<i64> = Vec::new();
    for &i in &failure.key_ops {
        times.push(ops[i].invoke_ns);
        times.push(ops[i].complete_ns.unwrap_or(open_end));
    }
    times.sort_unstable();
    times.dedup();
    let tick = |t: i64| times.binary_search(&t).expect("every time was collected");
    let rows: BTreeMap<u64, usize> = {
        let mut procs: Vec<u64> = failure.key_ops.iter().map(|&i| ops[i].process).collect();
        procs.sort_unstable();
        procs.dedup();
        procs.into_iter().enumerate().map(|(r, p)| (p, r)).collect()
    };
    let order: BTreeMap<usize, usize> =
        failure.prefix.iter().enumerate().map(|(n, &i)| (i, n + 1)).collect();
    let bars: Vec<Bar> = failure
        .key_ops
        .iter()
        .map(|&i| {
            let op = &ops[i];
            let start = tick(op.invoke_ns);
            let end = tick(op.complete_ns.unwrap_or(open_end));
            let class = if i == failure.op {
                "failed-op"
            } else if order.contains_key(&i) {
                "linearized"
            } else if failure.concurrent.contains(&i) {
                "concurrent"
            } else {
                "other"
            };
            let label = match (&op.result, op.outcome) {
                (Some(r), Outcome::Ok) if op.f == crate::history::OpFn::Read => format!("read {r}"),
                _ => format!("{} {}", crate::parse::fn_name(op.f), op.value),
            };
            Bar {
                id: op.id,
                row: rows[&op.process],
                x: LEFT_MARGIN_PX + start * PX_PER_TICK,
                width: ((end - start) * PX_PER_TICK).max(PX_PER_TICK / 2),
                label,
                detail: describe(op),
                class,
                order: order.get(&i).copied(),
            }
        })
        .collect();
    let data = serde_json::to_string(&bars).expect("bars serialize").replace("</", "<\\/");
    let width = LEFT_MARGIN_PX + times.len() * PX_PER_TICK + 40;
    let height = rows.len() * ROW_HEIGHT_PX + 20;
    let key = failure.key.as_deref().unwrap_or("(single register)");
    let mut labels = String::new();
    for (process, row) in &rows {
        let _ = write!(
            labels,
            "<div class=\"proc\" style=\"top:{}px\">process {process}</div>",
            row * ROW_HEIGHT_PX + 8
        );
    }
    format!(
        r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>minikv-check: key {key_html} is not linearizable</title>
<style>
body {{ font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #222; }}
#legend span {{ display: inline-block; padding: 2px 8px; margin-right: 8px; border-radius: 3px; }}
#wrap {{ overflow-x: auto; border: 1px solid #ccc; }}
#timeline {{ position: relative; }}
.proc {{ position: absolute; left: 4px; font-weight: bold; }}
.bar {{ position: absolute; height: 22px; border-radius: 3px; font-size: 11px; overflow: hidden;
  white-space: nowrap; padding: 0 3px; box-sizing: border-box; cursor: pointer; border: 1px solid #0003; }}
.linearized {{ background: #9be39b; }} .failed-op {{ background: #f28b82; font-weight: bold; }}
.concurrent {{ background: #fbd38d; }} .other {{ background: #ddd; }}
.dim {{ opacity: 0.25; }}
#detail {{ margin-top: 10px; min-height: 2.8em; font-family: monospace; white-space: pre-wrap; }}
#explanation {{ background: #fff4f2; border-left: 4px solid #f28b82; padding: 8px; white-space: pre-wrap; }}
</style></head><body>
<h2>Key {key_html}: not linearizable</h2>
<div id="explanation">{explanation_html}</div>
<p id="legend"><span class="linearized">linearized (number = order)</span><span class="failed-op">cannot be linearized</span><span class="concurrent">concurrent with it</span><span class="other">not reached</span></p>
<p>Linearizable prefix step: <input id="step" type="range" min="0" max="{prefix_len}" value="{prefix_len}"> <span id="stepn">{prefix_len}</span> / {prefix_len}</p>
<div id="wrap"><div id="timeline" style="width:{width}px;height:{height}px">{labels}</div></div>
<div id="detail">Hover over an operation for details.</div>
<script>
const bars = {data};
const tl = document.getElementById('timeline');
const detail = document.getElementById('detail');
const els = bars.map(b => {{
  const d = document.createElement('div');
  d.className = 'bar ' + b.class;
  d.style.left = b.x + 'px'; d.style.width = b.width + 'px';
  d.style.top = (b.row * {row_h} + 6) + 'px';
  d.textContent = (b.order ? '#' + b.order + ' ' : '') + b.label;
  d.title = b.detail;
  d.onmouseenter = () => {{ detail.textContent = b.detail + (b.order ? '\nlinearized at position ' + b.order : ''); }};
  tl.appendChild(d);
  return d;
}});
const step = document.getElementById('step');
step.oninput = () => {{
  const n = +step.value;
  document.getElementById('stepn').textContent = n;
  bars.forEach((b, i) => {{
    const hide = b.class === 'linearized' && b.order > n;
    els[i].classList.toggle('dim', hide);
  }});
}};
</script></body></html>
"#,
        key_html = escape(key),
        explanation_html = escape(explanation),
        prefix_len = failure.prefix.len(),
        row_h = ROW_HEIGHT_PX,
    )
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
