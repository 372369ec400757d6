//! The standard CRM request mix, fixed so that figures from different days
//! compare. Per 100 requests:
//!
//! | share | class | requests |
//! |---|---|---|
//! | 55 | read by id | 30 `GET /contacts/{id}`, 15 `GET /companies/{id}`, 10 `GET /deals/{id}` |
//! | 15 | list / search page | 5 `GET /contacts?q=<last name>&limit=20`, 5 `GET /companies?limit=50`, 5 `GET /deals?stage=won&limit=50` |
//! | 20 | create | 10 `POST /contacts`, 5 `POST /companies`, 5 `POST /deals` |
//! | 5 | report | `GET /reports/{pipeline,tickets,campaigns,revenue}` in turn |
//! | 5 | CSV export | `GET /companies.csv` (the server has no paged export; see README) |
//!
//! Ids are uniform over what `crm-server seed --contacts N` creates:
//! contacts 1..=N, companies 1..=N/10, deals 1..=N/2.

use http::Method;

/// Which requests a run sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mix {
    /// The standard mix above.
    Standard,
    /// `GET /healthz` only: the server's cheapest route (HTTP ceiling).
    Healthz,
    /// `GET /contacts/{id}` over the first 100 ids only, so the cache serves them.
    ReadCached,
    /// `GET /contacts/{id}` uniform over all ids (run the server with
    /// `CRM_CACHE_TTL_SECS=0` for a cache that never hits).
    ReadUncached,
}

/// Request class, for per-class counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// Read one resource by id.
    Read,
    /// A list or search page.
    List,
    /// A create.
    Create,
    /// A report.
    Report,
    /// A CSV export.
    Export,
    /// Health check.
    Health,
}

/// One request to send.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Class of the request.
    pub class: Class,
    /// Method.
    pub method: Method,
    /// Path and query, below `/api/v1` unless it starts with `/healthz`.
    pub path: String,
    /// JSON body for creates.
    pub body: Option<String>,
}

const LAST: &[&str] = &[
    "Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Ritchie", "Liskov", "Thompson",
];
const REPORTS: &[&str] = &["pipeline", "tickets", "campaigns", "revenue"];

/// A deterministic generator (SplitMix64): the same seed, the same requests.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
    /// An exponential variate with this mean (Poisson inter-arrival times).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }
}

/// Makes the requests of a mix.
#[derive(Debug)]
pub struct Generator {
    mix: Mix,
    contacts: u64,
    rng: Rng,
    /// Distinguishes this run's created rows (emails are unique).
    run: u64,
    seq: u64,
}

impl Generator {
    /// A generator for a database seeded with `contacts` contacts.
    pub fn new(mix: Mix, contacts: u64, seed: u64, run: u64) -> Self {
        Self {
            mix,
            contacts: contacts.max(10),
            rng: Rng::new(seed),
            run,
            seq: 0,
        }
    }

    /// The next request.
    pub fn next_request(&mut self) -> Planned {
        self.seq += 1;
        match self.mix {
            Mix::Healthz => get(Class::Health, "/healthz".into()),
            Mix::ReadCached => get(
                Class::Read,
                format!("/contacts/{}", 1 + self.rng.below(100.min(self.contacts))),
            ),
            Mix::ReadUncached => get(
                Class::Read,
                format!("/contacts/{}", 1 + self.rng.below(self.contacts)),
            ),
            Mix::Standard => self.standard(),
        }
    }

    fn standard(&mut self) -> Planned {
        let n = self.contacts;
        let contact = 1 + self.rng.below(n);
        let company = 1 + self.rng.below(n / 10);
        let deal = 1 + self.rng.below(n / 2);
        let (run, seq) = (self.run, self.seq);
        match self.rng.below(100) {
            0..30 => get(Class::Read, format!("/contacts/{contact}")),
            30..45 => get(Class::Read, format!("/companies/{company}")),
            45..55 => get(Class::Read, format!("/deals/{deal}")),
            55..60 => {
                let q = LAST[self.rng.below(LAST.len() as u64) as usize];
                get(Class::List, format!("/contacts?q={q}&limit=20"))
            }
            60..65 => get(Class::List, "/companies?limit=50".into()),
            65..70 => get(Class::List, "/deals?stage=won&limit=50".into()),
            70..80 => post(
                "/contacts",
                format!(
                    r#"{{"first_name":"Load","last_name":"Gen","email":"load-{run}-{seq}@bench.example","company_id":{company}}}"#
                ),
            ),
            80..85 => post(
                "/companies",
                format!(r#"{{"name":"Bench {run}-{seq}","industry":"software"}}"#),
            ),
            85..90 => post(
                "/deals",
                format!(
                    r#"{{"title":"Bench deal {seq}","company_id":{company},"contact_id":{contact},"amount_minor":125000,"currency":"EUR","owner":"bench"}}"#
                ),
            ),
            90..95 => get(
                Class::Report,
                format!("/reports/{}", REPORTS[(seq % 4) as usize]),
            ),
            _ => get(Class::Export, "/companies.csv".into()),
        }
    }
}

fn get(class: Class, path: String) -> Planned {
    Planned {
        class,
        method: Method::GET,
        path,
        body: None,
    }
}

fn post(path: &str, body: String) -> Planned {
    Planned {
        class: Class::Create,
        method: Method::POST,
        path: path.into(),
        body: Some(body),
    }
}
