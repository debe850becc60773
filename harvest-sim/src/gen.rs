//! The deterministic account generator.
//!
//! A seed and a [`Size`] decide every record. All timestamps fall in
//! 2019-01-01T00:00:00Z ..= 2026-06-30T23:59:59Z regardless of the wall clock. Each kind of record
//! draws from its own random stream, so changing one generator does not reshuffle the others.

use std::borrow::Cow;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Size;
use crate::model::*;
use crate::util::{mul_hundredths, percent_of, Date, Ts};

/// First instant of generated data.
pub const DATA_START: i64 = 1_546_300_800; // 2019-01-01T00:00:00Z
/// Last instant of generated data.
pub const DATA_END: i64 = 1_782_863_999; // 2026-06-30T23:59:59Z

/// Record counts a size aims at.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    pub users: usize,
    pub roles: usize,
    pub clients: usize,
    pub contacts: usize,
    pub projects: usize,
    pub tasks: usize,
    pub expense_categories: usize,
    pub invoice_item_categories: usize,
    pub estimate_item_categories: usize,
    pub time_entries: usize,
    pub expenses: usize,
    pub invoices: usize,
    pub estimates: usize,
    pub users_per_project: (usize, usize),
    pub tasks_per_project: (usize, usize),
}

impl Size {
    pub fn scale(self) -> Scale {
        match self {
            Size::Tiny => Scale {
                users: 4,
                roles: 3,
                clients: 3,
                contacts: 6,
                projects: 5,
                tasks: 6,
                expense_categories: 4,
                invoice_item_categories: 3,
                estimate_item_categories: 3,
                time_entries: 40,
                expenses: 12,
                invoices: 6,
                estimates: 4,
                users_per_project: (2, 4),
                tasks_per_project: (2, 4),
            },
            Size::Small => Scale {
                users: 25,
                roles: 6,
                clients: 60,
                contacts: 2_150,
                projects: 150,
                tasks: 30,
                expense_categories: 10,
                invoice_item_categories: 6,
                estimate_item_categories: 5,
                time_entries: 12_000,
                expenses: 2_500,
                invoices: 2_200,
                estimates: 300,
                users_per_project: (2, 6),
                tasks_per_project: (2, 6),
            },
            Size::Medium => Scale {
                users: 200,
                roles: 10,
                clients: 600,
                contacts: 12_000,
                projects: 1_500,
                tasks: 80,
                expense_categories: 20,
                invoice_item_categories: 8,
                estimate_item_categories: 6,
                time_entries: 200_000,
                expenses: 40_000,
                invoices: 36_000,
                estimates: 5_000,
                users_per_project: (2, 8),
                tasks_per_project: (2, 6),
            },
            Size::Large => Scale {
                users: 800,
                roles: 12,
                clients: 3_000,
                contacts: 50_000,
                projects: 7_500,
                tasks: 120,
                expense_categories: 25,
                invoice_item_categories: 10,
                estimate_item_categories: 8,
                time_entries: 1_000_000,
                expenses: 200_000,
                invoices: 180_000,
                estimates: 25_000,
                users_per_project: (2, 8),
                tasks_per_project: (2, 6),
            },
        }
    }
}

const FIRST_NAMES: &[&str] = &[
    "Ada", "Bruno", "Chloé", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Liam", "Maya", "Nikolai", "Olga", "Priya", "Quentin", "Rosa", "Sven", "Tariq", "Uma",
    "Victor", "Wen", "Ximena", "Yusuf", "Zoë", "Amara", "Bao", "Carmen", "Deniz", "Emeka", "Freya",
    "Gustavo", "Hana", "Ivan", "Jun", "Kofi", "Lucía", "Mateo", "Noor",
];
const LAST_NAMES: &[&str] = &[
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Petrov",
    "Santos",
    "Haddad",
    "Hopper",
    "Tanaka",
    "García",
    "Becker",
    "Adeyemi",
    "O'Brien",
    "Patel",
    "Volkov",
    "Nowak",
    "Iyer",
    "Dubois",
    "Ferreira",
    "Larsen",
    "Rahman",
    "Chen",
    "Kowalski",
    "Müller",
    "Rossi",
    "Nguyen",
    "Schmidt",
    "Kaya",
    "Mensah",
    "Silva",
    "Park",
];
const TIMEZONES: &[&str] = &[
    "Eastern Time (US & Canada)",
    "Pacific Time (US & Canada)",
    "Mountain Time (US & Canada)",
    "London",
    "Berlin",
    "Tokyo",
    "UTC",
];
const ROLE_NAMES: &[&str] = &[
    "Developer",
    "Designer",
    "Sales",
    "Management",
    "QA",
    "Support",
    "Marketing",
    "Finance",
    "Operations",
    "Research",
    "Legal",
    "Contractors",
];
const MANAGER_ADDONS: &[&[&str]] = &[
    &[
        "project_creator",
        "billable_rates_manager",
        "managed_projects_invoice_drafter",
    ],
    &["project_creator"],
    &[],
    &[
        "time_and_expenses_manager",
        "client_and_task_manager",
        "estimates_manager",
    ],
];
const CLIENT_WORDS_A: &[&str] = &[
    "Blue", "Northern", "Golden", "Silver", "Red", "Quiet", "Rapid", "Bright", "Iron", "Green",
    "Coastal", "Summit", "Urban", "Lucky", "Prime",
];
const CLIENT_WORDS_B: &[&str] = &[
    "Harbor", "Pine", "Falcon", "River", "Forge", "Lantern", "Orchard", "Anchor", "Beacon",
    "Meadow", "Canyon", "Circuit", "Maple", "Harvest", "Comet",
];
const CLIENT_SUFFIX: &[&str] = &["Ltd", "Inc.", "GmbH", "& Co", "LLC", "S.A.", "Group", ""];
const STREETS: &[&str] = &[
    "1 Main St\r\nSpringfield, IL 62701",
    "742 Evergreen Terrace\nSpringfield",
    "Unter den Linden 5\n10117 Berlin",
    "221B Baker Street\nLondon NW1 6XE",
    "",
];
const CONTACT_TITLES: &[&str] = &["CFO", "CEO", "Accounts Payable", "Project Lead", "", "CTO"];
const PROJECT_WORDS: &[&str] = &[
    "Website Redesign",
    "Online Store",
    "Mobile App",
    "Brand Refresh",
    "Data Migration",
    "Annual Audit",
    "Marketing Campaign",
    "Support Retainer",
    "API Integration",
    "Office Move",
    "Security Review",
    "Analytics Dashboard",
];
const TASK_NAMES: &[&str] = &[
    "Design",
    "Development",
    "Project Management",
    "Research",
    "Meetings",
    "Quality Assurance",
    "Copywriting",
    "Support",
    "Consulting",
    "Training",
    "Travel",
    "Documentation",
];
const INVOICE_CATEGORIES: &[(&str, bool, bool)] = &[
    ("Service", true, false),
    ("Product", false, false),
    ("Expense", false, true),
    ("Hours", true, false),
    ("Travel", false, true),
    ("Materials", false, false),
    ("Licence", false, false),
    ("Hosting", false, false),
    ("Retainer", true, false),
    ("Discount", false, false),
];
const ESTIMATE_CATEGORIES: &[&str] = &[
    "Service",
    "Product",
    "Design",
    "Consulting",
    "Hardware",
    "Support",
    "Licence",
    "Training",
];
const EXPENSE_CATEGORIES: &[(&str, Option<&str>, Option<i64>)] = &[
    ("Meals", None, None),
    ("Mileage", Some("mile"), Some(50)),
    ("Lodging", None, None),
    ("Transportation", None, None),
    ("Entertainment", None, None),
    ("Kilometres", Some("km"), Some(35)),
    ("Software", None, None),
    ("Per diem", Some("day"), Some(4500)),
    ("Office supplies", None, None),
    ("Conference fees", None, None),
];
const TE_NOTES: &[&str] = &[
    "CSS work",
    "Weekly sync with the client",
    "Fixed checkout bug",
    "",
    "Wireframes for the landing page",
    "Code review",
    "Émigré résumé copy — naïve café edits",
    "Database index tuning",
    "Sprint planning\nand retro",
    "Call with \"Finance\" about the budget",
    "Deployment",
    "Research: competitor pricing",
];
const EXPENSE_NOTES: &[&str] = &[
    "Lunch with client",
    "Taxi to airport",
    "Hotel, 2 nights",
    "",
    "Team dinner",
    "Conference ticket",
    "Train tickets",
    "Printer toner",
];
const INVOICE_SUBJECTS: &[&str] = &[
    "Phase 1",
    "Monthly retainer",
    "Design services",
    "Development sprint",
    "Hosting and maintenance",
    "",
    "Consulting — Q3",
];
const LINE_DESCRIPTIONS: &[&str] = &[
    "Design work",
    "Development hours",
    "Project management",
    "Hosting (12 months)",
    "Domain renewal",
    "Workshop day",
    "[MW] Website: Design (06/01/2024 – 06/30/2024)",
    "Travel expenses",
];
const MESSAGE_BODIES: &[&str] = &[
    "---------------------------------------------\r\nInvoice Summary\r\n---------------------------------------------\r\nPlease find the invoice attached.",
    "Hi, a friendly reminder that this invoice is due.",
    "Thank you for your payment!",
    "Please review the attached document.",
];
const ESTIMATE_BODIES: &[&str] = &[
    "Hello,\r\n\r\nPlease find our estimate attached. Let us know if you have questions.",
    "Here is the revised estimate we discussed.",
    "",
];
const PAYMENT_NOTES: &[&str] = &[
    "Paid by phone",
    "Wire transfer",
    "",
    "Paid by check #1042",
    "Partial payment",
];
const PAYMENT_GATEWAYS: &[&str] = &["Stripe", "PayPal", "Authorize.Net", "Square"];
const PAYMENT_OPTIONS: &[&[&str]] = &[&["credit_card"], &[], &["ach", "credit_card"], &["paypal"]];
const SERVICES: &[&str] = &[
    "github.com",
    "trello.com",
    "app.asana.com",
    "tracker.example",
];
const RECEIPTS: &[Receipt] = &[
    Receipt {
        file_name: "receipt.gif",
        file_size: 39_410,
        content_type: "image/gif",
    },
    Receipt {
        file_name: "taxi.pdf",
        file_size: 120_533,
        content_type: "application/pdf",
    },
    Receipt {
        file_name: "IMG_2041.jpg",
        file_size: 2_483_201,
        content_type: "image/jpeg",
    },
];

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, v: &'a [T]) -> &'a T {
    &v[rng.random_range(0..v.len())]
}

fn ts_between(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// A later "updated_at": often equal to created_at, sometimes days or months later.
fn updated_after(rng: &mut ChaCha8Rng, created: i64) -> Ts {
    let roll: f64 = rng.random();
    let delta = if roll < 0.45 {
        0
    } else if roll < 0.8 {
        rng.random_range(1..86_400 * 3)
    } else {
        rng.random_range(86_400..86_400 * 400)
    };
    if created + delta > DATA_END {
        return Ts(ts_between(rng, created.min(DATA_END), DATA_END));
    }
    Ts(created + delta)
}

/// Money-ish amount in hundredths: integral most of the time, fractional otherwise.
fn money(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    let whole = rng.random_range(lo..=hi);
    if rng.random_bool(0.5) {
        whole * 100
    } else {
        whole * 100 + [50, 25, 99, 5, 75][rng.random_range(0..5)]
    }
}

const RATES: &[i64] = &[
    7500, 9000, 10000, 10050, 12000, 12500, 15000, 8575, 11000, 9500,
];

fn rate(rng: &mut ChaCha8Rng) -> i64 {
    *pick(rng, RATES)
}

/// Generates the whole account.
pub fn generate(seed: u64, size: Size) -> Data {
    let sc = size.scale();
    let mut d = Data::default();
    gen_users(&mut d, seed, &sc);
    gen_roles(&mut d, seed, &sc);
    gen_clients(&mut d, seed, &sc);
    gen_contacts(&mut d, seed, &sc);
    gen_tasks(&mut d, seed, &sc);
    gen_projects(&mut d, seed, &sc);
    gen_assignments(&mut d, seed, &sc);
    gen_rates(&mut d, seed);
    gen_categories(&mut d, seed, &sc);
    gen_estimates(&mut d, seed, &sc);
    gen_invoices(&mut d, seed, &sc);
    gen_time_entries(&mut d, seed, &sc);
    gen_expenses(&mut d, seed, &sc);
    // Last, from its own stream: nothing generated before depends on teammates.
    gen_teammates(&mut d, seed);
    for r in crate::resources::all() {
        if let Some(generate) = r.decl().generate {
            generate(&mut d, seed, size);
        }
    }
    d.max_ts = max_timestamp(&d);
    d
}

/// Sorts generated records by creation time and gives them ascending ids.
fn assign_ids<T>(v: &mut [T], base: i64, created: impl Fn(&T) -> i64, set: impl Fn(&mut T, i64)) {
    v.sort_by_key(&created);
    for (i, x) in v.iter_mut().enumerate() {
        set(x, base + i as i64);
    }
}

fn gen_users(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 1);
    let n = sc.users.max(3);
    let mut created: Vec<i64> = (0..n)
        .map(|i| {
            if i < 3 {
                DATA_START + 86_400 * (i as i64 * 3 + 1) + 3_600 * 9
            } else {
                ts_between(&mut rng, DATA_START + 86_400 * 30, DATA_END - 86_400 * 200)
            }
        })
        .collect();
    created.sort();
    for (i, &c) in created.iter().enumerate() {
        let first = FIRST_NAMES[(i * 7 + seed as usize) % FIRST_NAMES.len()];
        let last = LAST_NAMES[(i * 11 + seed as usize / 3) % LAST_NAMES.len()];
        let access = match i {
            0 => AccessRole::Administrator,
            1 => AccessRole::Manager,
            2 | 3 => AccessRole::Member,
            _ => {
                let r: f64 = rng.random();
                if r < 0.1 {
                    AccessRole::Administrator
                } else if r < 0.3 {
                    AccessRole::Manager
                } else {
                    AccessRole::Member
                }
            }
        };
        let addons = if access == AccessRole::Manager {
            if i == 1 {
                MANAGER_ADDONS[0]
            } else {
                *pick(&mut rng, MANAGER_ADDONS)
            }
        } else {
            &[]
        };
        let ascii_first: String = first
            .chars()
            .map(|c| match c {
                'é' => 'e',
                'ë' => 'e',
                'ö' | 'ø' => 'o',
                'ü' => 'u',
                'í' => 'i',
                c => c,
            })
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        let ascii_last: String = last
            .chars()
            .map(|c| match c {
                'í' => 'i',
                'ü' => 'u',
                c => c,
            })
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_lowercase();
        let is_active = i < 4 || rng.random_bool(0.85);
        d.users.push(User {
            id: 1_782_001 + i as i64,
            first_name: Cow::Borrowed(first),
            last_name: Cow::Borrowed(last),
            email: format!("{ascii_first}.{ascii_last}{i}@example.com"),
            telephone: if rng.random_bool(0.3) {
                Cow::Owned(format!("+1 555 01{:02}", i % 100))
            } else {
                Cow::Borrowed("")
            },
            timezone: TIMEZONES[rng.random_range(0..TIMEZONES.len())],
            has_access_to_all_future_projects: access == AccessRole::Administrator
                || rng.random_bool(0.2),
            is_contractor: i == 3 || (i > 3 && rng.random_bool(0.15)),
            is_active,
            weekly_capacity: *pick(&mut rng, &[126_000, 144_000, 72_000, 108_000]),
            default_hourly_rate: None,
            cost_rate: None,
            access,
            addons,
            calendar_integration_enabled: rng.random_bool(0.3),
            clock24: i % 2 == 1,
            created_at: Ts(c),
            updated_at: updated_after(&mut rng, c),
        });
    }
}

fn gen_roles(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 2);
    let n_users = d.users.len();
    let mut roles: Vec<Role> = (0..sc.roles)
        .map(|i| {
            let c = ts_between(&mut rng, DATA_START + 86_400, DATA_END - 86_400 * 100);
            // The last role of the account is left empty: `user_ids: []` happens.
            let users = if i + 1 == sc.roles {
                Vec::new()
            } else {
                let k = rng.random_range(1..=(n_users / 3).max(2)).min(n_users);
                let mut all: Vec<u32> = (0..n_users as u32).collect();
                all.shuffle(&mut rng);
                let mut v: Vec<u32> = all.into_iter().take(k).collect();
                v.sort();
                v
            };
            Role {
                id: 0,
                name: Cow::Borrowed(ROLE_NAMES[i % ROLE_NAMES.len()]),
                users,
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            }
        })
        .collect();
    assign_ids(&mut roles, 617_630, |r| r.created_at.0, |r, id| r.id = id);
    d.roles = roles;
}

fn gen_clients(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 3);
    let mut clients: Vec<Client> = (0..sc.clients)
        .map(|i| {
            let c = if i < 3 {
                DATA_START + 86_400 * (i as i64 * 5 + 2)
            } else {
                ts_between(&mut rng, DATA_START + 86_400 * 10, DATA_END - 86_400 * 120)
            };
            let a = CLIENT_WORDS_A[i % CLIENT_WORDS_A.len()];
            let b = CLIENT_WORDS_B[(i / CLIENT_WORDS_A.len() + i * 3) % CLIENT_WORDS_B.len()];
            let s = CLIENT_SUFFIX[(i * 5) % CLIENT_SUFFIX.len()];
            let round = i / (CLIENT_WORDS_A.len() * CLIENT_WORDS_B.len());
            let mut name = if s.is_empty() {
                format!("{a} {b}")
            } else {
                format!("{a} {b} {s}")
            };
            if round > 0 {
                name.push_str(&format!(" {}", round + 1));
            }
            let currency = match i {
                0 => "USD",
                1 => "EUR",
                2 => "USD",
                _ => {
                    let r: f64 = rng.random();
                    if r < 0.7 {
                        "USD"
                    } else if r < 0.85 {
                        "EUR"
                    } else if r < 0.95 {
                        "GBP"
                    } else {
                        "CAD"
                    }
                }
            };
            let address = if i % 4 == 3 {
                None
            } else {
                Some(Cow::Borrowed(*pick(&mut rng, STREETS)))
            };
            Client {
                id: 0,
                name: Cow::Owned(name),
                is_active: i < 3 || rng.random_bool(0.85),
                address,
                currency,
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            }
        })
        .collect();
    assign_ids(
        &mut clients,
        5_735_001,
        |c| c.created_at.0,
        |c, id| c.id = id,
    );
    d.clients = clients;
}

fn gen_contacts(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 4);
    let mut contacts: Vec<Contact> = (0..sc.contacts)
        .map(|i| {
            let (client, cc) = client_for(d, &mut rng, i);
            let c = ts_between(&mut rng, cc + 600, DATA_END - 86_400);
            let first = *pick(&mut rng, FIRST_NAMES);
            let last = *pick(&mut rng, LAST_NAMES);
            let email = format!(
                "{}{}@client{}.example.com",
                first
                    .chars()
                    .filter(|c| c.is_ascii_alphabetic())
                    .collect::<String>()
                    .to_lowercase(),
                i,
                client
            );
            Contact {
                id: 0,
                client,
                title: Cow::Borrowed(*pick(&mut rng, CONTACT_TITLES)),
                first_name: first,
                last_name: if i % 9 == 4 { "" } else { last },
                email,
                phone_office: if rng.random_bool(0.5) {
                    Cow::Owned(format!("+1 555 2{:03}", i % 1000))
                } else {
                    Cow::Borrowed("")
                },
                phone_mobile: if rng.random_bool(0.3) {
                    Cow::Owned(format!("+1 555 7{:03}", i % 1000))
                } else {
                    Cow::Borrowed("")
                },
                fax: "",
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            }
        })
        .collect();
    assign_ids(
        &mut contacts,
        4_706_001,
        |c| c.created_at.0,
        |c, id| c.id = id,
    );
    d.contacts = contacts;
}

fn gen_tasks(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 5);
    let mut tasks: Vec<Task> = (0..sc.tasks)
        .map(|i| {
            let base = TASK_NAMES[i % TASK_NAMES.len()];
            let round = i / TASK_NAMES.len();
            let name = if round == 0 {
                Cow::Borrowed(base)
            } else {
                Cow::Owned(format!("{base} {}", round + 1))
            };
            let c = if i < 4 {
                DATA_START + 3_600 * (i as i64 + 10)
            } else {
                ts_between(&mut rng, DATA_START + 86_400, DATA_END - 86_400 * 300)
            };
            Task {
                id: 0,
                name,
                billable_by_default: i % 5 != 4,
                default_hourly_rate: if i % 6 == 5 {
                    None
                } else {
                    Some(rate(&mut rng))
                },
                is_default: i < 4,
                is_active: i < 6 || rng.random_bool(0.8),
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            }
        })
        .collect();
    assign_ids(&mut tasks, 8_083_001, |t| t.created_at.0, |t, id| t.id = id);
    d.tasks = tasks;
}

fn gen_projects(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 6);
    let mut projects: Vec<Project> = (0..sc.projects)
        .map(|i| new_project(d, &mut rng, i))
        .collect();
    assign_ids(
        &mut projects,
        14_307_001,
        |p| p.created_at.0,
        |p, id| p.id = id,
    );
    d.projects = projects;
}

/// How the `i`-th project is budgeted, and its budget.
fn project_budget(rng: &mut ChaCha8Rng, i: usize) -> (&'static str, Option<i64>) {
    let budget_by = match i % 7 {
        0 => "project",
        1 => "project_cost",
        2 => "task",
        3 => "task_fees",
        4 => "person",
        _ => "none",
    };
    let budget = if budget_by == "none" {
        None
    } else if budget_by == "project_cost" || budget_by == "task_fees" {
        Some(money(rng, 2_000, 90_000))
    } else {
        Some(rng.random_range(20..800) * 100 + if i % 3 == 0 { 50 } else { 0 })
    };
    (budget_by, budget)
}

/// The `i`-th project's name and code (initials and number; none for every fourth).
fn project_name_code(i: usize) -> (String, String) {
    let word = PROJECT_WORDS[i % PROJECT_WORDS.len()];
    let round = i / PROJECT_WORDS.len();
    let name = if round == 0 {
        word.to_string()
    } else {
        format!("{word} {}", round + 1)
    };
    let code = if i % 4 == 3 {
        String::new()
    } else {
        let initials: String = word
            .split_whitespace()
            .filter_map(|w| w.chars().next())
            .collect();
        format!("{initials}{}", i + 1)
    };
    (name, code)
}

/// The client of the `i`-th record of a kind (every client once, then at random) and when
/// the client was created.
fn client_for(d: &Data, rng: &mut ChaCha8Rng, i: usize) -> (u32, i64) {
    let nc = d.clients.len();
    let client = if i < nc {
        i as u32
    } else {
        rng.random_range(0..nc) as u32
    };
    (client, d.clients[client as usize].created_at.0)
}

/// The `i`-th project, before its id.
fn new_project(d: &Data, rng: &mut ChaCha8Rng, i: usize) -> Project {
    let (client, cc) = client_for(d, rng, i);
    let c = ts_between(
        rng,
        cc + 3_600,
        (cc + 86_400 * 900).min(DATA_END - 86_400 * 60),
    );
    let is_fixed_fee = i % 5 == 2;
    let bill_by = if is_fixed_fee {
        if i % 2 == 0 {
            "Project"
        } else {
            "none"
        }
    } else {
        *pick(rng, &["Project", "Tasks", "People", "Tasks"])
    };
    let (budget_by, budget) = project_budget(rng, i);
    let (name, code) = project_name_code(i);
    let starts = if i % 3 == 1 {
        None
    } else {
        Some(Date::of_ts(c))
    };
    Project {
        id: 0,
        client,
        name: Cow::Owned(name),
        code: Cow::Owned(code),
        is_active: i < 5 || rng.random_bool(0.8),
        is_billable: i % 9 != 8,
        is_fixed_fee,
        bill_by,
        hourly_rate: if bill_by == "Project" {
            Some(rate(rng))
        } else {
            None
        },
        budget,
        budget_by,
        budget_is_monthly: budget.is_some() && i % 11 == 0,
        notify_when_over_budget: budget.is_some() && rng.random_bool(0.6),
        over_budget_notification_percentage: *pick(rng, &[8000, 9000, 7550]),
        over_budget_notification_date: if i % 13 == 6 {
            Some(Date::of_ts(c + 86_400 * 40))
        } else {
            None
        },
        show_budget_to_all: rng.random_bool(0.3),
        cost_budget: if i % 6 == 1 {
            Some(money(rng, 1_000, 40_000))
        } else {
            None
        },
        cost_budget_include_expenses: i % 12 == 1,
        fee: if is_fixed_fee {
            Some(money(rng, 1_000, 60_000))
        } else {
            None
        },
        notes: Cow::Borrowed(if i % 2 == 0 { "" } else { "Kick-off in week 1" }),
        starts_on: starts,
        ends_on: if i % 5 == 4 {
            Some(Date::of_ts(c + 86_400 * 365))
        } else {
            None
        },
        created_at: Ts(c),
        updated_at: updated_after(rng, c),
    }
}

fn gen_assignments(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 7);
    let nt = d.tasks.len();
    let nu = d.users.len();
    let mut tas = Vec::new();
    let mut uas = Vec::new();
    for (pi, p) in d.projects.iter().enumerate() {
        let pc = p.created_at.0;
        // Task assignments.
        let k = rng
            .random_range(sc.tasks_per_project.0..=sc.tasks_per_project.1)
            .min(nt);
        let mut tlist: Vec<usize> = (0..nt).collect();
        tlist.shuffle(&mut rng);
        for &t in tlist.iter().take(k) {
            let task = &d.tasks[t];
            let c = pc + rng.random_range(1..3_600);
            tas.push(TaskAssignment {
                id: 0,
                project: pi as u32,
                task: t as u32,
                billable: task.billable_by_default && p.is_billable,
                is_active: task.is_active || rng.random_bool(0.5),
                hourly_rate: if p.bill_by == "Tasks" {
                    Some(task.default_hourly_rate.unwrap_or(10_000))
                } else if rng.random_bool(0.3) {
                    None
                } else {
                    task.default_hourly_rate
                },
                budget: if p.budget_by == "task" && rng.random_bool(0.7) {
                    Some(rng.random_range(5..200) * 100)
                } else if p.budget_by == "task_fees" {
                    Some(money(&mut rng, 500, 9_000))
                } else {
                    None
                },
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            });
        }
        // User assignments: the first three users (the token holders) are on many projects.
        let k = rng
            .random_range(sc.users_per_project.0..=sc.users_per_project.1)
            .min(nu);
        let mut chosen: Vec<usize> = Vec::new();
        for u in 0..3.min(nu) {
            let p_on = if nu <= 4 { 0.8 } else { 0.5 };
            if pi < 2 || rng.random_bool(p_on) {
                chosen.push(u);
            }
        }
        let mut ulist: Vec<usize> = (0..nu).collect();
        ulist.shuffle(&mut rng);
        for u in ulist {
            if chosen.len() >= k.max(1) {
                break;
            }
            if !chosen.contains(&u) {
                chosen.push(u);
            }
        }
        for &u in &chosen {
            let user = &d.users[u];
            let c = pc.max(user.created_at.0) + rng.random_range(60..7_200);
            let is_pm = u == 1 || (d.users[u].access != AccessRole::Member && rng.random_bool(0.3));
            let use_default_rates = rng.random_bool(0.6);
            uas.push(UserAssignment {
                id: 0,
                project: pi as u32,
                user: u as u32,
                is_project_manager: is_pm,
                is_active: u < 3 || (user.is_active && rng.random_bool(0.9)),
                use_default_rates,
                budget: if p.budget_by == "person" {
                    Some(rng.random_range(10..300) * 100)
                } else {
                    None
                },
                hourly_rate: if use_default_rates {
                    Some(rate(&mut rng))
                } else if rng.random_bool(0.2) {
                    None
                } else {
                    Some(rate(&mut rng))
                },
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            });
        }
    }
    assign_ids(&mut tas, 155_502_001, |t| t.created_at.0, |t, id| t.id = id);
    assign_ids(&mut uas, 125_068_001, |u| u.created_at.0, |u, id| u.id = id);
    d.task_assignments = tas;
    d.user_assignments = uas;
}

fn gen_rate_history(
    rng: &mut ChaCha8Rng,
    user: u32,
    created: i64,
    count: usize,
    cost: bool,
) -> Vec<Rate> {
    let mut out: Vec<Rate> = Vec::with_capacity(count);
    let mut start = Date::of_ts(created);
    let mut c = created + 60;
    for k in 0..count {
        let amount = if cost {
            [4000, 5000, 5550, 6000, 3500][rng.random_range(0..5)]
        } else {
            rate(rng)
        };
        out.push(Rate {
            id: 0,
            user,
            amount: amount + k as i64 * 500,
            start_date: Some(start),
            end_date: None,
            created_at: Ts(c),
            updated_at: Ts(c),
        });
        let gap = rng.random_range(120..500);
        start = Date(start.0 + gap);
        c = start.midnight() + rng.random_range(3_600 * 8..3_600 * 18) - 86_400 * 10;
        if c > DATA_END - 86_400 * 30 {
            break;
        }
    }
    // Harvest computes end dates: the day before the next rate starts; open-ended last.
    for k in 0..out.len().saturating_sub(1) {
        let next = out[k + 1].start_date.expect("start date");
        out[k].end_date = Some(Date(next.0 - 1));
        let bump = out[k + 1].created_at;
        out[k].updated_at = bump;
    }
    out
}

fn gen_rates(d: &mut Data, seed: u64) {
    let mut rng = rng_for(seed, 8);
    let mut billable = Vec::new();
    let mut cost = Vec::new();
    for (ui, u) in d.users.iter_mut().enumerate() {
        let nb = if ui == 0 { 3 } else { rng.random_range(1..=4) };
        let hb = gen_rate_history(&mut rng, ui as u32, u.created_at.0, nb, false);
        u.default_hourly_rate = hb.last().map(|r| r.amount);
        billable.extend(hb);
        // Some users have no cost rate at all.
        if ui == 3 || (ui > 3 && rng.random_bool(0.2)) {
            u.cost_rate = None;
        } else {
            let nc = if ui == 0 { 2 } else { rng.random_range(1..=3) };
            let hc = gen_rate_history(&mut rng, ui as u32, u.created_at.0, nc, true);
            u.cost_rate = hc.last().map(|r| r.amount);
            cost.extend(hc);
        }
    }
    assign_ids(
        &mut billable,
        1_836_001,
        |r| r.created_at.0,
        |r, id| r.id = id,
    );
    assign_ids(&mut cost, 2_946_001, |r| r.created_at.0, |r, id| r.id = id);
    d.billable_rates = billable;
    d.cost_rates = cost;
}

/// Most teammates a manager is given.
const MAX_TEAMMATES: usize = 5;

/// Every manager manages 1 to 5 other users (any role, never themselves), bounded by the
/// account's size. Teammates carry no timestamps, so `max_ts` does not depend on them.
fn gen_teammates(d: &mut Data, seed: u64) {
    let mut rng = rng_for(seed, 14);
    let n = d.users.len();
    let room = MAX_TEAMMATES.min(n.saturating_sub(1));
    let mut out = Vec::new();
    if room == 0 {
        d.teammates = out;
        return;
    }
    for (mi, m) in d.users.iter().enumerate() {
        if m.access != AccessRole::Manager {
            continue;
        }
        let k = rng.random_range(1..=room);
        let mut chosen: Vec<u32> = rand::seq::index::sample(&mut rng, n - 1, k)
            .into_iter()
            // Sample among the others: skip the manager's own index.
            .map(|x| (if x >= mi { x + 1 } else { x }) as u32)
            .collect();
        chosen.sort_unstable();
        out.extend(chosen.into_iter().map(|user| Teammate {
            manager: mi as u32,
            user,
        }));
    }
    d.teammates = out;
}

fn gen_categories(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 9);
    let mut iic: Vec<InvoiceItemCategory> = (0..sc.invoice_item_categories)
        .map(|i| {
            let (name, svc, exp) = INVOICE_CATEGORIES[i % INVOICE_CATEGORIES.len()];
            let c = DATA_START + 86_400 * i as i64 + rng.random_range(0..86_400);
            InvoiceItemCategory {
                id: 0,
                name: Cow::Borrowed(name),
                use_as_service: svc,
                use_as_expense: exp,
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            }
        })
        .collect();
    assign_ids(&mut iic, 1_466_001, |c| c.created_at.0, |c, id| c.id = id);
    d.invoice_item_categories = iic;
    let mut eic: Vec<EstimateItemCategory> = (0..sc.estimate_item_categories)
        .map(|i| {
            let c = DATA_START + 86_400 * i as i64 + rng.random_range(0..86_400);
            EstimateItemCategory {
                id: 0,
                name: Cow::Borrowed(ESTIMATE_CATEGORIES[i % ESTIMATE_CATEGORIES.len()]),
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            }
        })
        .collect();
    assign_ids(&mut eic, 1_378_001, |c| c.created_at.0, |c, id| c.id = id);
    d.estimate_item_categories = eic;
    let mut ec: Vec<ExpenseCategory> = (0..sc.expense_categories)
        .map(|i| {
            let (name, unit, price) = EXPENSE_CATEGORIES[i % EXPENSE_CATEGORIES.len()];
            let round = i / EXPENSE_CATEGORIES.len();
            let c = DATA_START + 86_400 * (i as i64 + 1) + rng.random_range(0..86_400);
            ExpenseCategory {
                id: 0,
                name: if round == 0 {
                    Cow::Borrowed(name)
                } else {
                    Cow::Owned(format!("{name} ({})", round + 1))
                },
                unit_name: unit,
                unit_price: price,
                is_active: i < 4 || rng.random_bool(0.8),
                created_at: Ts(c),
                updated_at: updated_after(&mut rng, c),
            }
        })
        .collect();
    assign_ids(&mut ec, 4_195_001, |c| c.created_at.0, |c, id| c.id = id);
    d.expense_categories = ec;
}

const QUANTITIES: &[i64] = &[100, 200, 150, 25, 1000, 300, 50, 800, 1250];

struct Lines {
    items: Vec<LineItem>,
    subtotal: i64,
    taxable: i64,
    taxable2: i64,
}

fn gen_lines(
    rng: &mut ChaCha8Rng,
    kinds: &[Txt],
    projects: Option<&[u32]>,
    force_fraction: bool,
    next_id: &mut i64,
) -> Lines {
    let n = rng.random_range(1..=4);
    let mut items = Vec::with_capacity(n);
    let (mut subtotal, mut taxable, mut taxable2) = (0, 0, 0);
    for k in 0..n {
        let quantity = if force_fraction && k == 0 {
            150
        } else {
            *pick(rng, QUANTITIES)
        };
        let unit_price = if rng.random_bool(0.6) {
            rate(rng)
        } else {
            money(rng, 5, 3_000)
        };
        let amount = mul_hundredths(quantity, unit_price);
        let taxed = rng.random_bool(0.6);
        let taxed2 = taxed && rng.random_bool(0.4);
        subtotal += amount;
        if taxed {
            taxable += amount;
        }
        if taxed2 {
            taxable2 += amount;
        }
        let project = match projects {
            Some(ps) if !ps.is_empty() && rng.random_bool(0.8) => *pick(rng, ps),
            _ => NONE,
        };
        items.push(LineItem {
            id: *next_id,
            kind: pick(rng, kinds).clone(),
            description: LINE_DESCRIPTIONS[rng.random_range(0..LINE_DESCRIPTIONS.len())],
            quantity,
            unit_price,
            amount,
            taxed,
            taxed2,
            project,
        });
        *next_id += 1;
    }
    Lines {
        items,
        subtotal,
        taxable,
        taxable2,
    }
}

struct Totals {
    tax: Option<i64>,
    tax_amount: i64,
    tax2: Option<i64>,
    tax2_amount: i64,
    discount: Option<i64>,
    discount_amount: i64,
    amount: i64,
}

fn totals(rng: &mut ChaCha8Rng, lines: &Lines, i: usize) -> Totals {
    let tax = if i % 3 == 2 {
        None
    } else {
        Some(*pick(rng, &[500, 825, 2000, 700]))
    };
    let tax2 = if i % 4 == 1 { Some(200) } else { None };
    // Discount is null on some documents while discount_amount stays 0.
    let discount = if i % 5 == 0 {
        None
    } else if i % 5 == 1 {
        Some(1000)
    } else if i % 5 == 2 {
        Some(550)
    } else {
        None
    };
    let discount_amount = discount.map(|p| percent_of(lines.subtotal, p)).unwrap_or(0);
    let tax_amount = tax.map(|p| percent_of(lines.taxable, p)).unwrap_or(0);
    let tax2_amount = tax2.map(|p| percent_of(lines.taxable2, p)).unwrap_or(0);
    Totals {
        tax,
        tax_amount,
        tax2,
        tax2_amount,
        discount,
        discount_amount,
        amount: lines.subtotal - discount_amount + tax_amount + tax2_amount,
    }
}

/// Clients' projects, by client index.
fn projects_by_client(d: &Data) -> Vec<Vec<u32>> {
    let mut v = vec![Vec::new(); d.clients.len()];
    for (i, p) in d.projects.iter().enumerate() {
        v[p.client as usize].push(i as u32);
    }
    v
}

fn contacts_by_client(d: &Data) -> Vec<Vec<u32>> {
    let mut v = vec![Vec::new(); d.clients.len()];
    for (i, c) in d.contacts.iter().enumerate() {
        v[c.client as usize].push(i as u32);
    }
    v
}

/// Users allowed to create invoices and estimates (administrators and managers).
fn creators(d: &Data) -> Vec<u32> {
    d.users
        .iter()
        .enumerate()
        .filter(|(_, u)| u.access != AccessRole::Member)
        .map(|(i, _)| i as u32)
        .collect()
}

fn gen_estimates(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 10);
    let kinds: Vec<Txt> = d
        .estimate_item_categories
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let creators = creators(d);
    let contacts = contacts_by_client(d);
    let mut next_line = 57_531_001;
    let mut ests: Vec<Estimate> = (0..sc.estimates)
        .map(|i| new_estimate(d, &mut rng, &kinds, &creators, i))
        .collect();
    assign_ids(&mut ests, 1_439_001, |e| e.created_at.0, |e, id| e.id = id);
    for (i, e) in ests.iter_mut().enumerate() {
        e.number = format!("{}", 1001 + i);
        for li in e.line_items.iter_mut() {
            li.id = next_line;
            next_line += 1;
        }
    }
    d.next_estimate_line_id = next_line;
    let mut msgs = estimate_messages(&mut rng, &mut ests, &contacts);
    assign_ids(&mut msgs, 2_666_001, |m| m.created_at.0, |m, id| m.id = id);
    d.estimates = ests;
    d.estimate_messages = msgs;
}

/// The `i`-th estimate, before its id and number.
fn new_estimate(
    d: &Data,
    rng: &mut ChaCha8Rng,
    kinds: &[Txt],
    creators: &[u32],
    i: usize,
) -> Estimate {
    let (client, cc) = client_for(d, rng, i);
    let c = ts_between(rng, cc + 86_400, DATA_END - 86_400 * 20);
    let issue = Date::of_ts(c);
    let lines = gen_lines(rng, kinds, None, i == 0, &mut 0);
    let t = totals(rng, &lines, i);
    let state = match i {
        0 => "accepted",
        1 => "sent",
        2 => "draft",
        3 => "declined",
        _ => *pick(rng, &["accepted", "accepted", "sent", "draft", "declined"]),
    };
    let sent_at = if state == "draft" {
        None
    } else {
        Some(Ts(c + rng.random_range(600..86_400)))
    };
    let decided = sent_at.map(|s| Ts(s.0 + rng.random_range(3_600..86_400 * 14)));
    Estimate {
        id: 0,
        client,
        number: String::new(),
        purchase_order: if i % 3 == 0 { "PO-4411" } else { "" },
        amount: t.amount,
        tax: t.tax,
        tax_amount: t.tax_amount,
        tax2: t.tax2,
        tax2_amount: t.tax2_amount,
        discount: t.discount,
        discount_amount: t.discount_amount,
        subject: Cow::Borrowed(*pick(rng, INVOICE_SUBJECTS)),
        notes: Cow::Borrowed(if i % 2 == 0 { "" } else { "Valid for 30 days." }),
        currency: d.clients[client as usize].currency,
        state,
        issue_date: issue,
        sent_at,
        accepted_at: if state == "accepted" { decided } else { None },
        declined_at: if state == "declined" { decided } else { None },
        creator: *pick(rng, creators),
        line_items: lines.items,
        created_at: Ts(c),
        updated_at: Ts(c),
    }
}

/// Messages: one per sent estimate, and state-change events after it (each estimate's
/// `updated_at` moves to its last).
fn estimate_messages(
    rng: &mut ChaCha8Rng,
    ests: &mut [Estimate],
    contacts: &[Vec<u32>],
) -> Vec<EstimateMessage> {
    let mut msgs = Vec::new();
    for (ei, e) in ests.iter_mut().enumerate() {
        let Some(sent) = e.sent_at else { continue };
        let recips = &contacts[e.client as usize];
        let mut push = |rng: &mut ChaCha8Rng, at: i64, event: Option<&'static str>, subj: &str| {
            let recipients: Vec<u32> = if recips.is_empty() {
                Vec::new()
            } else {
                let k = rng.random_range(1..=recips.len().min(2));
                recips.iter().take(k).copied().collect()
            };
            msgs.push(EstimateMessage {
                id: 0,
                estimate: ei as u32,
                sender: e.creator,
                recipients,
                subject: format!("{subj} #{}", e.number),
                body: Cow::Borrowed(*pick(rng, ESTIMATE_BODIES)),
                send_me_a_copy: rng.random_bool(0.5),
                event_type: event,
                created_at: Ts(at),
                updated_at: Ts(at),
            });
        };
        push(rng, sent.0, None, "Estimate");
        let mut last = sent.0;
        if let Some(a) = e.accepted_at {
            push(rng, a.0, Some("accept"), "Estimate accepted");
            last = a.0;
        } else if let Some(dcl) = e.declined_at {
            push(rng, dcl.0, Some("decline"), "Estimate declined");
            last = dcl.0;
        } else if rng.random_bool(0.3) {
            last = sent.0 + 7_200;
            push(rng, last, Some("view"), "Estimate viewed");
        }
        e.updated_at = Ts(last.max(e.created_at.0));
    }
    msgs
}

/// What every generated invoice draws on: item kinds, creators, and the client's projects,
/// contacts and accepted estimates.
struct InvoiceCtx {
    kinds: Vec<Txt>,
    creators: Vec<u32>,
    by_client: Vec<Vec<u32>>,
    accepted_by_client: Vec<Vec<u32>>,
}

fn gen_invoices(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 11);
    let nc = d.clients.len();
    let mut accepted_by_client: Vec<Vec<u32>> = vec![Vec::new(); nc];
    for (i, e) in d.estimates.iter().enumerate() {
        if e.state == "accepted" {
            accepted_by_client[e.client as usize].push(i as u32);
        }
    }
    let cx = InvoiceCtx {
        kinds: d
            .invoice_item_categories
            .iter()
            .map(|c| c.name.clone())
            .collect(),
        creators: creators(d),
        by_client: projects_by_client(d),
        accepted_by_client,
    };
    let contacts = contacts_by_client(d);
    let mut invs: Vec<Invoice> = (0..sc.invoices)
        .map(|i| new_invoice(d, &mut rng, &cx, i))
        .collect();
    assign_ids(&mut invs, 13_150_001, |x| x.created_at.0, |x, id| x.id = id);
    let mut next_line = 53_341_001;
    for (i, inv) in invs.iter_mut().enumerate() {
        inv.number = format!("{}", 1001 + i);
        for li in inv.line_items.iter_mut() {
            li.id = next_line;
            next_line += 1;
        }
    }
    d.next_invoice_line_id = next_line;

    // Payments and messages, with the parent's updated_at bumped to the latest of them.
    let mut h = History::default();
    for (ii, inv) in invs.iter_mut().enumerate() {
        invoice_history(&mut rng, ii, inv, &contacts, &mut h);
    }
    // Nothing after the data's end, so that no child is newer than its (capped) invoice.
    for m in h.msgs.iter_mut() {
        m.created_at = Ts(m.created_at.0.min(DATA_END));
        m.updated_at = Ts(m.updated_at.0.min(DATA_END));
    }
    for p in h.pays.iter_mut() {
        p.created_at = Ts(p.created_at.0.min(DATA_END));
        p.updated_at = Ts(p.updated_at.0.min(DATA_END));
    }
    assign_ids(
        &mut h.pays,
        10_336_001,
        |p| p.created_at.0,
        |p, id| p.id = id,
    );
    assign_ids(
        &mut h.msgs,
        27_835_001,
        |m| m.created_at.0,
        |m, id| m.id = id,
    );
    d.invoices = invs;
    d.invoice_payments = h.pays;
    d.invoice_messages = h.msgs;
}

/// The state and payment term (with its days) of the `i`-th invoice.
fn invoice_state(rng: &mut ChaCha8Rng, i: usize) -> (&'static str, (&'static str, i32)) {
    let state = match i {
        0 => "paid",
        1 => "open",
        2 => "paid",
        3 => "draft",
        4 => "closed",
        _ => *pick(
            rng,
            &[
                "paid", "paid", "paid", "paid", "open", "open", "open", "draft", "closed",
            ],
        ),
    };
    let term = *pick(
        rng,
        &[
            ("upon receipt", 0),
            ("net 15", 15),
            ("net 30", 30),
            ("net 45", 45),
            ("net 60", 60),
            ("custom", 20),
        ],
    );
    (state, term)
}

/// The `i`-th invoice, before its id, number, messages and payments.
fn new_invoice(d: &Data, rng: &mut ChaCha8Rng, cx: &InvoiceCtx, i: usize) -> Invoice {
    let (client, cc) = client_for(d, rng, i);
    let c = ts_between(rng, cc + 86_400 * 20, DATA_END - 86_400 * 2);
    let issue = Date::of_ts(c);
    let lines = gen_lines(
        rng,
        &cx.kinds,
        Some(&cx.by_client[client as usize]),
        i == 0,
        &mut 0,
    );
    let t = totals(rng, &lines, i);
    let (state, (term, days)) = invoice_state(rng, i);
    let period = rng.random_bool(0.5);
    let estimate = cx.accepted_by_client[client as usize]
        .iter()
        .copied()
        .find(|&e| d.estimates[e as usize].issue_date <= issue && rng.random_bool(0.3))
        .unwrap_or(NONE);
    let sent_at = if state == "draft" {
        None
    } else {
        Some(Ts(c + rng.random_range(600..86_400)))
    };
    Invoice {
        id: 0,
        client,
        number: String::new(),
        purchase_order: if i % 4 == 0 { "PO-2291" } else { "" },
        amount: t.amount,
        due_amount: t.amount,
        tax: t.tax,
        tax_amount: t.tax_amount,
        tax2: t.tax2,
        tax2_amount: t.tax2_amount,
        discount: t.discount,
        discount_amount: t.discount_amount,
        subject: Cow::Borrowed(*pick(rng, INVOICE_SUBJECTS)),
        notes: Cow::Borrowed(if i % 2 == 0 {
            ""
        } else {
            "Thank you for your business."
        }),
        currency: d.clients[client as usize].currency,
        state,
        period_start: period.then(|| Date(issue.0 - 31)),
        period_end: period.then(|| Date(issue.0 - 1)),
        issue_date: issue,
        due_date: Date(issue.0 + days),
        payment_term: term,
        payment_options: PAYMENT_OPTIONS[rng.random_range(0..PAYMENT_OPTIONS.len())],
        sent_at,
        paid_at: None,
        paid_date: None,
        closed_at: None,
        recurring_invoice_id: (i % 10 == 7).then(|| 2_910_001 + (i as i64 % 50)),
        estimate,
        retainer_id: (i % 17 == 9).then(|| 169_001 + i as i64 % 7),
        creator: *pick(rng, &cx.creators),
        line_items: lines.items,
        created_at: Ts(c),
        updated_at: Ts(c),
    }
}

/// Generated invoice messages and payments (and how many payments so far).
#[derive(Default)]
struct History {
    msgs: Vec<InvoiceMessage>,
    pays: Vec<InvoicePayment>,
    pay_no: usize,
}

/// A plain message about invoice `ii` sent at `at` (no link, no PDF, no copy, no reminder).
fn invoice_message(
    ii: usize,
    inv: &Invoice,
    recipients: Vec<u32>,
    subject: String,
    body: &'static str,
    at: i64,
) -> InvoiceMessage {
    InvoiceMessage {
        id: 0,
        invoice: ii as u32,
        sender: inv.creator,
        recipients,
        subject,
        body: Cow::Borrowed(body),
        include_link_to_client_invoice: false,
        attach_pdf: false,
        send_me_a_copy: false,
        thank_you: false,
        event_type: None,
        reminder: false,
        send_reminder_on: None,
        created_at: Ts(at),
        updated_at: Ts(at),
    }
}

/// Invoice `ii`'s messages and payments as its state implies; its `updated_at` (and paid,
/// closed and due fields) follow from them.
fn invoice_history(
    rng: &mut ChaCha8Rng,
    ii: usize,
    inv: &mut Invoice,
    contacts: &[Vec<u32>],
    h: &mut History,
) {
    let Some(sent) = inv.sent_at else { return };
    let mut last = sent.0;
    let recips = &contacts[inv.client as usize];
    let recipients: Vec<u32> = recips.iter().take(1 + ii % 2).copied().collect();
    h.msgs.push(InvoiceMessage {
        attach_pdf: true,
        send_me_a_copy: rng.random_bool(0.5),
        ..invoice_message(
            ii,
            inv,
            recipients.clone(),
            format!("Invoice #{} from Acme Co", inv.number),
            MESSAGE_BODIES[0],
            sent.0,
        )
    });
    if inv.state == "open" && rng.random_bool(0.4) {
        let at = sent.0 + 86_400 * rng.random_range(10..40);
        h.msgs.push(InvoiceMessage {
            reminder: true,
            send_reminder_on: Some(Date::of_ts(at)),
            ..invoice_message(
                ii,
                inv,
                recipients.clone(),
                format!("Reminder: invoice #{}", inv.number),
                MESSAGE_BODIES[1],
                at,
            )
        });
        last = last.max(at);
    }
    let paid_total = match inv.state {
        "paid" => inv.amount,
        "open" if ii % 3 == 1 => inv.amount / 2,
        _ => 0,
    };
    if paid_total > 0 {
        last = last.max(invoice_payments(rng, ii, inv, paid_total, h));
        inv.due_amount = inv.amount - paid_total;
        if inv.state == "paid" {
            let at = last;
            inv.paid_at = Some(Ts(at));
            inv.paid_date = Some(Date::of_ts(at));
            h.msgs.push(InvoiceMessage {
                thank_you: true,
                ..invoice_message(
                    ii,
                    inv,
                    recipients.clone(),
                    format!("Payment received for invoice #{}", inv.number),
                    MESSAGE_BODIES[2],
                    at + 60,
                )
            });
            last = at + 60;
        }
    }
    if inv.state == "closed" {
        let at = sent.0 + 86_400 * rng.random_range(30..90);
        inv.closed_at = Some(Ts(at));
        h.msgs.push(InvoiceMessage {
            event_type: Some("close"),
            ..invoice_message(
                ii,
                inv,
                Vec::new(),
                format!("Invoice #{} closed", inv.number),
                "",
                at,
            )
        });
        last = last.max(at);
    }
    inv.updated_at = Ts(last.min(DATA_END).max(inv.created_at.0));
}

/// Payments of `paid_total` on invoice `ii` (one, or two halves); returns the last one's time.
fn invoice_payments(
    rng: &mut ChaCha8Rng,
    ii: usize,
    inv: &Invoice,
    paid_total: i64,
    h: &mut History,
) -> i64 {
    let sent = inv.sent_at.map_or(0, |s| s.0);
    let split = paid_total > 100_000 && rng.random_bool(0.4);
    let parts = if split {
        vec![paid_total / 2, paid_total - paid_total / 2]
    } else {
        vec![paid_total]
    };
    let mut at = sent;
    let mut last = sent;
    for part in parts {
        at += 86_400 * rng.random_range(1..30) + rng.random_range(0..3_600);
        let at = at.min(DATA_END);
        let pay_no = h.pay_no;
        let (gid, gname) = match pay_no % 4 {
            0 => (None, None),
            1 => (Some(1_001 + (pay_no as i64 % 3)), Some(PAYMENT_GATEWAYS[0])),
            2 => (None, Some(*pick(rng, PAYMENT_GATEWAYS))),
            _ => (Some(1_004), Some(PAYMENT_GATEWAYS[1])),
        };
        h.pays.push(InvoicePayment {
            id: 0,
            invoice: ii as u32,
            amount: part,
            paid_at: Ts(at),
            paid_date: Date::of_ts(at),
            recorder: inv.creator,
            notes: Cow::Borrowed(*pick(rng, PAYMENT_NOTES)),
            transaction_id: gid.map(|_| format!("ch_{:x}", crate::util::mix64(pay_no as u64))),
            gateway_id: gid,
            gateway_name: gname,
            created_at: Ts(at),
            updated_at: Ts(at),
        });
        h.pay_no += 1;
        last = last.max(at);
    }
    last
}

/// For each project, its task assignments.
fn tas_by_project(d: &Data) -> Vec<Vec<u32>> {
    let mut v = vec![Vec::new(); d.projects.len()];
    for (i, t) in d.task_assignments.iter().enumerate() {
        v[t.project as usize].push(i as u32);
    }
    v
}

/// Sent invoices of each client, ordered by issue date.
fn invoices_by_client(d: &Data) -> Vec<Vec<u32>> {
    let mut v = vec![Vec::new(); d.clients.len()];
    for (i, inv) in d.invoices.iter().enumerate() {
        if inv.state != "draft" {
            v[inv.client as usize].push(i as u32);
        }
    }
    for list in v.iter_mut() {
        list.sort_by_key(|&i| (d.invoices[i as usize].issue_date, i));
    }
    v
}

/// An invoice of the client issued within 90 days after `date`, if any.
fn invoice_for(d: &Data, list: &[u32], date: Date) -> u32 {
    let pos = list.partition_point(|&i| d.invoices[i as usize].issue_date < date);
    match list.get(pos) {
        Some(&i) if d.invoices[i as usize].issue_date.0 - date.0 <= 90 => i,
        _ => NONE,
    }
}

/// The user assignments that existed on a date: a prefix of the id-ordered list.
fn ua_prefix(d: &Data, date: Date) -> usize {
    let end = date.midnight() + 86_399;
    d.user_assignments
        .partition_point(|u| u.created_at.0 <= end)
        .max(1)
}

fn gen_time_entries(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 12);
    let tas = tas_by_project(d);
    let invs = invoices_by_client(d);
    d.notes = TE_NOTES.iter().map(|s| Cow::Borrowed(*s)).collect();
    let first_day = Date::of_ts(d.user_assignments[0].created_at.0).0;
    let last_day = Date::of_ts(DATA_END).0;
    let n = sc.time_entries;
    let mut days: Vec<i32> = (0..n)
        .map(|_| rng.random_range(first_day..=last_day))
        .collect();
    days.sort_unstable();
    let mut out = Vec::with_capacity(n);
    let mut ext_refs = Vec::new();
    let cx = EntryCtx {
        tas: &tas,
        invs: &invs,
        last_day,
    };
    for (i, &day) in days.iter().enumerate() {
        out.push(new_time_entry(d, &mut rng, &cx, i, day, &mut ext_refs));
    }
    out.sort_by_key(|t| (t.spent_date, t.created_at));
    start_timers(&mut out, if n < 100 { 1 } else { 3 });
    for (i, t) in out.iter_mut().enumerate() {
        t.id = 636_709_001 + i as i64;
    }
    // Small accounts may have no entry close enough to an invoice: bill a few anyway so that
    // `invoice` objects appear in every size.
    if !out.iter().any(|t| t.invoice != NONE) {
        bill_a_few(d, &mut out, &invs);
    }
    d.time_entries = out;
    d.ext_refs = ext_refs;
}

/// What every generated time entry draws on.
struct EntryCtx<'a> {
    /// Each project's task assignments.
    tas: &'a [Vec<u32>],
    /// Each client's sent invoices, by issue date.
    invs: &'a [Vec<u32>],
    last_day: i32,
}

/// Hours (in hundredths) of a time entry: whole, quarter, odd and half hours.
fn entry_hours(rng: &mut ChaCha8Rng) -> i32 {
    match rng.random_range(0..6) {
        0 => rng.random_range(1..=8) * 100,
        1 => rng.random_range(1..=32) * 25,
        2 => rng.random_range(5..=600),
        3 => rng.random_range(1..=16) * 50,
        4 => 211,
        _ => rng.random_range(10..=900),
    }
}

/// The external reference of the `i`-th entry: a new one every 12th entry, a repeated one
/// for others (Harvest's integrations put the same Asana or GitHub reference on every entry
/// of that task), none otherwise. No RNG draw, so nothing else of the account moves.
fn entry_ext_ref(i: usize, ext_refs: &mut Vec<ExternalRef>) -> u32 {
    if i % 12 == 3 {
        let k = ext_refs.len();
        ext_refs.push(ExternalRef {
            id: format!("{}", 10_000 + k * 7),
            group_id: format!("{}", 300 + k % 40),
            account_id: format!("{}", 12 + k % 3),
            service: SERVICES[k % SERVICES.len()],
        });
        k as u32
    } else if i % 12 == 9 && !ext_refs.is_empty() {
        (i / 12 % ext_refs.len()) as u32
    } else {
        NONE
    }
}

/// Start and end clock times (minutes after midnight) of the `i`-th entry; none for every fifth.
fn entry_clock(rng: &mut ChaCha8Rng, i: usize, hours: i32) -> (u16, u16) {
    if i % 5 == 1 {
        (u16::MAX, u16::MAX)
    } else {
        let s = rng.random_range(7 * 60..17 * 60) as u16 / 5 * 5;
        let e = (u32::from(s) + hours as u32 * 60 / 100).min(23 * 60 + 59) as u16;
        (s, e)
    }
}

/// When an entry created at `created` was last updated (approved ones, days later).
fn entry_updated(rng: &mut ChaCha8Rng, approved: bool, created: i64) -> Ts {
    if approved {
        let t = created + rng.random_range(86_400..86_400 * 20);
        if t > DATA_END {
            Ts(ts_between(rng, created.min(DATA_END), DATA_END))
        } else {
            Ts(t)
        }
    } else {
        updated_after(rng, created)
    }
}

/// A user assignment that existed on `spent`, drawn at random; on the member's turn, the
/// member token user's first one instead (so member views are never empty).
fn pick_assignment(d: &Data, rng: &mut ChaCha8Rng, spent: Date, member_turn: bool) -> u32 {
    let prefix = ua_prefix(d, spent);
    let ua = rng.random_range(0..prefix) as u32;
    if member_turn {
        if let Some(pos) = d.user_assignments[..prefix]
            .iter()
            .position(|u| u.user == 2)
        {
            return pos as u32;
        }
    }
    ua
}

/// The `i`-th time entry (spent on `day`), before its id.
fn new_time_entry(
    d: &Data,
    rng: &mut ChaCha8Rng,
    cx: &EntryCtx,
    i: usize,
    day: i32,
    ext_refs: &mut Vec<ExternalRef>,
) -> TimeEntry {
    let spent = Date(day);
    // Entries belong to active projects' assignments mostly; the member token user gets a
    // fair share so member views are never empty.
    let ua = pick_assignment(d, rng, spent, i % 7 == 0);
    let uai = &d.user_assignments[ua as usize];
    let project = &d.projects[uai.project as usize];
    let user = &d.users[uai.user as usize];
    let plist = &cx.tas[uai.project as usize];
    let ta = if plist.is_empty() {
        0
    } else {
        *pick(rng, plist)
    };
    let tai = &d.task_assignments[ta as usize];
    let hours = entry_hours(rng);
    let billable = tai.billable && project.is_billable;
    let rate = if billable {
        uai.hourly_rate
            .or(tai.hourly_rate)
            .or(project.hourly_rate)
            .or(user.default_hourly_rate)
            .unwrap_or(10_000)
    } else {
        -1
    };
    let age_days = cx.last_day - day;
    let invoice = if billable && age_days > 30 && rng.random_bool(0.75) {
        invoice_for(d, &cx.invs[project.client as usize], spent)
    } else {
        NONE
    };
    let billed = invoice != NONE;
    let approved = billed || (age_days > 14 && rng.random_bool(0.5));
    let submitted = !approved && rng.random_bool(0.3);
    let mut flags = 0u16;
    for (bit, on) in [
        (te_flags::BILLED, billed),
        (te_flags::LOCKED, approved || billed),
        (te_flags::CLOSED, approved),
        (te_flags::APPROVED, approved),
        (te_flags::SUBMITTED, submitted),
        (te_flags::BILLABLE, billable),
        (te_flags::BUDGETED, project.budget.is_some()),
        (te_flags::CLOCK24, user.clock24),
    ] {
        if on {
            flags |= bit;
        }
    }
    let (started, ended) = entry_clock(rng, i, hours);
    let created = spent.midnight() + rng.random_range(3_600 * 8..3_600 * 23);
    let ext_ref = entry_ext_ref(i, ext_refs);
    let notes = if i % 10 == 9 {
        NONE
    } else {
        rng.random_range(0..TE_NOTES.len()) as u32
    };
    let updated = entry_updated(rng, approved, created);
    TimeEntry {
        id: 0,
        created_at: Ts(created),
        updated_at: updated,
        timer_started_at: 0,
        spent_date: spent,
        ua,
        ta,
        hours,
        hours_without_timer: hours,
        rounded_hours: (hours + 24) / 25 * 25,
        billable_rate: rate as i32,
        cost_rate: user.cost_rate.map(|c| c as i32).unwrap_or(-1),
        invoice,
        ext_ref,
        notes,
        started,
        ended,
        flags,
    }
}

/// The newest `running` entries have a running timer.
fn start_timers(out: &mut [TimeEntry], running: usize) {
    let len = out.len();
    for t in out.iter_mut().skip(len.saturating_sub(running)) {
        t.set(te_flags::RUNNING, true);
        t.set(te_flags::LOCKED, false);
        t.set(te_flags::CLOSED, false);
        t.set(te_flags::APPROVED, false);
        t.set(te_flags::BILLED, false);
        t.invoice = NONE;
        t.timer_started_at = t.created_at.0 + 60;
        t.ended = u16::MAX;
        if t.started == u16::MAX {
            t.started = 9 * 60;
        }
    }
}

/// Bills up to three billable, stopped entries on the client's next invoice.
fn bill_a_few(d: &Data, out: &mut [TimeEntry], invs: &[Vec<u32>]) {
    let mut billed = 0;
    for t in out.iter_mut() {
        if billed >= 3 || t.has(te_flags::RUNNING) || !t.has(te_flags::BILLABLE) {
            continue;
        }
        let client = d.projects[d.user_assignments[t.ua as usize].project as usize].client;
        let list = &invs[client as usize];
        let pos = list.partition_point(|&i| d.invoices[i as usize].issue_date < t.spent_date);
        if let Some(&inv) = list.get(pos) {
            t.invoice = inv;
            t.set(te_flags::BILLED, true);
            t.set(te_flags::LOCKED, true);
            t.set(te_flags::CLOSED, true);
            t.set(te_flags::APPROVED, true);
            t.set(te_flags::SUBMITTED, false);
            billed += 1;
        }
    }
}

fn gen_expenses(d: &mut Data, seed: u64, sc: &Scale) {
    let mut rng = rng_for(seed, 13);
    let invs = invoices_by_client(d);
    let first_day = Date::of_ts(d.user_assignments[0].created_at.0).0;
    let last_day = Date::of_ts(DATA_END).0;
    let ncat = d.expense_categories.len();
    let mut out: Vec<Expense> = (0..sc.expenses)
        .map(|i| {
            let spent = Date(rng.random_range(first_day..=last_day));
            let ua = pick_assignment(d, &mut rng, spent, i % 6 == 0);
            let uai = &d.user_assignments[ua as usize];
            let project = &d.projects[uai.project as usize];
            let category = if i < ncat {
                i as u32
            } else {
                rng.random_range(0..ncat) as u32
            };
            let cat = &d.expense_categories[category as usize];
            let (units, total) = match cat.unit_price {
                Some(price) => {
                    let units = *pick(&mut rng, &[1250, 4000, 100, 2275, 300]);
                    (units, mul_hundredths(units, price))
                }
                None => (100, money(&mut rng, 5, 900)),
            };
            let billable = project.is_billable && rng.random_bool(0.7);
            let age = last_day - spent.0;
            let invoice = if billable && age > 30 && rng.random_bool(0.7) {
                invoice_for(d, &invs[project.client as usize], spent)
            } else {
                NONE
            };
            let billed = invoice != NONE;
            let closed = billed || (age > 20 && rng.random_bool(0.4));
            let created = spent.midnight() + rng.random_range(3_600 * 7..3_600 * 23);
            Expense {
                id: 0,
                ua,
                category,
                notes: Cow::Borrowed(*pick(&mut rng, EXPENSE_NOTES)),
                total_cost: total,
                units,
                is_closed: closed,
                is_locked: closed || billed,
                is_billed: billed,
                locked_reason: if billed {
                    Some("Expense is invoiced.")
                } else if closed {
                    Some("The project is locked for this time period.")
                } else {
                    None
                },
                spent_date: spent,
                billable,
                receipt: if i % 3 == 0 {
                    None
                } else {
                    Some(*pick(&mut rng, RECEIPTS))
                },
                invoice,
                created_at: Ts(created),
                updated_at: updated_after(&mut rng, created),
            }
        })
        .collect();
    out.sort_by_key(|e| (e.spent_date, e.created_at));
    for (i, e) in out.iter_mut().enumerate() {
        e.id = 15_296_001 + i as i64;
    }
    if !out.iter().any(|e| e.invoice != NONE) {
        for e in out.iter_mut() {
            let client = d.projects[d.user_assignments[e.ua as usize].project as usize].client;
            let list = &invs[client as usize];
            let pos = list.partition_point(|&i| d.invoices[i as usize].issue_date < e.spent_date);
            if let Some(&inv) = list.get(pos) {
                e.invoice = inv;
                e.billable = true;
                e.is_billed = true;
                e.is_locked = true;
                e.is_closed = true;
                e.locked_reason = Some("Expense is invoiced.");
                break;
            }
        }
    }
    d.expenses = out;
}

fn max_timestamp(d: &Data) -> i64 {
    let mut m = 0i64;
    macro_rules! scan {
        ($v:expr) => {
            for x in $v.iter() {
                m = m.max(x.updated_at.0).max(x.created_at.0);
            }
        };
    }
    scan!(d.users);
    scan!(d.roles);
    scan!(d.clients);
    scan!(d.contacts);
    scan!(d.projects);
    scan!(d.tasks);
    scan!(d.task_assignments);
    scan!(d.user_assignments);
    scan!(d.billable_rates);
    scan!(d.cost_rates);
    scan!(d.invoice_item_categories);
    scan!(d.estimate_item_categories);
    scan!(d.invoices);
    scan!(d.invoice_messages);
    scan!(d.invoice_payments);
    scan!(d.estimates);
    scan!(d.estimate_messages);
    scan!(d.expense_categories);
    scan!(d.expenses);
    scan!(d.time_entries);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_child_is_newer_than_its_parent() {
        let d = generate(42, Size::Small);
        for m in &d.invoice_messages {
            assert!(
                m.updated_at <= d.invoices[m.invoice as usize].updated_at,
                "invoice message {}",
                m.id
            );
        }
        for p in &d.invoice_payments {
            assert!(
                p.updated_at <= d.invoices[p.invoice as usize].updated_at,
                "invoice payment {}",
                p.id
            );
        }
        for m in &d.estimate_messages {
            assert!(
                m.updated_at <= d.estimates[m.estimate as usize].updated_at,
                "estimate message {}",
                m.id
            );
        }
    }

    #[test]
    fn managers_manage_a_few_others() {
        for size in [Size::Tiny, Size::Small, Size::Medium, Size::Large] {
            let mut d = Data::default();
            gen_users(&mut d, 42, &size.scale());
            gen_teammates(&mut d, 42);
            let n = d.users.len();
            let is_manager = |u: u32| d.users[u as usize].access == AccessRole::Manager;
            assert!(
                d.teammates
                    .windows(2)
                    .all(|w| (w[0].manager, w[0].user) < (w[1].manager, w[1].user)),
                "{size:?}: sorted, no duplicates"
            );
            let managers: Vec<u32> = (0..n as u32).filter(|&u| is_manager(u)).collect();
            for &m in &managers {
                let k = d.teammates.iter().filter(|t| t.manager == m).count();
                assert!(
                    (1..=MAX_TEAMMATES.min(n - 1)).contains(&k),
                    "{size:?}: manager {m} has {k}"
                );
            }
            for t in &d.teammates {
                assert!(is_manager(t.manager), "{size:?}: only managers manage");
                assert_ne!(t.manager, t.user, "{size:?}: never themselves");
                assert!((t.user as usize) < n);
            }
            assert!(managers.len() < n, "{size:?}: a non-manager exists");
            // Tiny has a single manager (the manager token's user); the others several.
            let want = if size == Size::Tiny { 1 } else { 2 };
            assert!(
                managers.len() >= want,
                "{size:?}: {} managers",
                managers.len()
            );
        }
        // Drawn last and only from the users: the whole generation gives the same pairs.
        let mut d = Data::default();
        gen_users(&mut d, 42, &Size::Tiny.scale());
        gen_teammates(&mut d, 42);
        assert_eq!(generate(42, Size::Tiny).teammates, d.teammates);
    }

    #[test]
    fn deterministic_and_consistent() {
        let a = generate(7, Size::Tiny);
        let b = generate(7, Size::Tiny);
        assert_eq!(a.time_entries.len(), b.time_entries.len());
        for (x, y) in a.time_entries.iter().zip(&b.time_entries) {
            assert_eq!((x.id, x.updated_at, x.hours), (y.id, y.updated_at, y.hours));
        }
        // Ids ascend in every vector.
        assert!(a.time_entries.windows(2).all(|w| w[0].id < w[1].id));
        assert!(a.invoices.windows(2).all(|w| w[0].id < w[1].id));
        // Cross references stay inside the vectors.
        for te in &a.time_entries {
            let ua = &a.user_assignments[te.ua as usize];
            let ta = &a.task_assignments[te.ta as usize];
            assert_eq!(ua.project, ta.project);
        }
        assert!(a.max_ts <= DATA_END);
        assert!(!a.invoice_payments.is_empty());
        assert!(!a.invoice_messages.is_empty());
        assert!(!a.estimate_messages.is_empty());
        assert!(a.ext_refs.len() >= 2);
    }
}
