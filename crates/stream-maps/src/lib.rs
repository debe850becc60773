//! Stream maps and flattening as Meltano Singer SDK taps apply them (`stream_maps`,
//! `stream_map_config`, `flattening_*`), for a Singer tap written in Rust: after everything
//! else the tap does, each stream's SCHEMA and RECORDs are renamed, filtered, reshaped, split
//! or dropped, and flattened.
//!
//! - [`Maps::from_config`] reads the settings from the tap's config object;
//! - [`Maps::outputs`] gives, for one stream's schema and keys, the streams it is sent as
//!   ([`MappedStream`]: name, schema, keys), each with [`MappedStream::apply`] for a record
//!   and [`MappedStream::deletion`] for a deletion tombstone;
//! - [`Maps::flattening`] gives the flattening settings ([`Flattening`]), and [`flatten`] their
//!   defaults; [`suggest::closest`] is the "did you mean" of the errors, for a tap's own.
//!
//! Inside, `expr` is the expression language (Python as `simpleeval` evaluates it), `infer`
//! types a computed property from the schema, [`flatten`] is the SDK's flattening, and this
//! file reads the settings and applies the maps. The README's example is run as a doctest.
//!
//! Everything is checked when the maps are built, before the tap makes a request: the syntax
//! of every expression, the functions and methods it calls, the properties it names (against
//! the selected schema), the keys. A map that cannot be applied is refused with one line
//! naming it, never ignored: a map meant to drop personal data must not leak it.
//!
//! The crate knows nothing of any tap; `serde_json` holds every value, and `md-5`/`sha2` give
//! the expressions' `md5()` and `sha256()`.

#![warn(missing_docs)]

mod expr;
pub mod flatten;
mod infer;
pub mod suggest;

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde_json::{json, Map, Value};

use expr::Expr;
pub use flatten::Flattening;

/// The Singer SDK's deletion marker: a target needs it, so `__else__: null` keeps it like the
/// keys, and a deletion carries it.
pub const DELETED_AT: &str = "_sdc_deleted_at";

/// The special string that stands for `null` in maps.
const NULL_STRING: &str = "__NULL__";

/// Names an expression may use besides the record's properties.
const SPECIAL_NAMES: [&str; 6] = [
    "_",
    "record",
    "config",
    "self",
    "__stream_name__",
    "__original_stream_name__",
];

const STREAM_OPTIONS: [&str; 5] = [
    "__alias__",
    "__source__",
    "__filter__",
    "__key_properties__",
    "__else__",
];

#[derive(Debug, Clone)]
enum PropDef {
    Remove,
    Compute(Expr),
}

#[derive(Debug, Clone)]
struct Custom {
    /// `__source__`: this entry makes a new stream (named by its key) from that one.
    source: Option<String>,
    alias: Option<String>,
    filter: Option<(String, Expr)>,
    /// `__key_properties__`: `Some(vec![])` for `null`.
    key_properties: Option<Vec<String>>,
    /// `__else__: null`: only the properties named (and the keys) are kept.
    only_named: bool,
    props: Vec<(String, PropDef)>,
}

#[derive(Debug, Clone)]
enum Def {
    Remove,
    Custom(Box<Custom>),
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    def: Def,
}

impl Entry {
    /// The stream (or glob) the entry reads, and whether it stands for that stream's own
    /// output (`false`: a `__source__` entry, a stream made besides it).
    fn source(&self) -> (&str, bool) {
        match &self.def {
            Def::Custom(c) => match &c.source {
                Some(s) => (s, false),
                None => (&self.key, true),
            },
            Def::Remove => (&self.key, true),
        }
    }

    /// Whether the entry reads `stream` (by name or glob).
    fn reads(&self, stream: &str) -> bool {
        let (source, _) = self.source();
        source == stream || glob(source, stream)
    }
}

/// The parsed `stream_maps`, `stream_map_config` and flattening settings.
#[derive(Debug, Clone)]
pub struct Maps {
    entries: Vec<Entry>,
    /// `__else__: null` at the top: streams no entry names are not sent.
    else_drop: bool,
    config: Value,
    flattening: Option<Flattening>,
    warn: Warn,
}

/// Where the warnings about single records go (a filter or a property that cannot be
/// evaluated on one): each is reported once per stream and kind. Standard error by default;
/// see [`Maps::with_warnings`].
pub type Warn = fn(&str);

/// The default [`Warn`]: one line on standard error.
fn to_stderr(message: &str) {
    eprintln!("{message}");
}

impl Default for Maps {
    fn default() -> Self {
        Maps {
            entries: Vec::new(),
            else_drop: false,
            config: Value::Null,
            flattening: None,
            warn: to_stderr,
        }
    }
}

/// `null`, or the string `__NULL__` that stands for it in maps.
fn is_null(v: &Value) -> bool {
    v.is_null() || v.as_str() == Some(NULL_STRING)
}

/// `fnmatch`: `*`, `?`, `[abc]`, `[a-z]`, `[!abc]`, case-sensitive; matched without
/// backtracking blow-up (one star remembered at a time).
pub(crate) fn glob(pattern: &str, name: &str) -> bool {
    enum Part {
        Star,
        Any,
        Set(bool, Vec<(char, char)>),
        Char(char),
    }
    let p: Vec<char> = pattern.chars().collect();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '*' => parts.push(Part::Star),
            '?' => parts.push(Part::Any),
            '[' => match p
                .iter()
                .skip(i + 2)
                .position(|c| *c == ']')
                .map(|k| k + i + 2)
            {
                Some(close) => {
                    let (neg, body) = match p[i + 1] {
                        '!' => (true, &p[i + 2..close]),
                        _ => (false, &p[i + 1..close]),
                    };
                    let mut ranges = Vec::new();
                    let mut j = 0;
                    while j < body.len() {
                        if j + 2 < body.len() && body[j + 1] == '-' {
                            ranges.push((body[j], body[j + 2]));
                            j += 3;
                        } else {
                            ranges.push((body[j], body[j]));
                            j += 1;
                        }
                    }
                    parts.push(Part::Set(neg, ranges));
                    i = close;
                }
                None => parts.push(Part::Char('[')),
            },
            c => parts.push(Part::Char(c)),
        }
        i += 1;
    }
    let one = |part: &Part, c: char| match part {
        Part::Star => false,
        Part::Any => true,
        Part::Set(neg, ranges) => ranges.iter().any(|(a, b)| *a <= c && c <= *b) != *neg,
        Part::Char(x) => *x == c,
    };
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < parts.len() && matches!(parts[pi], Part::Star) {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < parts.len() && one(&parts[pi], n[ni]) {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    parts[pi..].iter().all(|p| matches!(p, Part::Star))
}

impl Maps {
    /// Reads the settings from the config object; `Ok(None)` when they change nothing. Each
    /// problem is one line naming the key.
    pub fn from_config(
        obj: &Map<String, Value>,
        streams: &[&str],
        tap: &str,
    ) -> Result<Option<Maps>, Vec<String>> {
        let mut errors = Vec::new();
        let mut maps = Maps {
            config: obj.get("stream_map_config").cloned().unwrap_or(Value::Null),
            ..Maps::default()
        };
        if !matches!(maps.config, Value::Null | Value::Object(_)) {
            errors.push("config key 'stream_map_config' must be an object".to_string());
        }
        if maps.config.is_null() {
            maps.config = json!({});
        }
        match flattening(obj) {
            Ok(f) => maps.flattening = f,
            Err(e) => errors.push(e),
        }
        match obj.get("stream_maps") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (key, v) in m {
                    if key == "__else__" {
                        if is_null(v) {
                            maps.else_drop = true;
                        } else {
                            errors.push(format!(
                                "stream_maps.__else__ must be null (drop the streams not named), not {v}"
                            ));
                        }
                        continue;
                    }
                    if key.starts_with("__") {
                        errors.push(format!("stream_maps: option '{key}' is not expected (only '__else__' is, at this level)"));
                        continue;
                    }
                    match parse_entry(key, v, &maps.config) {
                        Ok(def) => maps.entries.push(Entry {
                            key: key.clone(),
                            def,
                        }),
                        Err(e) => errors.push(e),
                    }
                }
            }
            Some(_) => errors.push(
                "config key 'stream_maps' must be an object of stream names to maps".to_string(),
            ),
        }
        // Every entry must reach a stream: a map meant for `clients` that is spelt `client`
        // would leave what it removes in place.
        for e in &maps.entries {
            let (source, _) = e.source();
            if !streams.iter().any(|s| e.reads(s)) {
                let what = if source == e.key {
                    format!("stream_maps key '{}'", e.key)
                } else {
                    format!("stream_maps.{}.__source__ '{source}'", e.key)
                };
                let hint = suggest::closest(source, streams)
                    .map(|c| format!(" (did you mean '{c}'?)"))
                    .unwrap_or_default();
                errors.push(format!("{what} names no stream of {tap}{hint}"));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if maps.entries.is_empty() && !maps.else_drop && maps.flattening.is_none() {
            return Ok(None);
        }
        Ok(Some(maps))
    }

    /// Sends the warnings about single records to `warn` (a logger) instead of standard error.
    pub fn with_warnings(self, warn: Warn) -> Maps {
        Maps { warn, ..self }
    }

    /// The flattening settings, when flattening is on.
    pub fn flattening(&self) -> Option<&Flattening> {
        self.flattening.as_ref()
    }

    /// Whether `stream` is sent nowhere: its map is `null` (or `__else__: null` and no entry
    /// names it) and no other stream is made from it. Such a stream is not read at all.
    pub fn drops(&self, stream: &str) -> bool {
        let mut primary_kept = !self.else_drop;
        let mut extra = false;
        for e in self.entries.iter().filter(|e| e.reads(stream)) {
            if e.source().1 {
                primary_kept = matches!(e.def, Def::Custom(_));
            } else {
                extra = true;
            }
        }
        !primary_kept && !extra
    }

    /// The streams `stream` is sent as, with its (selected) `schema` and keys: none when it is
    /// dropped, one in general, more with `__source__`. A map that does not fit the schema (a
    /// property it names that the stream lacks, a key it removes) is an error naming it.
    pub fn outputs(
        &self,
        stream: &'static str,
        schema: &Value,
        key_properties: &[&str],
    ) -> Result<Vec<MappedStream>, String> {
        let keys: Vec<String> = key_properties.iter().map(|k| k.to_string()).collect();
        let same = || {
            MappedStream::new(stream, stream.to_string(), schema, keys.clone(), None, self)
                .map_err(|f| f.message(None))
        };
        let mut primary: Option<MappedStream> = if self.else_drop { None } else { Some(same()?) };
        let mut extras = Vec::new();
        for e in self.entries.iter().filter(|e| e.reads(stream)) {
            let (source, is_primary) = e.source();
            let mut alias = match &e.def {
                Def::Custom(c) if c.source.is_none() => c
                    .alias
                    .as_ref()
                    .map_or_else(|| e.key.clone(), |a| eval_alias(a, stream)),
                Def::Custom(_) | Def::Remove => e.key.clone(),
            };
            // A glob entry without a new name sends each stream it reads under its own.
            if source != stream && alias == source {
                alias = stream.to_string();
            }
            let mapped = match &e.def {
                Def::Remove => None,
                Def::Custom(c) => Some(
                    MappedStream::new(stream, alias, schema, keys.clone(), Some(c), self)
                        .map_err(|f| f.message(Some(&e.key)))?,
                ),
            };
            if is_primary {
                primary = mapped;
            } else if let Some(m) = mapped {
                extras.push(m);
            }
        }
        let mut all: Vec<MappedStream> = primary.into_iter().chain(extras).collect();
        let mut names = BTreeSet::new();
        for m in &mut all {
            if !names.insert(m.name.clone()) {
                return Err(format!(
                    "stream_maps: stream '{stream}' is sent twice as '{}'",
                    m.name
                ));
            }
        }
        Ok(all)
    }

    /// The names every stream map makes (aliases, `__source__` streams), each with the
    /// stream it comes from: two streams may not be sent under one name.
    pub fn check_unique_names(&self, outputs: &[(&str, Vec<String>)]) -> Result<(), String> {
        let mut seen: std::collections::BTreeMap<&str, &str> = Default::default();
        for (stream, names) in outputs {
            for n in names {
                if let Some(other) = seen.insert(n, stream) {
                    if other != *stream {
                        return Err(format!(
                            "stream_maps: streams '{other}' and '{stream}' are both sent as '{n}'"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The flattening settings; `None` when flattening is off (or its depth is 0, as in the SDK).
fn flattening(obj: &Map<String, Value>) -> Result<Option<Flattening>, String> {
    let enabled = match obj.get("flattening_enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(format!(
                "config key 'flattening_enabled' must be true or false, not {v}"
            ))
        }
    };
    let int = |key: &str| -> Result<Option<usize>, String> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .map(|n| Some(n as usize))
                .ok_or_else(|| format!("config key '{key}' must be a whole number ≥ 0, not {v}")),
        }
    };
    let depth = int("flattening_max_depth")?;
    let key_length = int("flattening_max_key_length")?;
    let separator = match obj.get("flattening_separator") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(v) => {
            return Err(format!(
                "config key 'flattening_separator' must be a non-empty string, not {v}"
            ))
        }
    };
    if !enabled {
        return Ok(None);
    }
    let Some(depth) = depth else {
        return Err("config key 'flattening_max_depth' is required when flattening_enabled is true (the Meltano SDK's rule): set how many levels to flatten, e.g. 1".into());
    };
    if depth == 0 {
        return Ok(None);
    }
    let mut f = Flattening {
        max_level: depth,
        ..Flattening::default()
    };
    if let Some(k) = key_length {
        f.max_key_length = k.max(1);
    }
    if let Some(s) = separator {
        f.separator = s;
    }
    Ok(Some(f))
}

/// `__alias__`: an expression over `__stream_name__`, or the name as written.
fn eval_alias(alias: &str, stream: &str) -> String {
    let Ok(e) = expr::parse(alias) else {
        return alias.to_string();
    };
    let mut names = Vec::new();
    expr::names(&e, &mut names);
    if names.iter().any(|n| n != "__stream_name__") {
        return alias.to_string();
    }
    let record = Map::new();
    let env = expr::Env {
        record: &record,
        config: &Value::Null,
        stream,
        original_stream: stream,
        property: None,
    };
    match expr::eval(&e, &env) {
        Ok(Value::String(s)) if !s.is_empty() => s,
        _ => alias.to_string(),
    }
}

/// Parses the expression `src` of the map key `where_`, its `config[...]` keys checked.
fn parse_expr(where_: &str, src: &str, config: &Value) -> Result<Expr, String> {
    let e = expr::parse(src).map_err(|why| format!("{where_}: cannot read {src:?}: {why}"))?;
    check_config_keys(&e, config).map_err(|why| format!("{where_}: {why}"))?;
    Ok(e)
}

/// `config['key']` with a key `stream_map_config` does not have.
fn check_config_keys(e: &Expr, config: &Value) -> Result<(), String> {
    let mut bad = None;
    expr::visit(e, &mut |x| {
        let key = match x {
            Expr::Index(base, k) => match (&**base, &**k) {
                (Expr::Name(n), Expr::Lit(Value::String(k))) if n == "config" => Some(k),
                _ => None,
            },
            Expr::Attr(base, k) => match &**base {
                Expr::Name(n) if n == "config" => Some(k),
                _ => None,
            },
            _ => None,
        };
        if let Some(k) = key {
            if config.get(k).is_none() && bad.is_none() {
                bad = Some(k.clone());
            }
        }
    });
    match bad {
        Some(k) => Err(format!("stream_map_config has no key '{k}'")),
        None => Ok(()),
    }
}

/// Reads the map of the `stream_maps` key `key`: `null` (drop the stream) or its options and
/// properties.
fn parse_entry(key: &str, v: &Value, config: &Value) -> Result<Def, String> {
    if is_null(v) {
        return Ok(Def::Remove);
    }
    let Value::Object(m) = v else {
        return Err(format!(
            "stream_maps.{key} must be an object (a map) or null (do not send the stream), not {v}"
        ));
    };
    let mut c = Custom {
        source: None,
        alias: None,
        filter: None,
        key_properties: None,
        only_named: false,
        props: Vec::new(),
    };
    for (prop, def) in m {
        let at = format!("stream_maps.{key}.{prop}");
        match prop.as_str() {
            "__source__" => match def.as_str() {
                Some(s) if !s.is_empty() => c.source = Some(s.to_string()),
                _ => return Err(format!("{at} must be the name of a stream")),
            },
            "__alias__" => match def.as_str() {
                Some(s) if !s.is_empty() => c.alias = Some(s.to_string()),
                _ => return Err(format!("{at} must be the new name of the stream")),
            },
            "__filter__" => match def {
                Value::Null => {}
                Value::String(s) => c.filter = Some((s.clone(), parse_expr(&at, s, config)?)),
                other => {
                    return Err(format!("{at} must be an expression (a string), not {other}"))
                }
            },
            "__key_properties__" => match def {
                Value::Null => c.key_properties = Some(Vec::new()),
                Value::Array(items) => {
                    let keys: Option<Vec<String>> =
                        items.iter().map(|i| i.as_str().map(String::from)).collect();
                    c.key_properties = Some(
                        keys.ok_or_else(|| format!("{at} must be a list of property names or null"))?,
                    );
                }
                _ => return Err(format!("{at} must be a list of property names or null")),
            },
            "__else__" => {
                if is_null(def) {
                    c.only_named = true;
                } else {
                    return Err(format!(
                        "{at}: only null is supported (keep only the properties named), not {def}"
                    ));
                }
            }
            p if p.starts_with("__") && p.ends_with("__") => {
                return Err(format!(
                    "{at}: '{p}' is not a stream map option ({})",
                    STREAM_OPTIONS.join(", ")
                ))
            }
            _ => match def {
                d if is_null(d) => c.props.push((prop.clone(), PropDef::Remove)),
                Value::String(s) => {
                    let e = parse_expr(&at, s, config)?;
                    c.props.push((prop.clone(), PropDef::Compute(e)));
                }
                other => {
                    return Err(format!(
                        "{at} must be an expression (a string) or null (remove the property), not {other}"
                    ))
                }
            },
        }
    }
    if c.source.is_some() && c.alias.is_some() {
        return Err(format!(
            "stream_maps.{key}: '__source__' and '__alias__' together: the key is already the new stream's name"
        ));
    }
    Ok(Def::Custom(Box::new(c)))
}

/// Why a stream cannot be mapped: its map does not fit it (the message starts with the
/// property or option at fault), or flattening it fails.
enum Fault {
    Map(String),
    Flattening(String),
}

impl Fault {
    /// The one-line error, naming the `stream_maps` entry `entry` (when it is one).
    fn message(self, entry: Option<&str>) -> String {
        match (self, entry) {
            (Fault::Map(m), Some(key)) => format!("stream_maps.{key}.{m}"),
            (Fault::Map(m), None) => format!("stream_maps: {m}"),
            (Fault::Flattening(m), _) => format!("flattening: {m}"),
        }
    }
}

/// One stream as it is sent: its name, schema and keys, and how its records are made.
pub struct MappedStream {
    /// The stream read.
    pub source: &'static str,
    /// The stream sent.
    pub name: String,
    /// Its JSON Schema as mapped (and flattened), for the SCHEMA message.
    pub schema: Value,
    /// Its key properties as mapped, for the SCHEMA message.
    pub key_properties: Vec<String>,
    custom: Option<CustomMap>,
    flattening: Option<Flattening>,
    warned: Mutex<BTreeSet<String>>,
    warn: Warn,
}

/// A stream's own map (`stream_maps.<stream>`), compiled against its schema.
struct CustomMap {
    filter: Option<Expr>,
    only_named: bool,
    props: Vec<(String, Option<Expr>)>,
    config: Value,
}

/// What mapping one record gave.
pub enum Mapped {
    /// The record to send.
    Record(Map<String, Value>),
    /// `__filter__` dropped it.
    Filtered,
    /// `__filter__` could not be evaluated on it, or one of its keys could not be computed:
    /// not sent.
    Failed,
}

impl CustomMap {
    /// Compiles the map `c` against the stream's schema `raw` (`source`'s, with the keys
    /// `keys`): the map, and the schema and keys the stream is sent with.
    fn build(
        c: &Custom,
        raw: &Value,
        keys: Vec<String>,
        source: &str,
        config: &Value,
    ) -> Result<(CustomMap, Value, Vec<String>), Fault> {
        let empty = Map::new();
        let raw_props = raw
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let key_properties = c.key_properties.clone().unwrap_or(keys);
        let mut props = if c.only_named {
            keys_and_marker(raw_props, &key_properties)
        } else {
            raw_props.clone()
        };
        let compiled =
            compile_properties(c, raw_props, &key_properties, source, config, &mut props)?;
        if let Some((_, e)) = &c.filter {
            check_names(e, raw_props, "__filter__", source).map_err(Fault::Map)?;
        }
        for k in &key_properties {
            if !props.contains_key(k) {
                return Err(Fault::Map(format!(
                    "__key_properties__: '{k}' is not a property of the stream as mapped"
                )));
            }
        }
        let mut schema = raw.clone();
        if let Some(req) = schema.get_mut("required").and_then(Value::as_array_mut) {
            req.retain(|r| r.as_str().is_some_and(|r| props.contains_key(r)));
        }
        schema["properties"] = Value::Object(props);
        let map = CustomMap {
            filter: c.filter.as_ref().map(|(_, e)| e.clone()),
            only_named: c.only_named,
            props: compiled,
            config: config.clone(),
        };
        Ok((map, schema, key_properties))
    }
}

/// Checks each property the map `c` removes or computes, and applies it to the schema
/// properties `props`: the properties as [`CustomMap`] applies them to records (`None`:
/// removed).
fn compile_properties(
    c: &Custom,
    raw_props: &Map<String, Value>,
    key_properties: &[String],
    source: &str,
    config: &Value,
    props: &mut Map<String, Value>,
) -> Result<Vec<(String, Option<Expr>)>, Fault> {
    let mut compiled = Vec::new();
    for (prop, def) in &c.props {
        match def {
            PropDef::Remove => {
                if key_properties.contains(prop) {
                    return Err(Fault::Map(format!(
                        "{prop}: removing the key property '{prop}' is not permitted: to change the keys, set '__key_properties__' (a list of property names, or null for none)"
                    )));
                }
                props.remove(prop);
                compiled.push((prop.clone(), None));
            }
            PropDef::Compute(e) => {
                check_names(e, raw_props, prop, source).map_err(Fault::Map)?;
                props.insert(prop.clone(), computed_schema(e, raw_props, prop, config));
                compiled.push((prop.clone(), Some(e.clone())));
            }
        }
    }
    Ok(compiled)
}

/// The schema of the property `prop` computed by `e` over records of the properties
/// `raw_props`.
fn computed_schema(e: &Expr, raw_props: &Map<String, Value>, prop: &str, config: &Value) -> Value {
    let env = infer::TypeEnv {
        properties: raw_props,
        config,
        property: Some(prop),
    };
    let ty = infer::infer(e, &env);
    if ty.is_unknown() {
        // Nothing is known of the value (`json.loads(...)`): any JSON value. (The SDK says
        // a string, which a validating target rejects when it is not one.)
        json!({})
    } else {
        ty.to_schema()
    }
}

/// The entries of `m` that `__else__: null` keeps besides the properties named: the keys and
/// the deletion marker (a target needs them).
fn keys_and_marker(m: &Map<String, Value>, key_properties: &[String]) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| key_properties.contains(k) || *k == DELETED_AT)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The stream `name`'s schema flattened by `f`, its keys still top-level properties.
fn flattened_schema(
    f: &Flattening,
    schema: &Value,
    name: &str,
    key_properties: &[String],
) -> Result<Value, Fault> {
    let flat = f
        .schema(schema)
        .map_err(|e| Fault::Flattening(format!("stream '{name}': {e}")))?;
    let flat_props = flat.get("properties").and_then(Value::as_object);
    for k in key_properties {
        if !flat_props.is_some_and(|p| p.contains_key(k)) {
            return Err(Fault::Flattening(format!(
                "stream '{name}': key property '{k}' is not a top-level property once flattened"
            )));
        }
    }
    Ok(flat)
}

impl MappedStream {
    /// `source` (of the schema `raw` and the keys `keys`) sent as `name`: `custom`'s map,
    /// when there is one, and the flattening applied to its schema and keys.
    fn new(
        source: &'static str,
        name: String,
        raw: &Value,
        keys: Vec<String>,
        custom: Option<&Custom>,
        maps: &Maps,
    ) -> Result<MappedStream, Fault> {
        let (custom, schema, key_properties) = match custom {
            None => (None, raw.clone(), keys),
            Some(c) => {
                let (map, schema, keys) = CustomMap::build(c, raw, keys, source, &maps.config)?;
                (Some(map), schema, keys)
            }
        };
        let schema = match &maps.flattening {
            Some(f) => flattened_schema(f, &schema, &name, &key_properties)?,
            None => schema,
        };
        Ok(MappedStream {
            source,
            name,
            schema,
            key_properties,
            custom,
            flattening: maps.flattening.clone(),
            warned: Mutex::new(BTreeSet::new()),
            warn: maps.warn,
        })
    }

    /// Whether records go out exactly as they come in.
    pub fn is_identity(&self) -> bool {
        self.name == self.source && self.custom.is_none() && self.flattening.is_none()
    }

    /// Sends `message` about records of this stream, the first time only for `what`.
    fn warn_once(&self, what: &str, message: String) {
        if self
            .warned
            .lock()
            .map(|mut w| w.insert(what.to_string()))
            .unwrap_or(false)
        {
            (self.warn)(&format!("stream {}: {message} (reported once)", self.name));
        }
    }

    /// What names mean while `record` is mapped (`property`: the one computed).
    fn env<'a>(
        &'a self,
        record: &'a Map<String, Value>,
        config: &'a Value,
        property: Option<&'a str>,
    ) -> expr::Env<'a> {
        expr::Env {
            record,
            config,
            stream: &self.name,
            original_stream: self.source,
            property,
        }
    }

    /// Maps one (conformed) record.
    pub fn apply(&self, record: &Map<String, Value>) -> Mapped {
        let mut out = match &self.custom {
            None => record.clone(),
            Some(c) => {
                if let Some(f) = &c.filter {
                    match expr::eval(f, &self.env(record, &c.config, None)) {
                        Ok(v) if expr::truthy(&v) => {}
                        Ok(_) => return Mapped::Filtered,
                        Err(why) => {
                            self.warn_once(
                                "__filter__",
                                format!("__filter__ cannot be evaluated on a record ({why}): such records are not sent"),
                            );
                            return Mapped::Failed;
                        }
                    }
                }
                let mut out = if c.only_named {
                    keys_and_marker(record, &self.key_properties)
                } else {
                    record.clone()
                };
                for (prop, e) in &c.props {
                    match e {
                        None => {
                            out.remove(prop);
                        }
                        Some(e) => {
                            let v = match expr::eval(e, &self.env(record, &c.config, Some(prop))) {
                                Ok(Value::Null) if self.key_properties.contains(prop) => {
                                    self.warn_once(
                                        prop,
                                        format!("key property '{prop}' is null on a record: such records are not sent"),
                                    );
                                    return Mapped::Failed;
                                }
                                Ok(v) => v,
                                Err(why) if self.key_properties.contains(prop) => {
                                    self.warn_once(
                                        prop,
                                        format!("key property '{prop}' cannot be computed on a record ({why}): such records are not sent"),
                                    );
                                    return Mapped::Failed;
                                }
                                Err(why) => {
                                    self.warn_once(
                                        prop,
                                        format!("property '{prop}' cannot be computed on a record ({why}): it is null there"),
                                    );
                                    Value::Null
                                }
                            };
                            out.insert(prop.clone(), v);
                        }
                    }
                }
                out
            }
        };
        if let Some(f) = &self.flattening {
            out = f.record(out, &self.schema);
        }
        Mapped::Record(out)
    }

    /// The deletion of the row `key` (its key properties and `_sdc_deleted_at`) as this stream
    /// sends it: keys computed by the map are computed, nothing else is; no `__filter__`
    /// applies (a deletion is about a key the target may hold). `None` when a key cannot be
    /// made from the source's keys alone, or the map removed `_sdc_deleted_at`.
    pub fn deletion(&self, key: &Map<String, Value>) -> Option<Map<String, Value>> {
        let has_marker = self
            .schema
            .get("properties")
            .is_some_and(|p| p.get(DELETED_AT).is_some());
        if !has_marker {
            return None;
        }
        // Only what a deletion carries may be read: its keys, the config, the stream's names.
        let readable = |e: &Expr| {
            let mut names = Vec::new();
            expr::names(e, &mut names);
            names.iter().all(|n| {
                key.contains_key(n)
                    || matches!(
                        n.as_str(),
                        "config" | "self" | "__stream_name__" | "__original_stream_name__"
                    )
            })
        };
        if let Some(c) = &self.custom {
            if let Some(f) = &c.filter {
                // A filter on the keys alone decides for a deletion too; any other cannot,
                // and the deletion is sent (the target may hold the row).
                if readable(f) {
                    match expr::eval(f, &self.env(key, &c.config, None)) {
                        Ok(v) if expr::truthy(&v) => {}
                        _ => return None,
                    }
                }
            }
        }
        let mut out = Map::new();
        for k in &self.key_properties {
            let computed = self
                .custom
                .as_ref()
                .and_then(|c| c.props.iter().find(|(p, _)| p == k).map(|(_, e)| (c, e)));
            let v = match computed {
                Some((_, None)) => None,
                Some((c, Some(e))) if readable(e) => {
                    expr::eval(e, &self.env(key, &c.config, Some(k))).ok()
                }
                Some(_) => None,
                None => key.get(k).cloned(),
            };
            match v {
                Some(v) if !v.is_null() => {
                    out.insert(k.clone(), v);
                }
                _ => {
                    self.warn_once(
                        "deletions",
                        format!("records deleted in Harvest cannot be sent: key '{k}' cannot be made from the keys a deletion carries"),
                    );
                    return None;
                }
            }
        }
        if let Some(v) = key.get(DELETED_AT) {
            out.insert(DELETED_AT.into(), v.clone());
        }
        Some(match &self.flattening {
            Some(f) => f.record(out, &self.schema),
            None => out,
        })
    }

    /// The bookmark properties that are still properties once mapped.
    pub fn bookmark_properties<'a>(&self, wanted: &[&'a str]) -> Vec<&'a str> {
        let props = self.schema.get("properties").and_then(Value::as_object);
        wanted
            .iter()
            .filter(|k| props.is_some_and(|p| p.contains_key(**k)))
            .copied()
            .collect()
    }
}

/// Every name an expression uses is a property of the stream or one of the SDK's names.
fn check_names(e: &Expr, props: &Map<String, Value>, at: &str, stream: &str) -> Result<(), String> {
    let mut names = Vec::new();
    expr::names(e, &mut names);
    let known: Vec<&str> = props.keys().map(String::as_str).collect();
    for n in names {
        if SPECIAL_NAMES.contains(&n.as_str()) || props.contains_key(&n) {
            continue;
        }
        let hint = suggest::closest(&n, &known)
            .map(|c| format!(" (did you mean '{c}'?)"))
            .unwrap_or_default();
        return Err(format!(
            "{at}: '{n}' is not a property of stream '{stream}' (or not selected in the catalog){hint}"
        ));
    }
    Ok(())
}

/// The README's example, checked by `cargo test` as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(test)]
mod tests;
