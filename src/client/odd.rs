//! Records serde_json cannot read as Harvest sent them, made readable: a lone UTF-16
//! surrogate escape (`"\ud83d"`, a truncated emoji) becomes U+FFFD, a number out of `f64`'s
//! range (`1e400`) becomes `null`. Each repair names the field it touched, for the warning.
//! Only a record that failed to parse comes here, so the common path pays nothing.

use serde_json::{Map, Value};

/// What was wrong with a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oddity {
    /// A lone surrogate escape, replaced by U+FFFD.
    LoneSurrogate,
    /// A number beyond `f64`, replaced by `null`.
    OutOfRange,
    /// Bytes that are not UTF-8, replaced by U+FFFD (found in the body before parsing).
    InvalidUtf8,
}

/// One repair: the field's path (`name`, `client.name`, `line_items[].amount`) and what it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub field: String,
    pub oddity: Oddity,
}

impl Fix {
    /// The top-level property the fix is in.
    pub fn property(&self) -> &str {
        self.field
            .split(['.', '['])
            .next()
            .unwrap_or(self.field.as_str())
    }
}

enum Frame {
    /// An object, with the key of the value being read (None while a key is expected).
    Object(Option<String>),
    Array,
}

fn path(stack: &[Frame]) -> String {
    let mut out = String::new();
    for f in stack {
        match f {
            Frame::Object(Some(k)) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Frame::Object(None) => {}
            Frame::Array => out.push_str("[]"),
        }
    }
    out
}

fn hex4(b: &[u8]) -> Option<u16> {
    let s = std::str::from_utf8(b.get(..4)?).ok()?;
    u16::from_str_radix(s, 16).ok()
}

/// `text` (one JSON value) with its lone surrogate escapes and out-of-range numbers repaired,
/// and the repairs made; `None` when there was nothing of the kind to repair.
pub fn repair(text: &[u8]) -> Option<(Vec<u8>, Vec<Fix>)> {
    let mut r = Repair {
        text,
        at: 0,
        out: Vec::with_capacity(text.len()),
        fixes: Vec::new(),
        stack: Vec::new(),
    };
    while let Some(&c) = text.get(r.at) {
        match c {
            b'"' => r.string(),
            b'-' | b'0'..=b'9' => r.number(),
            _ => r.punctuation(c),
        }
    }
    (!r.fixes.is_empty()).then_some((r.out, r.fixes))
}

/// One pass of [`repair`]: the text is copied to `out` a token at a time, repaired on the way.
struct Repair<'a> {
    text: &'a [u8],
    /// Where in `text` the pass is.
    at: usize,
    out: Vec<u8>,
    fixes: Vec<Fix>,
    /// The objects and arrays the pass is in.
    stack: Vec<Frame>,
}

/// A `\u` escape of a UTF-16 surrogate.
enum Surrogate {
    /// A high surrogate followed by a low one's escape: 12 bytes, kept.
    Pair,
    /// A surrogate without its other half: 6 bytes, replaced.
    Lone,
}

/// The surrogate escape at `text[at..]`, if there is one.
fn surrogate_at(text: &[u8], at: usize) -> Option<Surrogate> {
    if text[at] != b'\\' || text.get(at + 1) != Some(&b'u') {
        return None;
    }
    let u = hex4(&text[at + 2..])?;
    let is_high = (0xD800..0xDC00).contains(&u);
    let is_low = (0xDC00..0xE000).contains(&u);
    let paired = is_high
        && text.get(at + 6) == Some(&b'\\')
        && text.get(at + 7) == Some(&b'u')
        && hex4(&text[at + 8..]).is_some_and(|l| (0xDC00..0xE000).contains(&l));
    if paired {
        Some(Surrogate::Pair)
    } else {
        (is_high || is_low).then_some(Surrogate::Lone)
    }
}

impl Repair<'_> {
    /// Copies `text[at..at + n]`.
    fn copy(&mut self, n: usize) {
        self.out.extend_from_slice(&self.text[self.at..self.at + n]);
        self.at += n;
    }

    /// Notes a repair of the value being read.
    fn fixed(&mut self, oddity: Oddity) {
        self.fixes.push(Fix {
            field: path(&self.stack),
            oddity,
        });
    }

    /// A byte outside strings and numbers: brackets open and close frames, and a comma ends
    /// an object's member.
    fn punctuation(&mut self, c: u8) {
        match c {
            b'{' => self.stack.push(Frame::Object(None)),
            b'[' => self.stack.push(Frame::Array),
            b'}' | b']' => drop(self.stack.pop()),
            b',' => {
                if let Some(Frame::Object(k)) = self.stack.last_mut() {
                    *k = None;
                }
            }
            _ => {}
        }
        self.copy(1);
    }

    /// A string: a key when the object expects one; its lone surrogate escapes become U+FFFD.
    fn string(&mut self) {
        let is_key = matches!(self.stack.last(), Some(Frame::Object(None)));
        let start = self.out.len();
        self.copy(1);
        let mut repaired = false;
        while self.at < self.text.len() && self.text[self.at] != b'"' {
            repaired |= self.string_char();
        }
        self.out.push(b'"');
        self.at += 1;
        if is_key {
            let key = &self.out[start + 1..self.out.len() - 1];
            let key = String::from_utf8_lossy(key).into_owned();
            if let Some(Frame::Object(k)) = self.stack.last_mut() {
                *k = Some(key);
            }
        }
        if repaired {
            self.fixed(Oddity::LoneSurrogate);
        }
    }

    /// One character or escape of a string; whether it was a lone surrogate, replaced.
    fn string_char(&mut self) -> bool {
        match surrogate_at(self.text, self.at) {
            Some(Surrogate::Pair) => self.copy(12),
            Some(Surrogate::Lone) => {
                self.out.extend_from_slice(b"\\ufffd");
                self.at += 6;
                return true;
            }
            None if self.text[self.at] == b'\\' && self.at + 1 < self.text.len() => self.copy(2),
            None => self.copy(1),
        }
        false
    }

    /// A number: one beyond `f64`'s range becomes `null`.
    fn number(&mut self) {
        let start = self.at;
        while self
            .text
            .get(self.at)
            .is_some_and(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        {
            self.at += 1;
        }
        let number = &self.text[start..self.at];
        let out_of_range = std::str::from_utf8(number)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|f| f.is_infinite());
        if out_of_range {
            self.out.extend_from_slice(b"null");
            self.fixed(Oddity::OutOfRange);
        } else {
            self.out.extend_from_slice(number);
        }
    }
}

/// The fields of `record` whose strings hold U+FFFD: where invalid UTF-8 was replaced.
pub fn replaced_chars(record: &Map<String, Value>) -> Vec<Fix> {
    fn walk(v: &Value, at: &str, out: &mut Vec<Fix>) {
        match v {
            Value::String(s) if s.contains('\u{FFFD}') => out.push(Fix {
                field: at.to_string(),
                oddity: Oddity::InvalidUtf8,
            }),
            Value::Array(a) => a.iter().for_each(|x| walk(x, &format!("{at}[]"), out)),
            Value::Object(o) => o
                .iter()
                .for_each(|(k, x)| walk(x, &format!("{at}.{k}"), out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (k, v) in record {
        walk(v, k, &mut out);
    }
    out
}

/// The record's `id` as its raw text shows it, for a warning about a record that could not be
/// read at all.
pub fn id_of(text: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(text);
    let at = text.find("\"id\":")? + 5;
    let rest = text[at..].trim_start();
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(text: &str) -> (Value, Vec<Fix>) {
        let (out, fixes) = repair(text.as_bytes()).expect("something to repair");
        (serde_json::from_slice(&out).unwrap(), fixes)
    }

    #[test]
    fn lone_surrogates_and_huge_numbers_are_repaired_and_named() {
        let text = r#"{"id":7,"name":"Caf\u00e9 \ud83d","ok":"\ud83d\ude00","client":{"rate":1e400,"n":-2.5e-3},"tags":["\udc00"],"x":-1E999}"#;
        assert!(serde_json::from_str::<Value>(text).is_err());
        let (v, fixes) = fixed(text);
        assert_eq!(v["name"], "Café \u{FFFD}");
        assert_eq!(v["ok"], "😀");
        assert_eq!(v["client"]["rate"], Value::Null);
        assert_eq!(v["client"]["n"], -2.5e-3);
        assert_eq!(v["tags"][0], "\u{FFFD}");
        assert_eq!(v["x"], Value::Null);
        let named: Vec<_> = fixes.iter().map(|f| (f.field.as_str(), f.oddity)).collect();
        assert_eq!(
            named,
            vec![
                ("name", Oddity::LoneSurrogate),
                ("client.rate", Oddity::OutOfRange),
                ("tags[]", Oddity::LoneSurrogate),
                ("x", Oddity::OutOfRange)
            ]
        );
        assert_eq!(fixes[1].property(), "client");
        assert!(
            repair(br#"{"id":1,"a":"\"\\ud800"}"#).is_none(),
            "an escaped backslash is no escape"
        );
        assert_eq!(id_of(br#"{"name":"x","id": 123,"#).as_deref(), Some("123"));
    }
}
