//! Request parameters: the query string, list filters, paging (page numbers and cursors) and the
//! `{"message": ...}` errors they answer with. A leaf below the resources and lists.

use base64::Engine;

use crate::util::{parse_date, parse_strict_datetime, Date, Ts};

/// A request error answered with a JSON `{"message": ...}` body.
#[derive(Debug, Clone)]
pub struct ParamError {
    pub status: u16,
    pub message: String,
}

pub fn bad(msg: impl Into<String>) -> ParamError {
    ParamError {
        status: 400,
        message: msg.into(),
    }
}

pub fn unprocessable(msg: impl Into<String>) -> ParamError {
    ParamError {
        status: 422,
        message: msg.into(),
    }
}

/// Parsed query parameters (last occurrence of a name wins), in request order.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        if let Some(q) = query {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if let Some(p) = pairs.iter_mut().find(|(pk, _)| *pk == k) {
                    p.1 = v.into_owned();
                } else {
                    pairs.push((k.into_owned(), v.into_owned()));
                }
            }
        }
        Params { pairs }
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    }
    /// Parameters to carry in links: everything but paging and credentials.
    pub fn carried(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "page" | "per_page" | "cursor" | "ref" | "access_token" | "account_id"
                )
            })
            .cloned()
            .collect()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Filters {
    pub updated_since: Option<i64>,
    pub is_active: Option<bool>,
    pub client_id: Option<i64>,
    pub project_id: Option<i64>,
    pub user_id: Option<i64>,
    pub task_id: Option<i64>,
    pub is_billed: Option<bool>,
    pub is_running: Option<bool>,
    pub state: Option<String>,
    pub external_reference_id: Option<String>,
    pub from: Option<Date>,
    pub to: Option<Date>,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ParamError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(unprocessable(format!(
            "{name} must be true or false, got {v:?}"
        ))),
    }
}

fn parse_id(name: &str, v: &str) -> Result<i64, ParamError> {
    v.parse::<i64>()
        .map_err(|_| unprocessable(format!("{name} must be an integer, got {v:?}")))
}

impl Filters {
    /// Parses the filters named (those the resource supports); others are ignored as Harvest ignores them.
    pub fn parse(names: &[&str], p: &Params) -> Result<Filters, ParamError> {
        let mut f = Filters::default();
        for &name in names {
            let Some(v) = p.get(name) else { continue };
            match name {
                "updated_since" => {
                    f.updated_since = Some(parse_strict_datetime(v).ok_or_else(|| {
                        bad(format!(
                            "updated_since must be an ISO 8601 date-time like 2024-01-01T00:00:00Z, got {v:?}"
                        ))
                    })?)
                }
                "is_active" => f.is_active = Some(parse_bool(name, v)?),
                "is_billed" => f.is_billed = Some(parse_bool(name, v)?),
                "is_running" => f.is_running = Some(parse_bool(name, v)?),
                "client_id" => f.client_id = Some(parse_id(name, v)?),
                "project_id" => f.project_id = Some(parse_id(name, v)?),
                "user_id" => f.user_id = Some(parse_id(name, v)?),
                "task_id" => f.task_id = Some(parse_id(name, v)?),
                "state" => f.state = Some(v.to_string()),
                "external_reference_id" => f.external_reference_id = Some(v.to_string()),
                "from" | "to" => {
                    let d = parse_date(v).ok_or_else(|| {
                        bad(format!("{name} must be a date like 2024-01-31, got {v:?}"))
                    })?;
                    if name == "from" {
                        f.from = Some(d);
                    } else {
                        f.to = Some(d);
                    }
                }
                _ => {}
            }
        }
        Ok(f)
    }

    pub fn date_ok(&self, d: Date) -> bool {
        self.from.is_none_or(|f| d >= f) && self.to.is_none_or(|t| d <= t)
    }

    pub fn eq_id(want: Option<i64>, have: i64) -> bool {
        want.is_none_or(|w| w == have)
    }
    /// `updated_since` passes `u`.
    pub fn since(&self, u: Ts) -> bool {
        self.updated_since.is_none_or(|s| u.0 >= s)
    }

    /// `is_active` passes `a`.
    pub fn active(&self, a: bool) -> bool {
        self.is_active.is_none_or(|w| w == a)
    }
}

/// How the client asked to page.
#[derive(Clone, Copy, Debug)]
pub enum Paging {
    Page(u32),
    CursorStart,
    After(i64),
    Before(i64),
}

#[derive(Clone, Copy, Debug)]
pub struct PageReq {
    pub per_page: u32,
    pub paging: Paging,
}

/// Parses `per_page`, `page` and `cursor`. Page-only endpoints ignore `cursor`.
pub fn parse_paging(p: &Params, cursor_capable: bool) -> Result<PageReq, ParamError> {
    let per_page = match p.get("per_page") {
        None | Some("") => 2000,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=2000).contains(&n) => n as u32,
            _ => {
                return Err(unprocessable(format!(
                    "per_page must be between 1 and 2000, got {v:?}"
                )))
            }
        },
    };
    let page = match p.get("page") {
        None | Some("") => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 && n <= u32::MAX as i64 => Some(n as u32),
            _ => {
                return Err(unprocessable(format!(
                    "page must be a positive integer, got {v:?}"
                )))
            }
        },
    };
    let cursor = if cursor_capable {
        p.get("cursor").filter(|c| !c.is_empty())
    } else {
        None
    };
    let paging = match (cursor, page) {
        (Some(c), _) => decode_cursor(c)?,
        (None, Some(n)) => Paging::Page(n),
        (None, None) if cursor_capable => Paging::CursorStart,
        (None, None) => Paging::Page(1),
    };
    Ok(PageReq { per_page, paging })
}

pub fn encode_cursor(dir: &str, id: i64) -> String {
    let raw = format!("{{\"{dir}\":{{\"id\":{id}}}}}");
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_cursor(c: &str) -> Result<Paging, ParamError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let raw = STANDARD
        .decode(c)
        .or_else(|_| STANDARD_NO_PAD.decode(c))
        .or_else(|_| URL_SAFE.decode(c))
        .or_else(|_| URL_SAFE_NO_PAD.decode(c))
        .map_err(|_| bad("Invalid cursor"))?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad("Invalid cursor"))?;
    if let Some(id) = v.pointer("/after/id").and_then(|x| x.as_i64()) {
        return Ok(Paging::After(id));
    }
    if let Some(id) = v.pointer("/before/id").and_then(|x| x.as_i64()) {
        return Ok(Paging::Before(id));
    }
    Err(bad("Invalid cursor"))
}
