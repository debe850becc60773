//! Routing, permissions and answers of the `/v2` API (synchronous; run on a blocking thread).

use bytes::Bytes;

use crate::config::Features;
use crate::model::{id_of, AccessRole, Data, Res};
use crate::query::{
    parse_paging, render_into, write_list, Filters, Indexes, Links, PageReq, Paging, ParamError,
    Params, Scope,
};
use crate::reports::{self, ReportArgs, ReportKind};
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

fn top_level(s: &str) -> Option<Res> {
    Some(match s {
        "users" => Res::Users,
        "roles" => Res::Roles,
        "clients" => Res::Clients,
        "contacts" => Res::Contacts,
        "projects" => Res::Projects,
        "tasks" => Res::Tasks,
        "task_assignments" => Res::TaskAssignments,
        "user_assignments" => Res::UserAssignments,
        "invoice_item_categories" => Res::InvoiceItemCategories,
        "estimate_item_categories" => Res::EstimateItemCategories,
        "invoices" => Res::Invoices,
        "estimates" => Res::Estimates,
        "expense_categories" => Res::ExpenseCategories,
        "expenses" => Res::Expenses,
        "time_entries" => Res::TimeEntries,
        _ => return None,
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
            if matches!(r, Res::TaskAssignments | Res::UserAssignments) {
                return None;
            }
            (Ep::Single(r, id(x)?), format!("/v2/{top}/{{id}}"))
        }
        ["invoices", x, "messages"] => (
            Ep::List(Res::InvoiceMessages, Some(id(x)?)),
            "/v2/invoices/{id}/messages".to_string(),
        ),
        ["invoices", x, "payments"] => (
            Ep::List(Res::InvoicePayments, Some(id(x)?)),
            "/v2/invoices/{id}/payments".to_string(),
        ),
        ["estimates", x, "messages"] => (
            Ep::List(Res::EstimateMessages, Some(id(x)?)),
            "/v2/estimates/{id}/messages".to_string(),
        ),
        ["projects", x, "user_assignments"] => (
            Ep::List(Res::UserAssignments, Some(id(x)?)),
            "/v2/projects/{id}/user_assignments".to_string(),
        ),
        ["projects", x, "task_assignments"] => (
            Ep::List(Res::TaskAssignments, Some(id(x)?)),
            "/v2/projects/{id}/task_assignments".to_string(),
        ),
        ["users", x, "billable_rates"] => (
            Ep::List(Res::BillableRates, Some(id(x)?)),
            "/v2/users/{id}/billable_rates".to_string(),
        ),
        ["users", x, "cost_rates"] => (
            Ep::List(Res::CostRates, Some(id(x)?)),
            "/v2/users/{id}/cost_rates".to_string(),
        ),
        ["users", x, "project_assignments"] => (
            Ep::List(Res::ProjectAssignments, Some(id(x)?)),
            "/v2/users/{id}/project_assignments".to_string(),
        ),
        ["users", x, "teammates"] => (
            Ep::List(Res::Teammates, Some(id(x)?)),
            "/v2/users/{id}/teammates".to_string(),
        ),
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
            Ep::List(r, parent) => match r {
                Res::TimeEntries | Res::Expenses | Res::Invoices | Res::Estimates => false,
                Res::UserAssignments | Res::TaskAssignments => parent.is_none(),
                _ => true,
            },
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
    if let Some(r) = ep.res() {
        match r {
            Res::Invoices
            | Res::InvoiceMessages
            | Res::InvoicePayments
            | Res::InvoiceItemCategories
                if !f.invoice =>
            {
                return feature_off("invoice")
            }
            Res::Estimates | Res::EstimateMessages | Res::EstimateItemCategories if !f.estimate => {
                return feature_off("estimate")
            }
            Res::Expenses | Res::ExpenseCategories if !f.expense => return feature_off("expense"),
            _ => {}
        }
    }
    if let Ep::Report(k) = ep {
        if k.is_expenses() && !f.expense {
            return feature_off("expense");
        }
    }
    let denied = || Some("You do not have permission to access this resource".to_string());
    match v.role {
        AccessRole::Administrator => None,
        AccessRole::Manager => match ep.res() {
            Some(
                Res::Roles
                | Res::EstimateItemCategories
                | Res::CostRates
                | Res::ExpenseCategories
                | Res::Teammates,
            ) => denied(),
            _ => None,
        },
        AccessRole::Member => {
            let own_id = d.users[v.user as usize].id;
            let ok = match ep {
                Ep::Company | Ep::UsersMe | Ep::MeProjectAssignments => true,
                Ep::List(Res::ProjectAssignments, Some(uid)) => *uid == own_id,
                Ep::List(Res::Tasks | Res::TimeEntries | Res::Expenses, None) => true,
                Ep::Single(Res::Tasks | Res::TimeEntries | Res::Expenses, _) => true,
                Ep::Report(k) => k.is_time() || k.is_expenses(),
                _ => false,
            };
            if ok {
                None
            } else {
                denied()
            }
        }
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
}

fn parent_scope(d: &Data, r: Res, pid: Option<i64>) -> Option<Scope> {
    let Some(pid) = pid else {
        return Some(Scope::All);
    };
    let idx = match r {
        Res::InvoiceMessages | Res::InvoicePayments => d.invoice_idx(pid),
        Res::EstimateMessages => d.estimate_idx(pid),
        Res::UserAssignments | Res::TaskAssignments => d.project_idx(pid),
        Res::BillableRates | Res::CostRates | Res::ProjectAssignments | Res::Teammates => {
            d.user_idx(pid)
        }
        _ => None,
    }?;
    let parent = match r {
        Res::InvoiceMessages | Res::InvoicePayments => Res::Invoices,
        Res::EstimateMessages => Res::Estimates,
        Res::UserAssignments | Res::TaskAssignments => Res::Projects,
        _ => Res::Users,
    };
    if d.deleted.has(parent, idx) {
        return None;
    }
    Some(Scope::Parent(idx))
}

/// Members see only their own time entries and expenses.
fn restricts_to_viewer(v: &Viewer, r: Res) -> Option<u32> {
    (v.role == AccessRole::Member && matches!(r, Res::TimeEntries | Res::Expenses))
        .then_some(v.user)
}

/// Answers an authorized, permitted request.
pub fn answer(d: &Data, ix: &Indexes, ep: &Ep, cx: &Ctx) -> Answer {
    match ep {
        Ep::Company => Answer::Json(to_bytes(&crate::render::company(cx.features))),
        Ep::UsersMe => Answer::Json(to_bytes(&crate::render::user(d, cx.viewer.user))),
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
    if let Some(v) = restricts_to_viewer(cx.viewer, r) {
        let owner = match r {
            Res::TimeEntries => d.te_user(&d.time_entries[idx as usize]),
            _ => d.ex_user(&d.expenses[idx as usize]),
        };
        if owner != v {
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
    if let (Res::Teammates, Scope::Parent(u)) = (r, scope) {
        if d.users[u as usize].access != AccessRole::Manager {
            return Answer::Error(ParamError {
                status: 422,
                message: "Teammates can only be listed for a user with the manager role"
                    .to_string(),
            });
        }
    }
    let viewer = restricts_to_viewer(cx.viewer, r);
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
    let filters = match Filters::parse(r, cx.params) {
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
            .filter(|&i| filters.pass(d, r, i, viewer))
            .collect()
    });
    let ascending = matches!(r, Res::BillableRates | Res::CostRates);
    let body = write_list(
        r.key(),
        &order,
        req,
        &links,
        |i| id_of(d, r, i),
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
