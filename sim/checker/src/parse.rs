//! Parses a JSON-lines history and pairs each invoke with its completion.
//!
//! Three readers, fastest first: a hand-rolled scanner for the common register-event shape
//! (scalar or `[scalar, scalar]` values, no escapes), then serde into a borrowed struct, then a
//! generic JSON value so the error can name the exact field that is wrong. A line the faster
//! reader does not take falls through to the next, so all three agree on every line.
//!
//! Large texts are read in chunks on several threads, each pairing its own invokes and
//! completions; the chunks are then stitched in order. Any error anywhere makes the whole text
//! be read again sequentially, so errors always name the first bad line.

use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use crate::history::{EventType, History, Op, OpFn, Outcome};

mod scan;
use scan::scan_event;

/// Bad input: every variant names the file (when known) and, for content errors, the 1-based
/// line and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("{file}: cannot read: {message}")]
    Io { file: String, message: String },
    #[error("{}line {line}: malformed JSON: {message}", file_prefix(.file))]
    Json { file: Option<String>, line: usize, message: String },
    #[error("{}line {line}: field `{field}`: {message}", file_prefix(.file))]
    Field { file: Option<String>, line: usize, field: &'static str, message: String },
}

fn file_prefix(file: &Option<String>) -> String {
    match file {
        Some(f) => format!("{f}: "),
        None => String::new(),
    }
}

impl ParseError {
    /// The 1-based line at fault, if the error is about content.
    pub fn line(&self) -> Option<usize> {
        match self {
            ParseError::Io { .. } => None,
            ParseError::Json { line, .. } | ParseError::Field { line, .. } => Some(*line),
        }
    }

    /// The field at fault, if the error is about one field.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ParseError::Field { field, .. } => Some(field),
            _ => None,
        }
    }

    fn with_file(self, name: &str) -> ParseError {
        let file = Some(name.to_string());
        match self {
            ParseError::Json { line, message, .. } => ParseError::Json { file, line, message },
            ParseError::Field { line, field, message, .. } => {
                ParseError::Field { file, line, field, message }
            }
            io @ ParseError::Io { .. } => io,
        }
    }
}

/// Reads and parses a history file; errors carry the file's name.
pub fn parse_file(path: impl AsRef<Path>) -> Result<History, ParseError> {
    parse_file_with(path, 1)
}

/// `parse_file` reading large files on up to `threads` threads (the command line's choice).
pub fn parse_file_with(path: impl AsRef<Path>, threads: usize) -> Result<History, ParseError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ParseError::Io { file: name.clone(), message: e.to_string() })?;
    parse_history_with(&text, threads).map_err(|e| e.with_file(&name))
}

/// Parses a history from JSON lines. Blank lines are skipped; unknown fields are ignored.
/// Runs on the caller's thread only: the library spawns no threads unless asked to through
/// `parse_history_with` (the command line and the benchmark do).
pub fn parse_history(text: &str) -> Result<History, ParseError> {
    parse_history_with(text, 1)
}

/// Texts shorter than this per thread are read on one thread.
const MIN_CHUNK_BYTES: usize = 4 << 20;
/// Estimated bytes of text per operation (an invoke line and a completion line), used to size
/// the operation vectors up front.
const BYTES_PER_OP_ESTIMATE: usize = 150;

/// `parse_history` on at most `threads` threads (1: the caller's thread only). The result, and
/// any error, is the same whatever the thread count.
pub fn parse_history_with(text: &str, threads: usize) -> Result<History, ParseError> {
    let chunks = threads.clamp(1, (text.len() / MIN_CHUNK_BYTES).max(1));
    if chunks > 1
        && let Some(history) = parse_chunked(text, chunks)
    {
        return Ok(history);
    }
    parse_sequential(text)
}

/// One thread, line by line; the reference behaviour, and the one that reports errors.
fn parse_sequential(text: &str) -> Result<History, ParseError> {
    let mut ops: Vec<Op> = Vec::with_capacity(text.len() / BYTES_PER_OP_ESTIMATE);
    // process -> index in `ops` of its outstanding invoke.
    let mut outstanding: FxHashMap<u64, usize> = FxHashMap::default();
    for (index, raw_line) in text.split('\n').enumerate() {
        let line = index + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let event = parse_event(trimmed, line)?;
        let field_err = |(field, message): (&'static str, String)| ParseError::Field {
            file: None,
            line,
            field,
            message,
        };
        if event.kind == EventType::Invoke {
            if let Some(&open) = outstanding.get(&event.process) {
                return Err(field_err(reinvoke_error(&ops[open])));
            }
            if let Some(e) = invoke_error(&event) {
                return Err(field_err(e));
            }
            let id = ops.len();
            outstanding.insert(event.process, id);
            ops.push(new_op(id, event, line));
            continue;
        }
        let Some(open) = outstanding.remove(&event.process) else {
            return Err(field_err(orphan_error(&event)));
        };
        let op = &mut ops[open];
        if let Some(e) = completion_error(op, &event) {
            return Err(field_err(e));
        }
        complete(op, event, line);
    }
    Ok(History { ops })
}

/// An invoke by a process whose operation `open` is still outstanding.
fn reinvoke_error(open: &Op) -> (&'static str, String) {
    let message = format!(
        "process {} invokes again while its {} from line {} is outstanding",
        open.process,
        fn_name(open.f),
        open.invoke_line
    );
    ("type", message)
}

/// A completion whose process has no outstanding invoke.
fn orphan_error(event: &Event<'_>) -> (&'static str, String) {
    let message = format!(
        "{} completion of process {} has no outstanding invoke",
        type_name(event.kind),
        event.process
    );
    ("type", message)
}

/// What is wrong with an invoke's value, if anything.
fn invoke_error(event: &Event<'_>) -> Option<(&'static str, String)> {
    if event.f == OpFn::Cas && !matches!(&event.value, Value::Array(a) if a.len() == 2) {
        return Some(("value", format!("cas expects [old, new], got {}", event.value)));
    }
    if event.f == OpFn::Txn && !event.value.is_array() {
        return Some(("value", format!("txn expects a list of micro-ops, got {}", event.value)));
    }
    None
}

/// What is wrong with `event` as the completion of `op`, if anything.
fn completion_error(op: &Op, event: &Event<'_>) -> Option<(&'static str, String)> {
    if op.f != event.f {
        let message = format!(
            "completion says {} but the invoke at line {} says {}",
            fn_name(event.f),
            op.invoke_line,
            fn_name(op.f)
        );
        return Some(("f", message));
    }
    if let Some(key) = &event.key
        && op.key.as_deref() != Some(key.as_ref())
    {
        let message = format!(
            "completion names key {key:?} but the invoke at line {} names {:?}",
            op.invoke_line, op.key
        );
        return Some(("key", message));
    }
    if event.time < op.invoke_ns {
        let message = format!(
            "completion at {} ns precedes its invoke at {} ns (line {})",
            event.time, op.invoke_ns, op.invoke_line
        );
        return Some(("time", message));
    }
    None
}

/// The operation an invoke on `line` opens.
fn new_op(id: usize, event: Event<'_>, line: usize) -> Op {
    Op {
        id,
        process: event.process,
        f: event.f,
        key: event.key.map(Cow::into_owned),
        value: event.value,
        result: None,
        outcome: Outcome::Indeterminate,
        invoke_ns: event.time,
        complete_ns: None,
        invoke_line: line,
        complete_line: None,
    }
}

/// Records a (validated) completion on `line`.
fn complete(op: &mut Op, event: Event<'_>, line: usize) {
    op.result = Some(event.value);
    op.complete_line = Some(line);
    match event.kind {
        EventType::Ok => {
            op.outcome = Outcome::Ok;
            op.complete_ns = Some(event.time);
        }
        EventType::Fail => {
            op.outcome = Outcome::Fail;
            op.complete_ns = Some(event.time);
        }
        // An `info` operation may still take effect at any later time: it stays open.
        EventType::Info => op.outcome = Outcome::Indeterminate,
        EventType::Invoke => unreachable!("invokes are not completions"),
    }
}

/// What one thread makes of a run of whole lines: its operations (ids and lines relative to the
/// chunk), the completions of operations invoked before it, and what it leaves open.
struct Chunk<'a> {
    /// Lines in the chunk (the next chunk's first line is this many further).
    lines: usize,
    ops: Vec<Op>,
    /// Completions whose invoke precedes the chunk, with their chunk-relative lines, in order.
    heads: Vec<(Event<'a>, usize)>,
    /// Processes whose first event in the chunk is an invoke: none may be open before it.
    invoke_first: Vec<u64>,
    /// Processes with an operation (index into `ops`) still open at the chunk's end.
    open: Vec<(u64, usize)>,
}

/// What a process did last inside a chunk.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Not seen in the chunk.
    Unseen,
    Open(usize),
    Closed,
}

/// Process ids below this are kept in a vector; larger ones in a hash map.
const DENSE_PROCESS_LIMIT: u64 = 1 << 16;

/// `Last` per process: a vector for the usual small ids, a map for the rest.
#[derive(Default)]
struct LastByProcess {
    dense: Vec<Last>,
    sparse: FxHashMap<u64, Last>,
}

impl LastByProcess {
    fn get(&self, process: u64) -> Last {
        if process < DENSE_PROCESS_LIMIT {
            self.dense.get(process as usize).copied().unwrap_or(Last::Unseen)
        } else {
            self.sparse.get(&process).copied().unwrap_or(Last::Unseen)
        }
    }

    fn set(&mut self, process: u64, last: Last) {
        if process < DENSE_PROCESS_LIMIT {
            let i = process as usize;
            if i >= self.dense.len() {
                self.dense.resize(i + 1, Last::Unseen);
            }
            self.dense[i] = last;
        } else {
            self.sparse.insert(process, last);
        }
    }

    /// Processes with an open operation, and its index.
    fn open(self) -> Vec<(u64, usize)> {
        let dense = self.dense.into_iter().enumerate().map(|(p, l)| (p as u64, l));
        dense
            .chain(self.sparse)
            .filter_map(|(p, l)| match l {
                Last::Open(i) => Some((p, i)),
                Last::Unseen | Last::Closed => None,
            })
            .collect()
    }
}

/// Reads `text` (whole lines) on its own; `None` on any error, which the sequential reader
/// will then name.
fn parse_chunk(text: &str, ops_estimate: usize) -> Option<Chunk<'_>> {
    let mut chunk = Chunk {
        lines: 0,
        ops: Vec::with_capacity(ops_estimate),
        heads: Vec::new(),
        invoke_first: Vec::new(),
        open: Vec::new(),
    };
    let mut last = LastByProcess::default();
    for (index, raw_line) in text.split('\n').enumerate() {
        chunk.lines = index + 1;
        let line = index + 1;
        let trimmed = raw_line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let event = parse_event(trimmed, line).ok()?;
        let before = last.get(event.process);
        if event.kind == EventType::Invoke {
            match before {
                Last::Open(_) => return None,
                Last::Closed => {}
                Last::Unseen => chunk.invoke_first.push(event.process),
            }
            invoke_error(&event).is_none().then_some(())?;
            let id = chunk.ops.len();
            last.set(event.process, Last::Open(id));
            chunk.ops.push(new_op(id, event, line));
            continue;
        }
        last.set(event.process, Last::Closed);
        match before {
            Last::Open(i) => {
                let op = &mut chunk.ops[i];
                completion_error(op, &event).is_none().then_some(())?;
                complete(op, event, line);
            }
            Last::Closed => return None,
            Last::Unseen => chunk.heads.push((event, line)),
        }
    }
    chunk.open = last.open();
    Some(chunk)
}

/// Reads `text` in `chunks` pieces on as many threads and stitches them; `None` if any piece or
/// seam is bad.
fn parse_chunked(text: &str, chunks: usize) -> Option<History> {
    let ops_estimate = text.len() / BYTES_PER_OP_ESTIMATE / chunks;
    let mut pieces: Vec<&str> = Vec::with_capacity(chunks);
    let mut rest = text;
    for i in (1..chunks).rev() {
        // Cut after the first newline past an even share of what is left.
        let share = rest.len() / (i + 1);
        let Some(nl) = rest.as_bytes()[share..].iter().position(|&b| b == b'\n') else {
            break;
        };
        let (piece, tail) = rest.split_at(share + nl + 1);
        pieces.push(piece);
        rest = tail;
    }
    pieces.push(rest);
    let parsed: Vec<Option<Chunk<'_>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = pieces[1..]
            .iter()
            .map(|piece| scope.spawn(move || parse_chunk(piece, ops_estimate)))
            .collect();
        let first = parse_chunk(pieces[0], ops_estimate * chunks);
        std::iter::once(first)
            .chain(handles.into_iter().map(|h| h.join().expect("a parser thread panicked")))
            .collect()
    });
    let mut ops: Vec<Op> = Vec::new();
    // Lines before the chunk at hand.
    let mut line_base = 0;
    let mut outstanding: FxHashMap<u64, usize> = FxHashMap::default();
    for (i, chunk) in parsed.into_iter().enumerate() {
        let chunk = chunk?;
        for (event, line) in chunk.heads {
            let op = &mut ops[outstanding.remove(&event.process)?];
            completion_error(op, &event).is_none().then_some(())?;
            complete(op, event, line_base + line);
        }
        if chunk.invoke_first.iter().any(|p| outstanding.contains_key(p)) {
            return None;
        }
        let id_base = ops.len();
        if i == 0 {
            // The first chunk's vector was sized for every operation; nothing to shift.
            ops = chunk.ops;
        } else {
            ops.extend(chunk.ops.into_iter().map(|mut op| {
                op.id += id_base;
                op.invoke_line += line_base;
                if let Some(l) = &mut op.complete_line {
                    *l += line_base;
                }
                op
            }));
        }
        outstanding.extend(chunk.open.into_iter().map(|(p, i)| (p, id_base + i)));
        line_base += chunk.lines - 1;
    }
    Some(History { ops })
}

/// The name of an operation function as it appears in histories.
pub fn fn_name(f: OpFn) -> &'static str {
    match f {
        OpFn::Read => "read",
        OpFn::Write => "write",
        OpFn::Append => "append",
        OpFn::Cas => "cas",
        OpFn::Txn => "txn",
    }
}

/// The name of an event type as it appears in histories.
pub fn type_name(t: EventType) -> &'static str {
    match t {
        EventType::Invoke => "invoke",
        EventType::Ok => "ok",
        EventType::Fail => "fail",
        EventType::Info => "info",
    }
}

fn fn_from_str(s: &str) -> Option<OpFn> {
    Some(match s {
        "read" => OpFn::Read,
        "write" => OpFn::Write,
        "append" => OpFn::Append,
        "cas" => OpFn::Cas,
        "txn" => OpFn::Txn,
        _ => return None,
    })
}

fn type_from_str(s: &str) -> Option<EventType> {
    Some(match s {
        "invoke" => EventType::Invoke,
        "ok" => EventType::Ok,
        "fail" => EventType::Fail,
        "info" => EventType::Info,
        _ => return None,
    })
}

/// One history line after validation.
struct Event<'a> {
    process: u64,
    kind: EventType,
    f: OpFn,
    key: Option<Cow<'a, str>>,
    value: Value,
    time: i64,
}

/// The fast-path shape of a line: borrowed strings, typed fields.
#[derive(Deserialize)]
struct RawEvent<'a> {
    process: u64,
    #[serde(rename = "type")]
    kind: &'a str,
    f: &'a str,
    #[serde(default, borrow)]
    key: Option<Cow<'a, str>>,
    #[serde(default)]
    value: Value,
    time: i64,
}

fn parse_event(text: &str, line: usize) -> Result<Event<'_>, ParseError> {
    if let Some(event) = scan_event(text) {
        return Ok(event);
    }
    if let Ok(raw) = serde_json::from_str::<RawEvent<'_>>(text)
        && let (Some(kind), Some(f)) = (type_from_str(raw.kind), fn_from_str(raw.f))
    {
        return Ok(Event {
            process: raw.process,
            kind,
            f,
            key: raw.key,
            value: raw.value,
            time: raw.time,
        });
    }
    parse_event_slow(text, line)
}

/// The general path: names the field at fault.
fn parse_event_slow(text: &str, line: usize) -> Result<Event<'static>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Json {
        file: None,
        line,
        message: e.to_string(),
    })?;
    let err = |field: &'static str, message: String| ParseError::Field {
        file: None,
        line,
        field,
        message,
    };
    let Value::Object(mut map) = value else {
        return Err(ParseError::Json {
            file: None,
            line,
            message: "expected an object per line".to_string(),
        });
    };
    let process = match map.get("process") {
        None => return Err(err("process", "missing".to_string())),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| err("process", format!("expected a non-negative integer, got {v}")))?,
    };
    let kind = match map.get("type") {
        None => return Err(err("type", "missing".to_string())),
        Some(Value::String(s)) => type_from_str(s).ok_or_else(|| {
            err("type", format!("unknown type {s:?} (expected invoke, ok, fail or info)"))
        })?,
        Some(v) => return Err(err("type", format!("expected a string, got {v}"))),
    };
    let f = match map.get("f") {
        None => return Err(err("f", "missing".to_string())),
        Some(Value::String(s)) => fn_from_str(s).ok_or_else(|| {
            err("f", format!("unknown f {s:?} (expected read, write, append, cas or txn)"))
        })?,
        Some(v) => return Err(err("f", format!("expected a string, got {v}"))),
    };
    let key = match map.get("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(Cow::Owned(s.clone())),
        Some(v) => return Err(err("key", format!("expected a string, got {v}"))),
    };
    let time = match map.get("time") {
        None => return Err(err("time", "missing".to_string())),
        Some(v) => {
            v.as_i64().ok_or_else(|| err("time", format!("expected an integer (ns), got {v}")))?
        }
    };
    let value = map.remove("value").unwrap_or(Value::Null);
    Ok(Event { process, kind, f, key, value, time })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lin::generate::{RegisterWorkload, generate};

    type Fields = (u64, EventType, OpFn, Option<String>, Value, i64);

    fn fields(e: Event<'_>) -> Fields {
        (e.process, e.kind, e.f, e.key.map(Cow::into_owned), e.value, e.time)
    }

    /// The serde readers alone, as before the scanner existed.
    fn serde_event(text: &str) -> Option<Fields> {
        if let Ok(raw) = serde_json::from_str::<RawEvent<'_>>(text)
            && let (Some(kind), Some(f)) = (type_from_str(raw.kind), fn_from_str(raw.f))
        {
            return Some((raw.process, kind, f, raw.key.map(Cow::into_owned), raw.value, raw.time));
        }
        parse_event_slow(text, 1).ok().map(fields)
    }

    #[test]
    fn scanner_agrees_with_serde_or_declines() {
        let lines = [
            r#"{"process":5,"type":"invoke","f":"write","key":"k285","value":1,"time":5}"#,
            r#"{"process":0,"type":"ok","f":"cas","key":"k81","value":[6,-5],"time":11}"#,
            r#"{ "time" : -3 , "f":"read","type":"ok","process":18446744073709551615 }"#,
            r#"{"process":1,"type":"ok","f":"read","key":null,"value":null,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"append","key":"x","value":"héllo","time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":[true,false,null,"a",[]],"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":[],"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":-9223372036854775808,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":-9223372036854775809,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":18446744073709551616,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":-0,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":1.5,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":1e3,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":01,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":"a\"b","time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":{"a":1},"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","value":1,"value":2,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","extra":1,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","time":0} x"#,
            r#"{"process":1,"type":"ok","f":"read","time":0,}"#,
            r#"{"process":-1,"type":"ok","f":"read","time":0}"#,
            r#"{"process":1,"type":"done","f":"read","time":0}"#,
            r#"{"process":1,"type":"ok","f":"read","time":9223372036854775808}"#,
            r#"{"process":1,"type":"ok","f":"read","key":5,"time":0}"#,
            r#"{"process":1,"type":"ok","f":"read"}"#,
            r#"{}"#,
            r#"[1]"#,
        ];
        for line in lines {
            let scanned = scan_event(line).map(fields);
            if let Some(scanned) = &scanned {
                assert_eq!(Some(scanned), serde_event(line).as_ref(), "{line}");
            }
            let both = parse_event(line, 1).ok().map(fields);
            assert_eq!(both, serde_event(line), "{line}");
        }
        assert!(scan_event(lines[0]).is_some(), "the common shape takes the fast path");
    }

    fn workload() -> String {
        let w =
            RegisterWorkload { seed: 7, ops: 3_000, processes: 7, keys: 4, ..Default::default() };
        generate(&w)
    }

    #[test]
    fn chunked_reading_equals_sequential_reading() {
        let text = workload();
        let want = parse_sequential(&text).expect("generated histories parse");
        for chunks in [2, 3, 8, 64] {
            let got = parse_chunked(&text, chunks).expect("no error to hand back");
            assert_eq!(got, want, "{chunks} chunks");
        }
        // Blank lines and a text without a final newline.
        let spaced = text.replace('\n', "\n\n");
        let want = parse_sequential(spaced.trim_end()).expect("parses");
        assert_eq!(parse_chunked(spaced.trim_end(), 5), Some(want));
    }

    #[test]
    fn chunked_reading_declines_every_bad_text() {
        let text = workload();
        let lines: Vec<&str> = text.lines().collect();
        let mut bad = Vec::new();
        // Drop an invoke, a completion, or corrupt a line, near each seam of 4 chunks.
        for at in [1, lines.len() / 4, lines.len() / 2 + 1, lines.len() - 1] {
            for mutate in 0..3 {
                let mut copy: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
                match mutate {
                    0 => drop(copy.remove(at)),
                    1 => copy[at] = copy[at].replace("\"time\"", "\"tme\""),
                    _ => copy[at] = copy[at].replace("\"type\":\"ok\"", "\"type\":\"invoke\""),
                }
                bad.push(copy.join("\n"));
            }
        }
        let mut errors = 0;
        for text in &bad {
            if let Err(e) = parse_sequential(text) {
                errors += 1;
                assert_eq!(parse_chunked(text, 4), None, "{e}");
                assert_eq!(parse_history_with(text, 4).expect_err("bad text"), e);
            }
        }
        assert!(errors >= bad.len() / 2, "only {errors} of {} mutations are errors", bad.len());
    }
}
