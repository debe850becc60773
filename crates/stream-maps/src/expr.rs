//! The expressions of stream maps: the part of Python (as the Meltano SDK evaluates it with
//! `simpleeval`) that maps use. Parsed once at start-up, where anything this evaluator does not
//! read (a function, a method, syntax) is refused with one line naming it; evaluated per record
//! over its JSON values with Python's semantics; and typed ahead of the records, so that the
//! SCHEMA a target receives describes what the expression yields.

use serde_json::{Map, Number, Value};

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Lit(Value),
    Name(String),
    List(Vec<Expr>),
    /// `(a, b)`: allowed only after `in` (`x in (1, 2)`), where it means what a list means;
    /// elsewhere its `str()` would differ from a list's.
    Tuple(Vec<Expr>),
    Dict(Vec<(Expr, Expr)>),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `a < b <= c`: each comparison with the operand before it.
    Compare(Box<Expr>, Vec<(CmpOp, Expr)>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `then if cond else otherwise`
    IfElse(Box<Expr>, Box<Expr>, Box<Expr>),
    Index(Box<Expr>, Box<Expr>),
    Slice(Box<Expr>, Option<Box<Expr>>, Option<Box<Expr>>),
    /// A function of [`FUNCTIONS`], with its positional and keyword arguments.
    Call(Func, Vec<Expr>, Vec<(String, Expr)>),
    /// A method of [`METHODS`] on a value.
    Method(Box<Expr>, Method, Vec<Expr>),
    /// `x.name` on a mapping (simpleeval reads a key so).
    Attr(Box<Expr>, String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum UnOp {
    Neg,
    Pos,
    Not,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Is,
    IsNot,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Func {
    Md5,
    Sha256,
    Str,
    Int,
    Float,
    Bool,
    JsonDumps,
    JsonLoads,
}

/// The functions an expression may call, as the SDK names them.
const FUNCTIONS: [(&str, Func); 8] = [
    ("md5", Func::Md5),
    ("sha256", Func::Sha256),
    ("str", Func::Str),
    ("int", Func::Int),
    ("float", Func::Float),
    ("bool", Func::Bool),
    ("json.dumps", Func::JsonDumps),
    ("json.loads", Func::JsonLoads),
];

/// Functions of the SDK (or of simpleeval) this evaluator refuses, with why.
const REFUSED_FUNCTIONS: [(&str, &str); 5] = [
    ("fake", "Faker is not available"),
    ("datetime", "the datetime module is not available"),
    ("rand", "random values are not available"),
    ("randint", "random values are not available"),
    ("len", "simpleeval has no len()"),
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Method {
    Lower,
    Upper,
    Strip,
    Lstrip,
    Rstrip,
    Title,
    Capitalize,
    Split,
    Replace,
    Startswith,
    Endswith,
    Find,
    Join,
    Get,
}

/// The methods an expression may call: Python's `str` methods maps use, and `dict.get`.
const METHODS: [(&str, Method, usize, usize); 14] = [
    ("lower", Method::Lower, 0, 0),
    ("upper", Method::Upper, 0, 0),
    ("strip", Method::Strip, 0, 1),
    ("lstrip", Method::Lstrip, 0, 1),
    ("rstrip", Method::Rstrip, 0, 1),
    ("title", Method::Title, 0, 0),
    ("capitalize", Method::Capitalize, 0, 0),
    ("split", Method::Split, 0, 2),
    ("replace", Method::Replace, 2, 3),
    ("startswith", Method::Startswith, 1, 1),
    ("endswith", Method::Endswith, 1, 1),
    ("find", Method::Find, 1, 1),
    ("join", Method::Join, 1, 1),
    ("get", Method::Get, 1, 2),
];

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Op(&'static str),
    End,
}

const OPS: [&str; 27] = [
    "**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "<", ">", "(", ")", "[", "]", "{",
    "}", ",", ":", ".", "=", "&", "|", "^", "~",
];

/// Splits `src` into tokens, refusing what the parser does not read (prefixed strings, odd
/// numbers, characters).
fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // A string prefix (r'', b'', f'') is syntax this evaluator does not read.
            if i < chars.len() && (chars[i] == '\'' || chars[i] == '"') {
                return Err(format!("string prefix {word:?} is not supported"));
            }
            toks.push(Tok::Name(word));
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let (tok, next) = lex_number(&chars, i)?;
            toks.push(tok);
            i = next;
            continue;
        }
        if c == '\'' || c == '"' {
            let (s, next) = lex_string(&chars, i)?;
            // Adjacent literals concatenate, as in Python.
            if let Some(Tok::Str(prev)) = toks.last_mut() {
                prev.push_str(&s);
            } else {
                toks.push(Tok::Str(s));
            }
            i = next;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        match OPS.iter().find(|op| rest.starts_with(**op)) {
            Some(op) => {
                toks.push(Tok::Op(op));
                i += op.chars().count();
            }
            None => return Err(format!("character {c:?} is not supported")),
        }
    }
    toks.push(Tok::End);
    Ok(toks)
}

/// The number literal (an int or a float, `_` between digits) starting at `chars[start]`; and
/// where it ends.
fn lex_number(chars: &[char], start: usize) -> Result<(Tok, usize), String> {
    let mut i = start;
    let mut float = false;
    while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
        i += 1;
    }
    if i < chars.len() && chars[i] == '.' {
        float = true;
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
        float = true;
        i += 1;
        if i < chars.len() && (chars[i] == '+' || chars[i] == '-') {
            i += 1;
        }
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i < chars.len() && (chars[i].is_alphanumeric()) {
        return Err(format!(
            "number {:?} is not supported",
            chars[start..=i].iter().collect::<String>()
        ));
    }
    let text: String = chars[start..i].iter().filter(|c| **c != '_').collect();
    if float {
        let f: f64 = text
            .parse()
            .map_err(|_| format!("number {text:?} cannot be read"))?;
        Ok((Tok::Float(f), i))
    } else {
        let n: i64 = text
            .parse()
            .map_err(|_| format!("number {text} is too large"))?;
        Ok((Tok::Int(n), i))
    }
}

/// The string literal opening at `chars[start]`, its escapes read as Python reads them; and
/// where it ends.
fn lex_string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    if chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote) {
        return Err("triple-quoted strings are not supported".into());
    }
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("a string is not closed".into());
        };
        i += 1;
        if c == quote {
            return Ok((out, i));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = chars.get(i) else {
            return Err("a string is not closed".into());
        };
        i += 1;
        match e {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            '\n' => {} // a line continuation
            '0'..='7' => {
                // Up to three octal digits.
                let mut value = e.to_digit(8).unwrap_or(0);
                let mut n = 1;
                while n < 3 {
                    match chars.get(i).and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            value = value * 8 + d;
                            i += 1;
                            n += 1;
                        }
                        None => break,
                    }
                }
                out.push(char::from_u32(value).unwrap_or('\u{fffd}'));
            }
            '\\' | '\'' | '"' => out.push(e),
            'N' => return Err("escape \\N{...} is not supported".into()),
            'x' | 'u' | 'U' => {
                let len = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.get(i..i + len).unwrap_or_default().iter().collect();
                let cp = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == len)
                    .and_then(char::from_u32)
                    .ok_or_else(|| format!("escape \\{e}{hex} is not valid"))?;
                out.push(cp);
                i += len;
            }
            other => {
                // Python keeps an unknown escape as written.
                out.push('\\');
                out.push(other);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parser: Python's precedence, from the conditional expression down to the atoms.

/// Parses `src`, or says (in one line) what it cannot read.
pub(crate) fn parse(src: &str) -> Result<Expr, String> {
    if src.len() > 10_000 {
        return Err("the expression is longer than 10,000 characters".into());
    }
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        pos: 0,
        nesting: 0,
    };
    let e = p.test()?;
    if *p.peek() != Tok::End {
        return Err(format!(
            "unexpected {} after the expression",
            describe(p.peek())
        ));
    }
    if depth(&e) > MAX_DEPTH {
        return Err(format!(
            "the expression nests more than {MAX_DEPTH} levels deep"
        ));
    }
    if misplaced_tuple(&e) {
        return Err("tuples are supported only after 'in' (x in (1, 2)); use a list [...]".into());
    }
    Ok(e)
}

/// A token as an error message names it.
fn describe(t: &Tok) -> String {
    match t {
        Tok::Name(n) => format!("'{n}'"),
        Tok::Int(n) => n.to_string(),
        Tok::Float(f) => f.to_string(),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::End => "the end".into(),
    }
}

/// A call's positional and keyword arguments.
type Arguments = (Vec<Expr>, Vec<(String, Expr)>);

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
    /// How many recursive descents are open, to refuse what would overflow the stack.
    nesting: usize,
}

const KEYWORDS: [&str; 16] = [
    "lambda", "for", "while", "import", "def", "class", "yield", "await", "async", "del", "global",
    "with", "return", "assert", "from", "as",
];

impl Parser {
    /// The token at the position (the end token past it).
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    /// The token at the position, moving past it.
    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    /// Whether the token at the position is the operator `op`.
    fn is_op(&self, op: &str) -> bool {
        matches!(self.peek(), Tok::Op(o) if *o == op)
    }

    /// Whether the token at the position is the name (or keyword) `w`.
    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Tok::Name(n) if n == w)
    }

    /// Moves past the operator `op`, or says what stands there instead.
    fn expect_op(&mut self, op: &str) -> Result<(), String> {
        if self.is_op(op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected '{op}', found {}", describe(self.peek())))
        }
    }

    /// Opens one more level of recursion, refusing more than [`MAX_DEPTH`].
    fn descend(&mut self) -> Result<(), String> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(format!(
                "the expression nests more than {MAX_DEPTH} levels deep"
            ));
        }
        Ok(())
    }

    /// `or_test ['if' or_test 'else' test]`
    fn test(&mut self) -> Result<Expr, String> {
        self.descend()?;
        let e = self.test_inner();
        self.nesting -= 1;
        e
    }

    /// [`Parser::test`] within its recursion bound.
    fn test_inner(&mut self) -> Result<Expr, String> {
        let then = self.or_test()?;
        if self.is_word("if") {
            self.pos += 1;
            let cond = self.or_test()?;
            if !self.is_word("else") {
                return Err("'if' without 'else'".into());
            }
            self.pos += 1;
            let otherwise = self.test()?;
            return Ok(Expr::IfElse(
                Box::new(then),
                Box::new(cond),
                Box::new(otherwise),
            ));
        }
        Ok(then)
    }

    /// `and_test ('or' and_test)*`
    fn or_test(&mut self) -> Result<Expr, String> {
        let mut e = self.and_test()?;
        while self.is_word("or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and_test()?));
        }
        Ok(e)
    }

    /// `not_test ('and' not_test)*`
    fn and_test(&mut self) -> Result<Expr, String> {
        let mut e = self.not_test()?;
        while self.is_word("and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.not_test()?));
        }
        Ok(e)
    }

    /// `'not' not_test | comparison`
    fn not_test(&mut self) -> Result<Expr, String> {
        if self.is_word("not") {
            self.pos += 1;
            self.descend()?;
            let inner = self.not_test();
            self.nesting -= 1;
            return Ok(Expr::Unary(UnOp::Not, Box::new(inner?)));
        }
        self.comparison()
    }

    /// The comparison operator at the position, if any, moving past it.
    fn cmp_op(&mut self) -> Option<CmpOp> {
        let op = match self.peek() {
            Tok::Op("==") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Name(n) if n == "in" => CmpOp::In,
            Tok::Name(n) if n == "is" => {
                self.pos += 1;
                if self.is_word("not") {
                    self.pos += 1;
                    return Some(CmpOp::IsNot);
                }
                return Some(CmpOp::Is);
            }
            Tok::Name(n) if n == "not" => {
                if matches!(self.toks.get(self.pos + 1), Some(Tok::Name(m)) if m == "in") {
                    self.pos += 2;
                    return Some(CmpOp::NotIn);
                }
                return None;
            }
            _ => return None,
        };
        self.pos += 1;
        Some(op)
    }

    /// `arith (cmp_op arith)*`
    fn comparison(&mut self) -> Result<Expr, String> {
        let first = self.arith()?;
        let mut rest = Vec::new();
        while let Some(op) = self.cmp_op() {
            rest.push((op, self.arith()?));
        }
        if rest.is_empty() {
            return Ok(first);
        }
        Ok(Expr::Compare(Box::new(first), rest))
    }

    /// `term (('+' | '-') term)*`
    fn arith(&mut self) -> Result<Expr, String> {
        let mut e = self.term()?;
        loop {
            let op = match self.peek() {
                Tok::Op("+") => BinOp::Add,
                Tok::Op("-") => BinOp::Sub,
                Tok::Op(o @ ("&" | "|" | "^")) => {
                    return Err(format!("operator '{o}' is not supported"))
                }
                _ => return Ok(e),
            };
            self.pos += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.term()?));
        }
    }

    /// `factor (('*' | '/' | '//' | '%') factor)*`
    fn term(&mut self) -> Result<Expr, String> {
        let mut e = self.factor()?;
        loop {
            let op = match self.peek() {
                Tok::Op("*") => BinOp::Mul,
                Tok::Op("/") => BinOp::Div,
                Tok::Op("//") => BinOp::FloorDiv,
                Tok::Op("%") => BinOp::Mod,
                _ => return Ok(e),
            };
            if op == BinOp::Mod && matches!(e, Expr::Lit(Value::String(_))) {
                return Err("string formatting with % is not supported: use + and str()".into());
            }
            self.pos += 1;
            e = Expr::Binary(op, Box::new(e), Box::new(self.factor()?));
        }
    }

    /// `('-' | '+') factor | power`
    fn factor(&mut self) -> Result<Expr, String> {
        let op = match self.peek() {
            Tok::Op("-") => UnOp::Neg,
            Tok::Op("+") => UnOp::Pos,
            Tok::Op("~") => return Err("operator '~' is not supported".into()),
            _ => return self.power(),
        };
        self.pos += 1;
        self.descend()?;
        let inner = self.factor();
        self.nesting -= 1;
        Ok(Expr::Unary(op, Box::new(inner?)))
    }

    /// `trailers ['**' factor]`
    fn power(&mut self) -> Result<Expr, String> {
        let base = self.trailers()?;
        if self.is_op("**") {
            self.pos += 1;
            let exp = self.factor()?;
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exp)));
        }
        Ok(base)
    }

    /// An atom and what follows it: `.name`, `.method(...)`, `[index]`, `[a:b]`, `(...)`.
    fn trailers(&mut self) -> Result<Expr, String> {
        let mut e = self.atom()?;
        loop {
            e = if self.is_op(".") {
                self.pos += 1;
                self.dotted(e)?
            } else if self.is_op("[") {
                self.pos += 1;
                self.subscript(e)?
            } else if self.is_op("(") {
                self.call(e)?
            } else {
                return Ok(e);
            };
        }
    }

    /// What follows `e.`: a dotted function (`json.dumps(...)`), a method call, or an
    /// attribute.
    fn dotted(&mut self, e: Expr) -> Result<Expr, String> {
        let Tok::Name(name) = self.next() else {
            return Err("expected a name after '.'".into());
        };
        if self.is_op("(") {
            // A dotted name that is a function (`json.dumps`) is read whole.
            if let Expr::Name(module) = &e {
                if let Some(call) = self.module_function(module, &name)? {
                    return Ok(call);
                }
            }
            return self.method_call(e, &name);
        }
        if let Expr::Name(module) = &e {
            if let Some((_, why)) = REFUSED_FUNCTIONS.iter().find(|(n, _)| n == module) {
                return Err(format!("'{module}.{name}' is not supported: {why}"));
            }
        }
        if name.starts_with('_') {
            return Err(format!("attribute '.{name}' is not supported"));
        }
        Ok(Expr::Attr(Box::new(e), name))
    }

    /// `module.name(...)` when it is a function of [`FUNCTIONS`] (`None` when the module is
    /// not one: a method call on a name), or why it is refused.
    fn module_function(&mut self, module: &str, name: &str) -> Result<Option<Expr>, String> {
        let dotted = format!("{module}.{name}");
        if let Some((_, f)) = FUNCTIONS.iter().find(|(n, _)| *n == dotted) {
            let (args, kwargs) = self.arguments()?;
            return check_call(*f, args, kwargs).map(Some);
        }
        if let Some((_, why)) = REFUSED_FUNCTIONS.iter().find(|(n, _)| *n == module) {
            return Err(format!("'{dotted}' is not supported: {why}"));
        }
        if module == "json" {
            return Err(format!(
                "function '{dotted}' is not supported (json.dumps and json.loads are)"
            ));
        }
        Ok(None)
    }

    /// `e.name(...)`: a method of [`METHODS`] with as many positional arguments as it takes.
    fn method_call(&mut self, e: Expr, name: &str) -> Result<Expr, String> {
        let Some((_, m, min, max)) = METHODS.iter().find(|(n, ..)| *n == name) else {
            return Err(format!(
                "method '.{name}()' is not supported (supported: {})",
                METHODS.iter().map(|m| m.0).collect::<Vec<_>>().join(", ")
            ));
        };
        let (args, kwargs) = self.arguments()?;
        if !kwargs.is_empty() {
            return Err(format!(
                "keyword arguments to '.{name}()' are not supported"
            ));
        }
        if args.len() < *min || args.len() > *max {
            return Err(format!(
                "'.{name}()' takes {} arguments, not {}",
                if min == max {
                    min.to_string()
                } else {
                    format!("{min} to {max}")
                },
                args.len()
            ));
        }
        Ok(Expr::Method(Box::new(e), *m, args))
    }

    /// What follows `e[`: an index `e[i]` or a slice `e[a:b]` (without a step).
    fn subscript(&mut self, e: Expr) -> Result<Expr, String> {
        let start = if self.is_op(":") {
            None
        } else {
            Some(self.test()?)
        };
        if !self.is_op(":") {
            let Some(index) = start else {
                return Err("empty index".into());
            };
            self.expect_op("]")?;
            return Ok(Expr::Index(Box::new(e), Box::new(index)));
        }
        self.pos += 1;
        let stop = if self.is_op("]") || self.is_op(":") {
            None
        } else {
            Some(Box::new(self.test()?))
        };
        if self.is_op(":") {
            return Err("a slice with a step is not supported".into());
        }
        self.expect_op("]")?;
        Ok(Expr::Slice(Box::new(e), start.map(Box::new), stop))
    }

    /// `e(...)`: `e` must name a function of [`FUNCTIONS`].
    fn call(&mut self, e: Expr) -> Result<Expr, String> {
        let Expr::Name(name) = &e else {
            return Err("only functions and methods can be called".into());
        };
        if let Some((_, f)) = FUNCTIONS.iter().find(|(n, _)| n == name) {
            let (args, kwargs) = self.arguments()?;
            check_call(*f, args, kwargs)
        } else if let Some((_, why)) = REFUSED_FUNCTIONS.iter().find(|(n, _)| n == name) {
            Err(format!("function '{name}()' is not supported: {why}"))
        } else {
            Err(format!(
                "function '{name}()' is not supported (supported: {})",
                FUNCTIONS.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
            ))
        }
    }

    /// `(args, name=value, ...)`: a call's positional, then keyword, arguments.
    fn arguments(&mut self) -> Result<Arguments, String> {
        self.expect_op("(")?;
        let mut args = Vec::new();
        let mut kwargs = Vec::new();
        while !self.is_op(")") {
            if let (Tok::Name(n), Some(Tok::Op("="))) =
                (self.peek().clone(), self.toks.get(self.pos + 1))
            {
                self.pos += 2;
                kwargs.push((n, self.test()?));
            } else {
                if !kwargs.is_empty() {
                    return Err("a positional argument after a keyword argument".into());
                }
                if self.is_op("*") || self.is_op("**") {
                    return Err("argument unpacking is not supported".into());
                }
                args.push(self.test()?);
            }
            if self.is_word("for") {
                return Err("comprehensions are not supported".into());
            }
            if !self.is_op(",") {
                break;
            }
            self.pos += 1;
        }
        self.expect_op(")")?;
        Ok((args, kwargs))
    }

    /// A literal, a name, `(...)`, `[...]` or `{...}`.
    fn atom(&mut self) -> Result<Expr, String> {
        match self.next() {
            Tok::Int(n) => Ok(Expr::Lit(Value::from(n))),
            Tok::Float(f) => Number::from_f64(f)
                .map(|n| Expr::Lit(Value::Number(n)))
                .ok_or_else(|| format!("number {f} is not finite")),
            Tok::Str(s) => Ok(Expr::Lit(Value::String(s))),
            Tok::Name(n) => match n.as_str() {
                "True" => Ok(Expr::Lit(Value::Bool(true))),
                "False" => Ok(Expr::Lit(Value::Bool(false))),
                "None" => Ok(Expr::Lit(Value::Null)),
                w if KEYWORDS.contains(&w) => Err(format!("'{w}' is not supported")),
                "if" | "else" | "and" | "or" | "not" | "in" | "is" => {
                    Err(format!("unexpected '{n}'"))
                }
                _ => Ok(Expr::Name(n)),
            },
            Tok::Op("(") => {
                if self.is_op(")") {
                    self.pos += 1;
                    return Ok(Expr::Tuple(Vec::new()));
                }
                let first = self.test()?;
                if self.is_word("for") {
                    return Err("comprehensions are not supported".into());
                }
                if self.is_op(",") {
                    // A tuple: a list, as JSON has no tuples.
                    let mut items = vec![first];
                    while self.is_op(",") {
                        self.pos += 1;
                        if self.is_op(")") {
                            break;
                        }
                        items.push(self.test()?);
                    }
                    self.expect_op(")")?;
                    return Ok(Expr::Tuple(items));
                }
                self.expect_op(")")?;
                Ok(first)
            }
            Tok::Op("[") => {
                let mut items = Vec::new();
                while !self.is_op("]") {
                    items.push(self.test()?);
                    if self.is_word("for") {
                        return Err("comprehensions are not supported".into());
                    }
                    if !self.is_op(",") {
                        break;
                    }
                    self.pos += 1;
                }
                self.expect_op("]")?;
                Ok(Expr::List(items))
            }
            Tok::Op("{") => {
                let mut items = Vec::new();
                while !self.is_op("}") {
                    let k = self.test()?;
                    if !self.is_op(":") {
                        return Err("sets are not supported".into());
                    }
                    self.pos += 1;
                    let v = self.test()?;
                    if self.is_word("for") {
                        return Err("comprehensions are not supported".into());
                    }
                    items.push((k, v));
                    if !self.is_op(",") {
                        break;
                    }
                    self.pos += 1;
                }
                self.expect_op("}")?;
                Ok(Expr::Dict(items))
            }
            t => Err(format!("unexpected {}", describe(&t))),
        }
    }
}

/// A call of `f` with these arguments, when it takes them (`json.dumps` takes `default=` and
/// `sort_keys=`).
fn check_call(f: Func, args: Vec<Expr>, kwargs: Vec<(String, Expr)>) -> Result<Expr, String> {
    let name = FUNCTIONS.iter().find(|(_, g)| *g == f).map_or("", |p| p.0);
    let (min, max) = match f {
        Func::Str | Func::Int | Func::Float | Func::Bool => (0, 1),
        Func::Md5 | Func::Sha256 | Func::JsonDumps | Func::JsonLoads => (1, 1),
    };
    if args.len() < min || args.len() > max {
        return Err(format!(
            "'{name}()' takes {} argument{}, not {}",
            max,
            if max == 1 { "" } else { "s" },
            args.len()
        ));
    }
    for (k, _) in &kwargs {
        // json.dumps(x, default=str): every value here is JSON, `default` is never needed.
        let ok = f == Func::JsonDumps && (k == "default" || k == "sort_keys");
        if !ok {
            return Err(format!(
                "keyword argument '{k}' to '{name}()' is not supported"
            ));
        }
    }
    // `default` only matters to values JSON does not have: it is read, then dropped.
    let kwargs = kwargs.into_iter().filter(|(k, _)| k != "default").collect();
    Ok(Expr::Call(f, args, kwargs))
}

// ---------------------------------------------------------------------------------------
// Names

/// The expressions directly inside `e`.
fn children(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::Lit(_) | Expr::Name(_) => Vec::new(),
        Expr::List(items) | Expr::Tuple(items) => items.iter().collect(),
        Expr::Dict(items) => items.iter().flat_map(|(k, v)| [k, v]).collect(),
        Expr::Unary(_, a) | Expr::Attr(a, _) => vec![a],
        Expr::Binary(_, a, b) | Expr::And(a, b) | Expr::Or(a, b) | Expr::Index(a, b) => {
            vec![a, b]
        }
        Expr::Compare(a, rest) => std::iter::once(&**a)
            .chain(rest.iter().map(|(_, r)| r))
            .collect(),
        Expr::IfElse(a, b, c) => vec![a, b, c],
        Expr::Slice(a, b, c) => std::iter::once(&**a)
            .chain([b, c].into_iter().flatten().map(|x| &**x))
            .collect(),
        Expr::Call(_, args, kwargs) => args.iter().chain(kwargs.iter().map(|(_, a)| a)).collect(),
        Expr::Method(a, _, args) => std::iter::once(&**a).chain(args.iter()).collect(),
    }
}

/// Calls `f` on `e` and on every expression inside it (without recursion: a parsed expression
/// is at most [`MAX_DEPTH`] deep anyway).
pub(crate) fn visit(e: &Expr, f: &mut dyn FnMut(&Expr)) {
    let mut stack = vec![e];
    while let Some(x) = stack.pop() {
        f(x);
        stack.extend(children(x).into_iter().rev());
    }
}

/// How deeply an expression may nest: evaluation recurses once per level.
const MAX_DEPTH: usize = 64;

/// The depth of `e`'s tree.
fn depth(e: &Expr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(e, 1)];
    while let Some((x, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(children(x).into_iter().map(|c| (c, d + 1)));
    }
    deepest
}

/// A tuple anywhere but after `in`.
fn misplaced_tuple(e: &Expr) -> bool {
    let mut stack = vec![(e, false)];
    while let Some((x, allowed)) = stack.pop() {
        if let Expr::Tuple(_) = x {
            if !allowed {
                return true;
            }
        }
        if let Expr::Compare(first, rest) = x {
            stack.push((first, false));
            for (op, r) in rest {
                stack.push((r, matches!(op, CmpOp::In | CmpOp::NotIn)));
            }
            continue;
        }
        stack.extend(children(x).into_iter().map(|c| (c, false)));
    }
    false
}

/// The names an expression uses (the record's properties and the SDK's special names), for
/// the start-up check.
pub(crate) fn names(e: &Expr, out: &mut Vec<String>) {
    visit(e, &mut |x| {
        if let Expr::Name(n) = x {
            out.push(n.clone());
        }
    });
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// What names mean while one record is mapped.
pub(crate) struct Env<'a> {
    pub(crate) record: &'a Map<String, Value>,
    pub(crate) config: &'a Value,
    pub(crate) stream: &'a str,
    pub(crate) original_stream: &'a str,
    /// The property being computed, for `self`.
    pub(crate) property: Option<&'a str>,
}

impl Env<'_> {
    /// The value of the name `n`: a property of the record or one of the SDK's names.
    fn name(&self, n: &str) -> Result<Value, String> {
        match n {
            "_" | "record" => Ok(Value::Object(self.record.clone())),
            "config" => Ok(self.config.clone()),
            "__stream_name__" => Ok(Value::String(self.stream.to_string())),
            "__original_stream_name__" => Ok(Value::String(self.original_stream.to_string())),
            "self" => match self.property.and_then(|p| self.record.get(p)) {
                Some(v) => Ok(v.clone()),
                None => self
                    .record
                    .get("self")
                    .cloned()
                    .ok_or_else(|| "name 'self' is not defined".to_string()),
            },
            _ => self
                .record
                .get(n)
                .cloned()
                .ok_or_else(|| format!("name '{n}' is not defined")),
        }
    }
}

/// The Python type name of a value, for error messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Python's truth value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A number as Python sees it: bools are ints.
#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

/// A value as a Python number, if it is one.
fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Bool(b) => Some(Num::I(i64::from(*b))),
        Value::Number(n) => n.as_i64().map(Num::I).or_else(|| n.as_f64().map(Num::F)),
        _ => None,
    }
}

/// A float result, refused when it is not finite (JSON has no NaN nor infinity).
fn float_value(f: f64) -> Result<Value, String> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| "the result is not a finite number".to_string())
}

/// A number as a float.
fn as_f(n: Num) -> f64 {
    match n {
        Num::I(i) => i as f64,
        Num::F(f) => f,
    }
}

/// Evaluates `e` over one record with Python's semantics; `Err` says why, as Python would.
pub(crate) fn eval(e: &Expr, env: &Env) -> Result<Value, String> {
    match e {
        Expr::Lit(v) => Ok(v.clone()),
        Expr::Name(n) => env.name(n),
        Expr::List(items) | Expr::Tuple(items) => Ok(Value::Array(eval_all(items, env)?)),
        Expr::Dict(items) => eval_dict(items, env),
        Expr::Unary(op, a) => unary(*op, eval(a, env)?),
        Expr::Binary(op, a, b) => binary(*op, eval(a, env)?, eval(b, env)?),
        Expr::Compare(first, rest) => eval_compare(first, rest, env),
        Expr::And(a, b) => {
            let l = eval(a, env)?;
            if truthy(&l) {
                eval(b, env)
            } else {
                Ok(l)
            }
        }
        Expr::Or(a, b) => {
            let l = eval(a, env)?;
            if truthy(&l) {
                Ok(l)
            } else {
                eval(b, env)
            }
        }
        Expr::IfElse(then, cond, otherwise) => {
            if truthy(&eval(cond, env)?) {
                eval(then, env)
            } else {
                eval(otherwise, env)
            }
        }
        Expr::Index(base, index) => index_value(eval(base, env)?, &eval(index, env)?),
        Expr::Attr(base, name) => attr_value(eval(base, env)?, name),
        Expr::Slice(base, start, stop) => {
            let v = eval(base, env)?;
            let (start, stop) = (slice_bound(start, env)?, slice_bound(stop, env)?);
            slice_value(v, start, stop)
        }
        Expr::Call(f, args, kwargs) => eval_call(*f, args, kwargs, env),
        Expr::Method(base, m, args) => {
            let recv = eval(base, env)?;
            method(recv, *m, eval_all(args, env)?)
        }
    }
}

/// Evaluates each expression in turn, stopping at the first that fails.
fn eval_all(items: &[Expr], env: &Env) -> Result<Vec<Value>, String> {
    items.iter().map(|i| eval(i, env)).collect()
}

/// `{k: v, ...}`: each key, then its value, in order; keys must be strings (JSON's).
fn eval_dict(items: &[(Expr, Expr)], env: &Env) -> Result<Value, String> {
    let mut m = Map::new();
    for (k, v) in items {
        let key = match eval(k, env)? {
            Value::String(s) => s,
            other => {
                return Err(format!(
                    "a dict key must be a str here, not {}",
                    type_name(&other)
                ))
            }
        };
        m.insert(key, eval(v, env)?);
    }
    Ok(Value::Object(m))
}

/// `not v`, `-v`, `+v`.
fn unary(op: UnOp, v: Value) -> Result<Value, String> {
    match op {
        UnOp::Not => Ok(Value::Bool(!truthy(&v))),
        UnOp::Pos | UnOp::Neg => match num(&v) {
            Some(Num::I(i)) if op == UnOp::Neg => i
                .checked_neg()
                .map(Value::from)
                .ok_or_else(|| "integer overflow".to_string()),
            Some(Num::I(i)) => Ok(Value::from(i)),
            Some(Num::F(f)) if op == UnOp::Neg => float_value(-f),
            Some(Num::F(f)) => float_value(f),
            None => Err(format!("bad operand type for unary -: '{}'", type_name(&v))),
        },
    }
}

/// `a < b <= c`: each comparison with the operand before it, stopping at the first false one
/// (whose right operand is the last evaluated, as in Python).
fn eval_compare(first: &Expr, rest: &[(CmpOp, Expr)], env: &Env) -> Result<Value, String> {
    let mut left = eval(first, env)?;
    for (op, r) in rest {
        let right = eval(r, env)?;
        if !compare(*op, &left, &right)? {
            return Ok(Value::Bool(false));
        }
        left = right;
    }
    Ok(Value::Bool(true))
}

/// `x.name`: a key of a dict (simpleeval reads attributes of a mapping so).
fn attr_value(base: Value, name: &str) -> Result<Value, String> {
    match base {
        Value::Object(mut m) => m
            .remove(name)
            .ok_or_else(|| format!("key {name:?} is not in the dict")),
        other => Err(format!(
            "'{}' object has no attribute '{name}'",
            type_name(&other)
        )),
    }
}

/// One bound of a slice: absent or `None` for none, else an int.
fn slice_bound(bound: &Option<Box<Expr>>, env: &Env) -> Result<Option<i64>, String> {
    match bound {
        None => Ok(None),
        Some(e) => match eval(e, env)? {
            Value::Null => Ok(None),
            x => match num(&x) {
                Some(Num::I(i)) => Ok(Some(i)),
                _ => Err("slice indices must be integers".into()),
            },
        },
    }
}

/// `v[start:stop]` on a str (by characters) or a list, bounds clamped as Python clamps them.
fn slice_value(v: Value, start: Option<i64>, stop: Option<i64>) -> Result<Value, String> {
    let range = |len: usize| {
        let len = len as i64;
        let fix = |i: i64| if i < 0 { (i + len).max(0) } else { i.min(len) };
        let a = start.map_or(0, fix);
        let b = stop.map_or(len, fix);
        (a as usize, (b.max(a)) as usize)
    };
    match v {
        Value::String(st) => {
            let chars: Vec<char> = st.chars().collect();
            let (a, b) = range(chars.len());
            Ok(Value::String(chars[a..b].iter().collect()))
        }
        Value::Array(items) => {
            let (a, b) = range(items.len());
            Ok(Value::Array(items[a..b].to_vec()))
        }
        other => Err(format!("'{}' object is not sliceable", type_name(&other))),
    }
}

/// A function call: its arguments, then `sort_keys=` (the only keyword kept), then the call.
fn eval_call(
    f: Func,
    args: &[Expr],
    kwargs: &[(String, Expr)],
    env: &Env,
) -> Result<Value, String> {
    let args = eval_all(args, env)?;
    let sort_keys = match kwargs.iter().find(|(k, _)| k == "sort_keys") {
        Some((_, e)) => truthy(&eval(e, env)?),
        None => false,
    };
    call(f, args, sort_keys)
}

/// `a op b` with Python's int/float rules, `+` on str and list, `*` of a str.
fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, String> {
    let sym = match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::FloorDiv => "//",
        BinOp::Mod => "%",
        BinOp::Pow => "**",
    };
    let unsupported = |a: &Value, b: &Value| {
        format!(
            "unsupported operand types for {sym}: '{}' and '{}'",
            type_name(a),
            type_name(b)
        )
    };
    match (op, &a, &b) {
        (BinOp::Add, Value::String(x), Value::String(y)) => {
            return Ok(Value::String(format!("{x}{y}")))
        }
        (BinOp::Add, Value::Array(x), Value::Array(y)) => {
            return Ok(Value::Array(x.iter().chain(y).cloned().collect()))
        }
        (BinOp::Mul, Value::String(s), n) | (BinOp::Mul, n, Value::String(s))
            if matches!(num(n), Some(Num::I(_))) =>
        {
            let Some(Num::I(k)) = num(n) else {
                unreachable!()
            };
            let k = usize::try_from(k.max(0)).unwrap_or(0);
            if s.len().saturating_mul(k) > 1 << 20 {
                return Err("the string would be longer than 1 MB".into());
            }
            return Ok(Value::String(s.repeat(k)));
        }
        _ => {}
    }
    let (Some(x), Some(y)) = (num(&a), num(&b)) else {
        return Err(unsupported(&a, &b));
    };
    let overflow = || "integer overflow".to_string();
    match (op, x, y) {
        (BinOp::Add, Num::I(x), Num::I(y)) => {
            x.checked_add(y).map(Value::from).ok_or_else(overflow)
        }
        (BinOp::Sub, Num::I(x), Num::I(y)) => {
            x.checked_sub(y).map(Value::from).ok_or_else(overflow)
        }
        (BinOp::Mul, Num::I(x), Num::I(y)) => {
            x.checked_mul(y).map(Value::from).ok_or_else(overflow)
        }
        (BinOp::Add, x, y) => float_value(as_f(x) + as_f(y)),
        (BinOp::Sub, x, y) => float_value(as_f(x) - as_f(y)),
        (BinOp::Mul, x, y) => float_value(as_f(x) * as_f(y)),
        (BinOp::Div, x, y) => {
            if as_f(y) == 0.0 {
                return Err("division by zero".into());
            }
            float_value(as_f(x) / as_f(y))
        }
        (BinOp::FloorDiv | BinOp::Mod, _, y) if as_f(y) == 0.0 => {
            Err("integer division or modulo by zero".into())
        }
        (BinOp::FloorDiv, Num::I(x), Num::I(y)) => {
            let q = x.checked_div(y).ok_or_else(overflow)?;
            Ok(Value::from(if (x % y != 0) && ((x < 0) != (y < 0)) {
                q - 1
            } else {
                q
            }))
        }
        (BinOp::Mod, Num::I(x), Num::I(y)) => {
            let r = x.checked_rem(y).ok_or_else(overflow)?;
            Ok(Value::from(if r != 0 && ((r < 0) != (y < 0)) {
                r + y
            } else {
                r
            }))
        }
        (BinOp::FloorDiv, x, y) => float_value(float_divmod(as_f(x), as_f(y)).0),
        (BinOp::Mod, x, y) => float_value(float_divmod(as_f(x), as_f(y)).1),
        (BinOp::Pow, Num::I(x), Num::I(y)) if y >= 0 => u32::try_from(y)
            .ok()
            .and_then(|y| x.checked_pow(y))
            .map(Value::from)
            .ok_or_else(overflow),
        (BinOp::Pow, x, y) => float_value(as_f(x).powf(as_f(y))),
    }
}

/// CPython's float `divmod` (`//` and `%`), `y` not zero.
fn float_divmod(x: f64, y: f64) -> (f64, f64) {
    let mut m = x % y;
    let mut div = (x - m) / y;
    if m != 0.0 {
        if (y < 0.0) != (m < 0.0) {
            m += y;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(y);
    }
    let floor = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0f64.copysign(x / y)
    };
    (floor, m)
}

/// Python's `==` on JSON values: numbers by value (`1 == 1.0`, `True == 1`).
fn equal(a: &Value, b: &Value) -> bool {
    match (num(a), num(b)) {
        (Some(Num::I(x)), Some(Num::I(y))) => x == y,
        (Some(x), Some(y)) => as_f(x) == as_f(y),
        _ => match (a, b) {
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
            }
            _ => a == b,
        },
    }
}

/// Python's ordering of two values (numbers, strs, lists), or why they cannot be ordered.
fn order(a: &Value, b: &Value) -> Result<std::cmp::Ordering, String> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return match (x, y) {
            (Num::I(x), Num::I(y)) => Ok(x.cmp(&y)),
            (x, y) => as_f(x)
                .partial_cmp(&as_f(y))
                .ok_or_else(|| "not comparable".to_string()),
        };
    }
    match (a, b) {
        (Value::String(x), Value::String(y)) => Ok(x.chars().cmp(y.chars())),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !equal(p, q) {
                    return order(p, q);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        _ => Err(format!(
            "'<' not supported between instances of '{}' and '{}'",
            type_name(a),
            type_name(b)
        )),
    }
}

/// One comparison `a op b`.
fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<bool, String> {
    use std::cmp::Ordering::*;
    Ok(match op {
        CmpOp::Eq => equal(a, b),
        CmpOp::Ne => !equal(a, b),
        CmpOp::Lt => order(a, b)? == Less,
        CmpOp::Le => order(a, b)? != Greater,
        CmpOp::Gt => order(a, b)? == Greater,
        CmpOp::Ge => order(a, b)? != Less,
        CmpOp::In | CmpOp::NotIn => {
            let found = match b {
                Value::String(s) => match a {
                    Value::String(x) => s.contains(x.as_str()),
                    other => {
                        return Err(format!(
                            "'in <string>' requires string as left operand, not {}",
                            type_name(other)
                        ))
                    }
                },
                Value::Array(items) => items.iter().any(|i| equal(a, i)),
                Value::Object(m) => a.as_str().is_some_and(|k| m.contains_key(k)),
                other => {
                    return Err(format!(
                        "argument of type '{}' is not iterable",
                        type_name(other)
                    ))
                }
            };
            found == (op == CmpOp::In)
        }
        // Identity: only None, True and False have one value each.
        CmpOp::Is | CmpOp::IsNot => {
            let same = match (a, b) {
                (Value::Null, Value::Null) => true,
                (Value::Bool(x), Value::Bool(y)) => x == y,
                _ => false,
            };
            same == (op == CmpOp::Is)
        }
    })
}

/// `base[index]`: a key of a dict, an item of a list, a character of a str.
fn index_value(base: Value, index: &Value) -> Result<Value, String> {
    match base {
        Value::Object(mut m) => match index {
            Value::String(k) => m
                .remove(k)
                .ok_or_else(|| format!("key {k:?} is not in the dict")),
            other => Err(format!("key {} is not in the dict", py_repr(other))),
        },
        Value::Array(items) => {
            let i = pos(index, items.len())?;
            Ok(items[i].clone())
        }
        Value::String(s) => {
            let chars: Vec<char> = s.chars().collect();
            let i = pos(index, chars.len())?;
            Ok(Value::String(chars[i].to_string()))
        }
        other => Err(format!(
            "'{}' object is not subscriptable",
            type_name(&other)
        )),
    }
}

/// The position `index` (negative from the end) stands for in a sequence of `len`.
fn pos(index: &Value, len: usize) -> Result<usize, String> {
    let Some(Num::I(i)) = num(index) else {
        return Err(format!(
            "indices must be integers, not {}",
            type_name(index)
        ));
    };
    let j = if i < 0 { i + len as i64 } else { i };
    if j < 0 || j >= len as i64 {
        return Err("index out of range".into());
    }
    Ok(j as usize)
}

/// Calls the function `f` on its evaluated arguments.
fn call(f: Func, args: Vec<Value>, sort_keys: bool) -> Result<Value, String> {
    let arg = args.into_iter().next();
    match f {
        Func::Md5 | Func::Sha256 => digest(f, arg),
        Func::Str => Ok(Value::String(arg.as_ref().map_or_else(String::new, py_str))),
        Func::Bool => Ok(Value::Bool(arg.as_ref().is_some_and(truthy))),
        Func::Int => int(arg),
        Func::Float => float(arg),
        Func::JsonDumps => {
            let mut out = String::new();
            dump(
                arg.as_ref().unwrap_or(&Value::Null),
                ", ",
                ": ",
                sort_keys,
                &mut out,
            );
            Ok(Value::String(out))
        }
        Func::JsonLoads => match arg {
            Some(Value::String(s)) => {
                serde_json::from_str(&s).map_err(|e| format!("json.loads: {e}"))
            }
            Some(v) => Err(format!(
                "the JSON object must be str, not {}",
                type_name(&v)
            )),
            None => Err("json.loads() needs an argument".into()),
        },
    }
}

/// `md5(s)` or `sha256(s)`: the hex digest of a str's UTF-8 bytes.
fn digest(f: Func, arg: Option<Value>) -> Result<Value, String> {
    let Some(Value::String(s)) = &arg else {
        return Err(format!(
            "{}() needs a str, not {}",
            if f == Func::Md5 { "md5" } else { "sha256" },
            arg.as_ref().map_or("nothing", type_name)
        ));
    };
    Ok(Value::String(if f == Func::Md5 {
        use md5::Digest;
        hex(&md5::Md5::digest(s.as_bytes()))
    } else {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(s.as_bytes()))
    }))
}

/// `int(x)`: a str's digits, a float truncated, `0` without an argument.
fn int(arg: Option<Value>) -> Result<Value, String> {
    match arg {
        None => Ok(Value::from(0)),
        Some(Value::String(s)) => number_text(&s)
            .and_then(|t| t.parse::<i64>().ok())
            .map(Value::from)
            .ok_or_else(|| format!("invalid literal for int(): {}", py_repr(&Value::String(s)))),
        Some(v) => match num(&v) {
            Some(Num::I(i)) => Ok(Value::from(i)),
            Some(Num::F(f)) if f.is_finite() && f.abs() < 9.2e18 => {
                Ok(Value::from(f.trunc() as i64))
            }
            Some(Num::F(_)) => Err("cannot convert float to integer".into()),
            None => Err(format!(
                "int() argument must be a string or a number, not '{}'",
                type_name(&v)
            )),
        },
    }
}

/// `float(x)`: a str's number (not NaN nor infinity, which JSON lacks), `0.0` without an
/// argument.
fn float(arg: Option<Value>) -> Result<Value, String> {
    match arg {
        None => float_value(0.0),
        Some(Value::String(s)) => {
            let t = number_text(&s).unwrap_or_default().to_ascii_lowercase();
            let f = match t.as_str() {
                "nan" | "inf" | "-inf" | "infinity" | "-infinity" | "+inf" => None,
                _ => t.parse::<f64>().ok(),
            };
            f.map_or_else(
                || {
                    Err(format!(
                        "could not convert string to float: {}",
                        py_repr(&Value::String(s))
                    ))
                },
                float_value,
            )
        }
        Some(v) => match num(&v) {
            Some(n) => float_value(as_f(n)),
            None => Err(format!(
                "float() argument must be a string or a number, not '{}'",
                type_name(&v)
            )),
        },
    }
}

/// Python's `str.isspace`: Unicode white space and the separators U+001C to U+001F.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// A number's text as `int()` and `float()` read it: white space around it, `_` only between
/// two digits.
fn number_text(s: &str) -> Option<String> {
    let t = s.trim_matches(py_space);
    let chars: Vec<char> = t.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '_' {
            let digit = |j: Option<&char>| j.is_some_and(char::is_ascii_hexdigit);
            if i == 0 || !digit(chars.get(i - 1)) || !digit(chars.get(i + 1)) {
                return None;
            }
        }
    }
    Some(t.chars().filter(|c| *c != '_').collect())
}

/// Bytes as lower-case hexadecimal (a digest's `hexdigest()`).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Argument `i` as a str; `None` when absent or `None`.
fn str_arg<'a>(args: &'a [Value], i: usize, what: &str) -> Result<Option<&'a str>, String> {
    match args.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(format!("{what} must be a str, not {}", type_name(v))),
    }
}

/// `recv.m(args)`: `dict.get`, `str.join`, or one of the other `str` methods.
fn method(recv: Value, m: Method, args: Vec<Value>) -> Result<Value, String> {
    match (m, recv) {
        (Method::Get, Value::Object(o)) => Ok(dict_get(o, &args)),
        (Method::Join, Value::String(sep)) => str_join(&sep, &args),
        (Method::Get | Method::Join, recv) => Err(no_attribute(&recv, m)),
        (_, Value::String(s)) => str_method(&s, m, &args),
        (_, recv) => Err(no_attribute(&recv, m)),
    }
}

/// Python's error for a method the receiver's type does not have.
fn no_attribute(recv: &Value, m: Method) -> String {
    let name = METHODS.iter().find(|x| x.1 == m).map_or("", |x| x.0);
    format!("'{}' object has no attribute '{name}'", type_name(recv))
}

/// `dict.get(key[, default])`: a key that is not a str is never in a JSON object.
fn dict_get(mut o: Map<String, Value>, args: &[Value]) -> Value {
    let default = args.get(1).cloned().unwrap_or(Value::Null);
    match &args[0] {
        Value::String(k) => o.remove(k).unwrap_or(default),
        _ => default,
    }
}

/// `sep.join(items)`: every item must be a str.
fn str_join(sep: &str, args: &[Value]) -> Result<Value, String> {
    let Value::Array(items) = &args[0] else {
        return Err("join() needs a list".into());
    };
    let parts: Result<Vec<&str>, String> = items
        .iter()
        .map(|i| {
            i.as_str().ok_or_else(|| {
                format!(
                    "sequence item: expected str instance, {} found",
                    type_name(i)
                )
            })
        })
        .collect();
    Ok(Value::String(parts?.join(sep)))
}

/// The `str` methods other than `join`, on `s`.
fn str_method(s: &str, m: Method, args: &[Value]) -> Result<Value, String> {
    Ok(match m {
        Method::Lower => Value::String(s.to_lowercase()),
        Method::Upper => Value::String(s.to_uppercase()),
        Method::Strip | Method::Lstrip | Method::Rstrip => Value::String(strip(s, m, args)?),
        Method::Title => Value::String(title(s)),
        Method::Capitalize => Value::String(capitalize(s)),
        Method::Split => Value::Array(split(s, args)?),
        Method::Replace => {
            let (Some(old), Some(new)) = (str_arg(args, 0, "old")?, str_arg(args, 1, "new")?)
            else {
                return Err("replace() needs two str".into());
            };
            match args.get(2).and_then(num) {
                Some(Num::I(n)) if n >= 0 => Value::String(s.replacen(old, new, n as usize)),
                _ => Value::String(s.replace(old, new)),
            }
        }
        Method::Startswith | Method::Endswith => {
            let Some(p) = str_arg(args, 0, "prefix")? else {
                return Err("startswith()/endswith() need a str".into());
            };
            Value::Bool(if m == Method::Startswith {
                s.starts_with(p)
            } else {
                s.ends_with(p)
            })
        }
        Method::Find => {
            let Some(p) = str_arg(args, 0, "sub")? else {
                return Err("find() needs a str".into());
            };
            Value::from(s.find(p).map_or(-1, |b| s[..b].chars().count() as i64))
        }
        Method::Get | Method::Join => unreachable!("read by method()"),
    })
}

/// `strip`, `lstrip`, `rstrip`: the characters given, or Python's white space.
fn strip(s: &str, m: Method, args: &[Value]) -> Result<String, String> {
    let set: Option<Vec<char>> = str_arg(args, 0, "strip arg")?.map(|c| c.chars().collect());
    let is = |c: char| set.as_ref().map_or(py_space(c), |set| set.contains(&c));
    Ok(match m {
        Method::Strip => s.trim_matches(is),
        Method::Lstrip => s.trim_start_matches(is),
        _ => s.trim_end_matches(is),
    }
    .to_string())
}

/// `str.title`: a letter after a cased one in lower case, any other in upper case.
fn title(s: &str) -> String {
    let mut out = String::new();
    let mut prev_cased = false;
    for c in s.chars() {
        if prev_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        prev_cased = c.is_alphabetic();
    }
    out
}

/// `str.capitalize`: the first character in upper case, the rest in lower case.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(f) => f
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

/// `str.split([sep[, maxsplit]])`.
fn split(s: &str, args: &[Value]) -> Result<Vec<Value>, String> {
    let sep = str_arg(args, 0, "separator")?;
    let max = match args.get(1) {
        None => -1,
        Some(v) => match num(v) {
            Some(Num::I(i)) => i,
            _ => return Err("maxsplit must be an int".into()),
        },
    };
    Ok(match sep {
        Some("") => return Err("empty separator".into()),
        Some(sep) if max < 0 => s.split(sep).map(|p| Value::String(p.into())).collect(),
        Some(sep) => s
            .splitn(max as usize + 1, sep)
            .map(|p| Value::String(p.into()))
            .collect(),
        None => split_whitespace(s, max),
    })
}

/// `str.split(None, max)`: runs of white space, at most `max` splits (none when negative),
/// the rest kept whole.
fn split_whitespace(s: &str, max: i64) -> Vec<Value> {
    let mut parts = Vec::new();
    let mut rest = s.trim_start_matches(py_space);
    while !rest.is_empty() {
        if max >= 0 && parts.len() as i64 == max {
            parts.push(Value::String(rest.into()));
            break;
        }
        let end = rest.find(py_space).unwrap_or(rest.len());
        parts.push(Value::String(rest[..end].into()));
        rest = rest[end..].trim_start_matches(py_space);
    }
    parts
}

// ---------------------------------------------------------------------------------------
// Python's text forms

/// `repr(float)`: the shortest form that reads back, with Python's exponent rules.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sci = format!("{f:e}"); // e.g. "1.5e-7", "1e20"
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

/// A JSON number as Python writes it.
fn py_number(n: &Number) -> String {
    match n.as_i64() {
        Some(i) => i.to_string(),
        None => match n.as_u64() {
            Some(u) => u.to_string(),
            None => py_float(n.as_f64().unwrap_or(0.0)),
        },
    }
}

/// `str(x)`.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => py_repr(other),
    }
}

/// `repr(x)`.
fn py_repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => py_number(n),
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c)
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32))
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", py_repr(&Value::String(k.clone())), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// JSON as Python writes it (`json.dumps`, simplejson in the SDK's flattening): non-ASCII
/// escaped, floats in Python's form, the given separators.
pub(crate) fn dump(v: &Value, item_sep: &str, key_sep: &str, sort_keys: bool, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&py_number(n)),
        Value::String(s) => dump_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                dump(item, item_sep, key_sep, sort_keys, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            if sort_keys {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                dump_str(k, out);
                out.push_str(key_sep);
                dump(v, item_sep, key_sep, sort_keys, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string as Python's `json` writes it (non-ASCII escaped).
fn dump_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
