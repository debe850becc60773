//! The JSON Schema of what an expression yields, worked out once per stream from the schema of
//! the record it reads: a property read as it is keeps its schema (formats, nested
//! properties); anything computed gets the JSON types it can take. Every computed property is
//! nullable, since a record the expression cannot be evaluated on gets `null`.

use serde_json::{json, Map, Value};

use super::expr::{BinOp, Expr, Func, Method, UnOp};

/// JSON types as bits.
const NULL: u8 = 1;
const BOOL: u8 = 2;
const INT: u8 = 4;
const NUM: u8 = 8;
const STR: u8 = 16;
const ARRAY: u8 = 32;
const OBJECT: u8 = 64;
const ANY: u8 = 127;

/// What is known of a value: its JSON types and, when it is exactly some property (or part of
/// one), that property's schema.
#[derive(Clone, Debug)]
pub(crate) struct Ty {
    bits: u8,
    schema: Option<Value>,
}

impl Ty {
    /// Values of the types `bits`, nothing more known.
    fn of(bits: u8) -> Ty {
        Ty { bits, schema: None }
    }

    /// The type a schema describes.
    fn from_schema(schema: &Value) -> Ty {
        let mut bits = 0;
        let mut add = |t: &str| {
            bits |= match t {
                "null" => NULL,
                "boolean" => BOOL,
                "integer" => INT,
                "number" => NUM | INT,
                "string" => STR,
                "array" => ARRAY,
                "object" => OBJECT,
                _ => 0,
            }
        };
        match schema.get("type") {
            Some(Value::String(t)) => add(t),
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).for_each(add),
            _ => {}
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alts)) = schema.get(key) {
                for a in alts {
                    bits |= Ty::from_schema(a).bits;
                }
            }
        }
        if bits == 0 {
            bits = ANY;
        }
        Ty {
            bits,
            schema: Some(schema.clone()),
        }
    }

    /// The type of a known value (a literal, a `stream_map_config` value).
    fn from_value(v: &Value) -> Ty {
        let bits = match v {
            Value::Null => NULL,
            Value::Bool(_) => BOOL,
            Value::Number(n) if n.is_f64() => NUM,
            Value::Number(_) => INT,
            Value::String(_) => STR,
            Value::Array(_) => ARRAY,
            Value::Object(_) => OBJECT,
        };
        Ty { bits, schema: None }
    }

    /// What is either `a` or `b`.
    fn union(a: Ty, b: Ty) -> Ty {
        // `x if c else None`: x's schema, nullable (every computed property is).
        if a.bits == NULL && a.schema.is_none() {
            return b;
        }
        if b.bits == NULL && b.schema.is_none() {
            return a;
        }
        let schema = match (&a.schema, &b.schema) {
            (Some(x), Some(y)) if x == y => a.schema.clone(),
            _ => None,
        };
        Ty {
            bits: a.bits | b.bits,
            schema,
        }
    }

    /// Whether nothing is known of it (a value read through an untyped path).
    pub(crate) fn is_unknown(&self) -> bool {
        self.bits == ANY && self.schema.is_none()
    }

    /// The property schema: the property's own when the value is exactly it, else its types;
    /// always nullable.
    pub(crate) fn to_schema(&self) -> Value {
        if let Some(s) = &self.schema {
            return nullable(s.clone());
        }
        let mut types = Vec::new();
        for (bit, name) in [
            (BOOL, "boolean"),
            (INT, "integer"),
            (NUM, "number"),
            (STR, "string"),
            (ARRAY, "array"),
            (OBJECT, "object"),
        ] {
            if self.bits & bit != 0 && !(bit == INT && self.bits & NUM != 0) {
                types.push(name);
            }
        }
        types.push("null");
        json!({ "type": types })
    }
}

/// `schema` with `null` among its types.
fn nullable(mut schema: Value) -> Value {
    match schema.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = t.clone();
            schema["type"] = json!([t, "null"]);
        }
        Some(Value::Array(ts)) => {
            if !ts.iter().any(|t| t == "null") {
                ts.push(json!("null"));
            }
        }
        Some(_) => {}
        None => {
            if let Some(Value::Array(alts)) = schema.get_mut("anyOf") {
                if !alts.iter().any(|a| a.get("type") == Some(&json!("null"))) {
                    alts.push(json!({"type": "null"}));
                }
            }
        }
    }
    schema
}

/// What names mean while typing: the record's schema, the map config, the property computed.
pub(crate) struct TypeEnv<'a> {
    pub(crate) properties: &'a Map<String, Value>,
    pub(crate) config: &'a Value,
    pub(crate) property: Option<&'a str>,
}

impl TypeEnv<'_> {
    /// The record as a whole (`record`, `_`): an object of the stream's properties.
    fn record(&self) -> Ty {
        Ty {
            bits: OBJECT,
            schema: Some(json!({"type": "object", "properties": self.properties})),
        }
    }

    /// The type of the name `n`: a property of the schema or one of the SDK's names.
    fn name(&self, n: &str) -> Ty {
        match n {
            "_" | "record" => self.record(),
            "config" => Ty {
                bits: OBJECT,
                schema: None,
            },
            "__stream_name__" | "__original_stream_name__" => Ty::of(STR),
            "self" => match self.property.and_then(|p| self.properties.get(p)) {
                Some(s) => Ty::from_schema(s),
                None => Ty::of(NULL),
            },
            _ => self.properties.get(n).map_or(Ty::of(ANY), Ty::from_schema),
        }
    }

    /// `config['key']`: the type of the value `stream_map_config` has there.
    fn config_key(&self, key: &str) -> Ty {
        self.config.get(key).map_or(Ty::of(ANY), Ty::from_value)
    }
}

/// The part of `ty` at `key` (a property of an object, an item of an array).
fn member(ty: &Ty, key: Option<&Value>) -> Ty {
    let Some(schema) = &ty.schema else {
        return Ty::of(ANY);
    };
    if ty.bits & OBJECT != 0 {
        if let (Some(Value::String(k)), Some(Value::Object(props))) =
            (key, schema.get("properties"))
        {
            return props.get(k).map_or(Ty::of(ANY), Ty::from_schema);
        }
    }
    if ty.bits & ARRAY != 0 {
        if let Some(items) = schema.get("items") {
            return Ty::from_schema(items);
        }
    }
    Ty::of(ANY)
}

/// What `e` yields, over records of the schema `env` gives.
pub(crate) fn infer(e: &Expr, env: &TypeEnv) -> Ty {
    match e {
        Expr::Lit(v) => Ty::from_value(v),
        Expr::Name(n) => env.name(n),
        Expr::List(_) | Expr::Tuple(_) => Ty::of(ARRAY),
        Expr::Dict(_) => Ty::of(OBJECT),
        Expr::Unary(UnOp::Not, _) | Expr::Compare(..) => Ty::of(BOOL),
        Expr::Unary(_, a) => {
            let t = infer(a, env);
            Ty::of(if t.bits & NUM != 0 { NUM } else { INT })
        }
        Expr::Binary(op, a, b) => infer_binary(*op, infer(a, env).bits, infer(b, env).bits),
        Expr::And(a, b) | Expr::Or(a, b) => Ty::union(infer(a, env), infer(b, env)),
        Expr::IfElse(then, _, otherwise) => Ty::union(infer(then, env), infer(otherwise, env)),
        Expr::Index(base, index) => infer_index(base, index, env),
        Expr::Attr(base, name) => match &**base {
            Expr::Name(n) if n == "config" => env.config_key(name),
            _ => member(&infer(base, env), Some(&Value::String(name.clone()))),
        },
        Expr::Slice(base, ..) => {
            let t = infer(base, env);
            Ty::of((t.bits & (STR | ARRAY)).max(STR) | NULL)
        }
        Expr::Call(f, ..) => Ty::of(match f {
            Func::Md5 | Func::Sha256 | Func::Str | Func::JsonDumps => STR,
            Func::Int => INT,
            Func::Float => NUM,
            Func::Bool => BOOL,
            Func::JsonLoads => ANY,
        }),
        Expr::Method(base, m, args) => infer_method(base, *m, args, env),
    }
}

/// `l op r` for operands of the types `l` and `r` (as bits): what each pair of types they
/// may be gives, and `null` (the operation may fail).
fn infer_binary(op: BinOp, l: u8, r: u8) -> Ty {
    let numeric = |x: u8| x & (INT | NUM | BOOL) != 0;
    let float = |x: u8| x & NUM != 0;
    let mut bits = 0;
    match op {
        BinOp::Add => {
            if l & STR != 0 && r & STR != 0 {
                bits |= STR;
            }
            if l & ARRAY != 0 && r & ARRAY != 0 {
                bits |= ARRAY;
            }
        }
        BinOp::Mul if (l & STR != 0 && numeric(r)) || (r & STR != 0 && numeric(l)) => {
            bits |= STR;
        }
        _ => {}
    }
    if numeric(l) && numeric(r) {
        bits |= match op {
            BinOp::Div => NUM,
            BinOp::Pow => INT | NUM,
            _ if float(l) || float(r) => NUM | INT,
            _ => INT,
        };
    }
    Ty::of(bits | NULL)
}

/// `base[index]`: a `config` key, a character of a str, a property or an item.
fn infer_index(base: &Expr, index: &Expr, env: &TypeEnv) -> Ty {
    if let (Expr::Name(n), Expr::Lit(Value::String(k))) = (base, index) {
        if n == "config" {
            return env.config_key(k);
        }
    }
    let base_ty = infer(base, env);
    if base_ty.bits == STR {
        return Ty::of(STR);
    }
    match index {
        Expr::Lit(k) => member(&base_ty, Some(k)),
        _ => member(&base_ty, None),
    }
}

/// `base.m(args)`.
fn infer_method(base: &Expr, m: Method, args: &[Expr], env: &TypeEnv) -> Ty {
    match m {
        Method::Split => Ty {
            bits: ARRAY,
            schema: Some(json!({"type": "array", "items": {"type": "string"}})),
        },
        Method::Startswith | Method::Endswith => Ty::of(BOOL),
        Method::Find => Ty::of(INT),
        Method::Get => {
            let key = match args.first() {
                Some(Expr::Lit(k)) => Some(k),
                _ => None,
            };
            let found = match base {
                Expr::Name(n) if n == "config" => key
                    .and_then(Value::as_str)
                    .map_or(Ty::of(ANY), |k| env.config_key(k)),
                _ => member(&infer(base, env), key),
            };
            let default = args.get(1).map_or(Ty::of(NULL), |d| infer(d, env));
            Ty::union(found, default)
        }
        Method::Lower
        | Method::Upper
        | Method::Strip
        | Method::Lstrip
        | Method::Rstrip
        | Method::Title
        | Method::Capitalize
        | Method::Replace
        | Method::Join => Ty::of(STR),
    }
}
