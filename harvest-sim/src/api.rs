//! Routing, permissions and answers of the `/v2` API (synchronous; run on a blocking thread).

use bytes::Bytes;

use crate::config::{Features, HarvestAccount};
use crate::model::{AccessRole, Data, Res};
use crate::params::{parse_paging, Filters, PageReq, Paging, ParamError, Params};
use crate::query::{render_into, write_list, Indexes, Links, Scope};
use crate::reports::{self, ReportArgs, ReportKind};
use crate::resources::{self, Feature, Member, Owner};
use crate::util::parse_date;

/// An endpoint of the API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ep {
    Company,
    UsersMe,
    MeProjectAssignments,
    /// A list; the id is the parent's (invoice, estimate, project or user) for nested lists.
    List(Res, Option<i64>),
    Single(Res, i64),
    Report(ReportKind),
}

/// A matched route: the endpoint and its template for request statistics.
#[derive(Clone, Debug)]
pub struct Route {
    pub ep: Ep,
    pub template: String,
}

/// The resource with the top-level route `/v2/{name}`.
fn top_level(s: &str) -> Option<Res> {
    Res::from_name(s).filter(|r| r.decl().top.is_some())
}

/// The resource nested as `/v2/{parent}/{id}/{segment}`.
fn nested(parent: &str, segment: &str) -> Option<Res> {
    resources::all().find(|r| {
        r.decl()
            .parent
            .as_ref()
            .is_some_and(|p| p.segment == segment && p.res.name() == parent)
    })
}

/// Matches a path below `/v2/` (GET only).
pub fn match_route(rest: &str) -> Option<Route> {
    let rest = rest.trim_end_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    let id = |s: &str| s.parse::<i64>().ok();
    let (ep, template) = match segs.as_slice() {
        ["company"] => (Ep::Company, "/v2/company".to_string()),
        ["users", "me"] => (Ep::UsersMe, "/v2/users/me".to_string()),
        ["users", "me", "project_assignments"] => (
            Ep::MeProjectAssignments,
            "/v2/users/me/project_assignments".to_string(),
        ),
        ["reports", rest @ ..] => {
            let k = ReportKind::from_path(&rest.join("/"))?;
            (Ep::Report(k), format!("/v2/reports/{}", k.path()))
        }
        [top] => {
            let r = top_level(top)?;
            (Ep::List(r, None), format!("/v2/{top}"))
        }
        [top, x] => {
            let r = top_level(top)?;
            if !r.decl().top.is_some_and(|t| t.single) {
                return None;
            }
            (Ep::Single(r, id(x)?), format!("/v2/{top}/{{id}}"))
        }
        [parent, x, segment] => {
            let r = nested(parent, segment)?;
            (
                Ep::List(r, Some(id(x)?)),
                format!("/v2/{parent}/{{id}}/{segment}"),
            )
        }
        _ => return None,
    };
    Some(Route { ep, template })
}

impl Ep {
    /// The resource an endpoint serves (for feature and role checks).
    fn res(&self) -> Option<Res> {
        match self {
            Ep::List(r, _) | Ep::Single(r, _) => Some(*r),
            _ => None,
        }
    }

    pub fn is_report(&self) -> bool {
        matches!(self, Ep::Report(_))
    }

    /// Whether this list is answered in cursor mode by default.
    pub fn cursor_capable(&self) -> bool {
        match self {
            Ep::List(r, None) => r.decl().top.is_some_and(|t| t.cursor),
            Ep::List(r, Some(_)) => r.decl().parent.as_ref().is_some_and(|p| p.cursor),
            _ => false,
        }
    }
}

/// Who is calling: the token's role and its user (an index into `Data::users`).
#[derive(Clone, Debug)]
pub struct Viewer {
    pub role: AccessRole,
    pub user: u32,
    pub token: String,
}

/// Why an endpoint answers 403, if it does.
pub fn forbidden(ep: &Ep, v: &Viewer, f: Features, d: &Data) -> Option<String> {
    let feature_off = |name: &str| Some(format!("The {name} feature is disabled for this account"));
    let needs = match ep {
        Ep::List(r, _) | Ep::Single(r, _) => r.decl().feature,
        Ep::Report(k) if k.is_expenses() => Some(Feature::Expense),
        _ => None,
    };
    match needs {
        Some(Feature::Invoice) if !f.invoice => return feature_off("invoice"),
        Some(Feature::Estimate) if !f.estimate => return feature_off("estimate"),
        Some(Feature::Expense) if !f.expense => return feature_off("expense"),
        _ => {}
    }
    let denied = || Some("You do not have permission to access this resource".to_string());
    let ok = match v.role {
        AccessRole::Administrator => true,
        AccessRole::Manager => ep.res().is_none_or(|r| r.decl().manager),
        AccessRole::Member => match ep {
            Ep::Company | Ep::UsersMe | Ep::MeProjectAssignments => true,
            Ep::List(r, parent) => match (r.decl().member, parent) {
                (Member::Yes, None) => true,
                (Member::OwnParent, Some(uid)) => *uid == d.users[v.user as usize].id,
                _ => false,
            },
            Ep::Single(r, _) => r.decl().member == Member::Yes,
            Ep::Report(k) => k.is_time() || k.is_expenses(),
        },
    };
    if ok {
        None
    } else {
        denied()
    }
}

/// The outcome of an API request before HTTP encoding.
pub enum Answer {
    Json(Bytes),
    NotFound,
    Error(ParamError),
}

/// Everything a request needs besides the data.
pub struct Ctx<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub raw_query: &'a str,
    pub params: &'a Params,
    pub viewer: &'a Viewer,
    pub features: Features,
    /// The account the request named.
    pub account: &'a HarvestAccount,
}

fn parent_scope(d: &Data, r: Res, pid: Option<i64>) -> Option<Scope> {
    let Some(pid) = pid else {
        return Some(Scope::All);
    };
    let parent = r.decl().parent.as_ref()?.res;
    let idx = (parent.decl().find)(d, pid)?;
    if d.deleted.has(parent, idx) {
        return None;
    }
    Some(Scope::Parent(idx))
}

/// Members see only their own time entries and expenses: the viewer's user, and the owner of
/// a record.
fn restricts_to_viewer(v: &Viewer, r: Res) -> Option<(u32, Owner)> {
    let owner = r.decl().owner?;
    (v.role == AccessRole::Member).then_some((v.user, owner))
}

/// Answers an authorized, permitted request.
pub fn answer(d: &Data, ix: &Indexes, ep: &Ep, cx: &Ctx) -> Answer {
    match ep {
        Ep::Company => Answer::Json(to_bytes(&crate::model::company(cx.features, cx.account))),
        Ep::UsersMe => Answer::Json(to_bytes(&crate::model::user(d, cx.viewer.user))),
        Ep::MeProjectAssignments => {
            let uid = d.users[cx.viewer.user as usize].id;
            list(d, ix, Res::ProjectAssignments, Some(uid), false, cx)
        }
        Ep::List(r, pid) => list(d, ix, *r, *pid, ep.cursor_capable(), cx),
        Ep::Single(r, id) => single(d, ix, *r, *id, cx),
        Ep::Report(k) => report(d, ix, *k, cx),
    }
}

fn to_bytes<T: serde::Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

fn single(d: &Data, ix: &Indexes, r: Res, id: i64, cx: &Ctx) -> Answer {
    let Some(idx) = crate::delete::index_of(d, r, id) else {
        return Answer::NotFound;
    };
    if let Some((v, owner)) = restricts_to_viewer(cx.viewer, r) {
        if owner(d, idx) != v {
            return Answer::NotFound;
        }
    }
    let mut out = Vec::with_capacity(1024);
    render_into(r, d, ix, idx, &mut out);
    Answer::Json(Bytes::from(out))
}

fn links_for(cx: &Ctx) -> Links {
    Links {
        prefix: format!("http://{}{}", cx.host, cx.path.trim_end_matches('/')),
        carried: cx.params.carried(),
    }
}

fn list(d: &Data, ix: &Indexes, r: Res, pid: Option<i64>, cursor: bool, cx: &Ctx) -> Answer {
    let Some(scope) = parent_scope(d, r, pid) else {
        return Answer::NotFound;
    };
    if let (Some(parent), Scope::Parent(p)) = (&r.decl().parent, scope) {
        if let Some((holds, message)) = parent.requires {
            if !holds(d, p) {
                return Answer::Error(ParamError {
                    status: 422,
                    message: message.to_string(),
                });
            }
        }
    }
    let restricted = restricts_to_viewer(cx.viewer, r);
    let viewer = restricted.map(|(v, _)| v);
    let cache_key = format!(
        "{}|{}|{}?{}",
        cx.host, cx.viewer.user, cx.path, cx.raw_query
    );
    if let Some(b) = ix.cached_page(&cache_key) {
        return Answer::Json(b);
    }
    let req = match parse_paging(cx.params, cursor) {
        Ok(p) => p,
        Err(e) => return Answer::Error(e),
    };
    let filters = match Filters::parse(r.decl().filters, cx.params) {
        Ok(f) => f,
        Err(e) => return Answer::Error(e),
    };
    let links = links_for(cx);
    let carried: Vec<String> = links
        .carried
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let qkey = format!("{r:?}|{scope:?}|{viewer:?}|{}", carried.join("&"));
    let order = ix.query(qkey, || {
        ix.base_order(d, r, scope)
            .into_iter()
            .filter(|&i| restricted.is_none_or(|(v, owner)| owner(d, i) == v))
            .filter(|&i| (r.decl().pass)(&filters, d, i))
            .collect()
    });
    let ascending = r.decl().ids_ascend;
    let body = write_list(
        r.name(),
        &order,
        req,
        &links,
        |i| (r.decl().id)(d, i),
        ascending,
        |i, out| render_into(r, d, ix, i, out),
    );
    let body = Bytes::from(body);
    ix.store_page(cache_key, body.clone());
    Answer::Json(body)
}

fn bad(msg: &str) -> Answer {
    Answer::Error(ParamError {
        status: 400,
        message: msg.to_string(),
    })
}

/// Parses `from`/`to` of a report request and enforces the one-year limit.
pub fn report_dates(p: &Params) -> Result<(crate::util::Date, crate::util::Date), ParamError> {
    let err = |m: &str| ParamError {
        status: 400,
        message: m.to_string(),
    };
    let from = p
        .get("from")
        .ok_or_else(|| err("from is required (YYYYMMDD or YYYY-MM-DD)"))?;
    let to = p
        .get("to")
        .ok_or_else(|| err("to is required (YYYYMMDD or YYYY-MM-DD)"))?;
    let from =
        parse_date(from).ok_or_else(|| err("from must be a date (YYYYMMDD or YYYY-MM-DD)"))?;
    let to = parse_date(to).ok_or_else(|| err("to must be a date (YYYYMMDD or YYYY-MM-DD)"))?;
    if reports::span_days(from, to) > 365 {
        return Err(err("Invalid timeframe: must not exceed 1 year"));
    }
    Ok((from, to))
}

/// Parses `include_fixed_fee` (default true).
pub fn include_fixed_fee(p: &Params) -> Result<bool, ParamError> {
    match p.get("include_fixed_fee") {
        None | Some("") | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(ParamError {
            status: 422,
            message: format!("include_fixed_fee must be true or false, got {v:?}"),
        }),
    }
}

fn report(d: &Data, ix: &Indexes, k: ReportKind, cx: &Ctx) -> Answer {
    let viewer = (cx.viewer.role == AccessRole::Member).then_some(cx.viewer.user);
    let cache_key = format!(
        "{}|{}|{}?{}",
        cx.host, cx.viewer.user, cx.path, cx.raw_query
    );
    if let Some(b) = ix.cached_page(&cache_key) {
        return Answer::Json(b);
    }
    let (from, to) = if k.needs_dates() {
        match report_dates(cx.params) {
            Ok(x) => x,
            Err(e) => return Answer::Error(e),
        }
    } else {
        (crate::util::Date(0), crate::util::Date(0))
    };
    let iff = match include_fixed_fee(cx.params) {
        Ok(b) => b,
        Err(e) => return Answer::Error(e),
    };
    let is_active = match cx.params.get("is_active") {
        None | Some("") => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return bad("is_active must be true or false"),
    };
    let req: PageReq = match parse_paging(cx.params, false) {
        Ok(p) => p,
        Err(e) => return Answer::Error(e),
    };
    debug_assert!(matches!(req.paging, Paging::Page(_)));
    let rows = reports::compute(
        d,
        ix,
        k,
        ReportArgs {
            from,
            to,
            include_fixed_fee: iff,
            viewer,
            is_active,
        },
    );
    let order: Vec<u32> = (0..rows.len() as u32).collect();
    let links = links_for(cx);
    let body = write_list("results", &order, req, &links, i64::from, true, |i, out| {
        let _ = serde_json::to_writer(&mut *out, &rows[i as usize]);
    });
    let body = Bytes::from(body);
    ix.store_page(cache_key, body.clone());
    Answer::Json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = match_route("invoices/13150001/messages").unwrap();
        assert_eq!(r.template, "/v2/invoices/{id}/messages");
        assert_eq!(r.ep, Ep::List(Res::InvoiceMessages, Some(13_150_001)));
        assert!(match_route("invoices/abc/messages").is_none());
        assert!(match_route("nope").is_none());
        assert_eq!(
            match_route("reports/time/clients").unwrap().ep,
            Ep::Report(ReportKind::TimeClients)
        );
        assert!(match_route("reports/time/nope").is_none());
        assert!(Ep::List(Res::Clients, None).cursor_capable());
        assert!(!Ep::List(Res::TimeEntries, None).cursor_capable());
        assert!(!Ep::List(Res::UserAssignments, Some(1)).cursor_capable());
        assert!(Ep::List(Res::UserAssignments, None).cursor_capable());
        let r = match_route("users/1782002/teammates").unwrap();
        assert_eq!(r.template, "/v2/users/{id}/teammates");
        assert_eq!(r.ep, Ep::List(Res::Teammates, Some(1_782_002)));
        assert!(r.ep.cursor_capable());
        assert!(match_route("users/me/teammates").is_none());
    }
}
