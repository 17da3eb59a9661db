//! The hand-rolled line reader behind `parse`'s fast path: the common register-event shape,
//! read without building a map of fields. It declines (returns `None`) anything it is not sure
//! of, so serde decides those lines exactly as before.

use std::borrow::Cow;

use serde_json::Value;

use super::{Event, fn_from_str, type_from_str};

/// The hand-rolled reader: the register-event shape with scalar or flat-array values and
/// strings without escapes, fields in any order, each at most once. `None` means "not sure":
/// the line goes to serde, so this reader never decides anything serde would decide otherwise.
pub(super) fn scan_event(text: &str) -> Option<Event<'_>> {
    let mut s = Scanner { text, at: 0 };
    s.expect(b'{')?;
    let (mut process, mut kind, mut f, mut key, mut value, mut time) =
        (None, None, None, None, None, None);
    loop {
        s.skip_ws();
        let name = s.field_name()?;
        s.skip_ws();
        let fresh = match name {
            "process" => process.replace(s.unsigned()?).is_none(),
            "type" => kind.replace(type_from_str(s.string()?)?).is_none(),
            "f" => f.replace(fn_from_str(s.string()?)?).is_none(),
            "key" => {
                let k = if s.literal("null") { None } else { Some(Cow::Borrowed(s.string()?)) };
                key.replace(k).is_none()
            }
            "value" => value.replace(s.value()?).is_none(),
            "time" => time.replace(s.signed()?).is_none(),
            _ => return None,
        };
        if !fresh {
            return None;
        }
        s.skip_ws();
        match s.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    s.skip_ws();
    if s.at != text.len() {
        return None;
    }
    Some(Event {
        process: process?,
        kind: kind?,
        f: f?,
        key: key.flatten(),
        value: value.unwrap_or(Value::Null),
        time: time?,
    })
}

/// A cursor over one line for `scan_event`.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A field name with its colon: one of the six the scanner knows, written compactly.
    fn field_name(&mut self) -> Option<&'static str> {
        const NAMES: [(&str, &str); 6] = [
            ("process", "\"process\":"),
            ("type", "\"type\":"),
            ("f", "\"f\":"),
            ("key", "\"key\":"),
            ("value", "\"value\":"),
            ("time", "\"time\":"),
        ];
        let rest = &self.text.as_bytes()[self.at..];
        let (name, quoted) =
            NAMES.iter().find(|(_, quoted)| rest.starts_with(quoted.as_bytes()))?;
        self.at += quoted.len();
        Some(name)
    }

    /// Consumes `word` if it comes next.
    fn literal(&mut self, word: &str) -> bool {
        let found = self.text.as_bytes()[self.at..].starts_with(word.as_bytes());
        if found {
            self.at += word.len();
        }
        found
    }

    /// A string without escapes or control characters; borrowed from the line.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        loop {
            match *bytes.get(self.at)? {
                b'"' => break,
                b'\\' => return None,
                b if b < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        self.at += 1;
        // Both ends are ASCII quotes, so the slice is on character boundaries.
        Some(&self.text[start..self.at - 1])
    }

    /// Digits of a JSON integer (no leading zeros, no fraction or exponent after), if they fit.
    fn magnitude(&mut self) -> Option<u64> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let mut n: u64 = 0;
        while let Some(&b) = bytes.get(self.at)
            && b.is_ascii_digit()
        {
            n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && bytes[start] == b'0') {
            return None;
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some(n)
    }

    fn unsigned(&mut self) -> Option<u64> {
        self.magnitude()
    }

    /// A signed integer as serde reads it: non-negative as u64, negative as i64. `-0` (a float
    /// to serde) and magnitudes past `i64` are left to serde.
    fn number(&mut self) -> Option<serde_json::Number> {
        if self.peek() == Some(b'-') {
            self.at += 1;
            let m = self.magnitude()?;
            if m == 0 || m > 1 << 63 {
                return None;
            }
            Some(serde_json::Number::from(0i64.wrapping_sub_unsigned(m)))
        } else {
            Some(serde_json::Number::from(self.magnitude()?))
        }
    }

    fn signed(&mut self) -> Option<i64> {
        self.number()?.as_i64()
    }

    /// A scalar (`null`, a boolean, an integer, a plain string) or a flat array of scalars.
    fn value(&mut self) -> Option<Value> {
        if self.peek() != Some(b'[') {
            return self.scalar();
        }
        self.at += 1;
        let mut items = Vec::with_capacity(2);
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Some(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.scalar()?);
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(Value::Array(items)),
                _ => return None,
            }
        }
    }

    fn scalar(&mut self) -> Option<Value> {
        match self.peek()? {
            b'n' => self.literal("null").then_some(Value::Null),
            b't' => self.literal("true").then_some(Value::Bool(true)),
            b'f' => self.literal("false").then_some(Value::Bool(false)),
            b'"' => Some(Value::String(self.string()?.to_string())),
            b'-' | b'0'..=b'9' => Some(Value::Number(self.number()?)),
            _ => None,
        }
    }
}
