//! Deterministic demo data: the same `--contacts N` on an empty database
//! always produces the same rows (timestamps included), for demos and
//! benchmarks.

use crate::db::{Db, Sql};
use crate::domain::{CampaignStatus, Channel, DealStage, MemberResponse, Priority, TicketStatus};

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Linus",
    "Margaret",
    "Dennis",
    "Barbara",
    "Ken",
    "Frances",
    "John",
    "Radia",
    "Edsger",
    "Hedy",
    "Donald",
    "Katherine",
    "Tim",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Torvalds",
    "Hamilton",
    "Ritchie",
    "Liskov",
    "Thompson",
    "Allen",
    "Backus",
    "Perlman",
    "Dijkstra",
    "Lamarr",
    "Knuth",
    "Johnson",
    "Berners-Lee",
];
const COMPANY: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Aperture",
];
const INDUSTRY: &[&str] = &["software", "retail", "manufacturing", "finance", "health"];
const CURRENCY: &[&str] = &["EUR", "USD", "GBP"];

/// A small deterministic generator (SplitMix64), so no dependency and no
/// change of output across library versions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Timestamp `hours` after 2025-01-01T00:00:00Z, in the stored format.
fn at(hours: u64) -> String {
    let base = jiff::Timestamp::from_second(1_735_689_600).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let ts = base
        .checked_add(jiff::SignedDuration::from_hours(hours as i64))
        .unwrap_or(base);
    format!("{}.000000Z", ts.strftime("%Y-%m-%dT%H:%M:%S"))
}

/// Insert `contacts` contacts with companies, deals, notes, tickets and
/// campaigns, in one transaction.
pub async fn seed(db: &Db, contacts: u32) -> Result<(), sqlx::Error> {
    let mut rng = Rng(42);
    let mut tx = db.pool.begin().await?;
    let n = u64::from(contacts);
    let companies = (n / 10).max(1);
    let mut company_ids = Vec::new();
    for i in 0..companies {
        let name = format!("{} {}", rng.pick(COMPANY), i + 1);
        let mut sql = Sql::new(
            "INSERT INTO companies (name, domain, industry, created_at, updated_at) VALUES (",
        );
        sql.bind(name.clone())
            .push(", ")
            .bind(format!("{}.example", slug(&name)));
        sql.push(", ")
            .bind(rng.pick(INDUSTRY))
            .push(", ")
            .bind(at(i))
            .push(", ")
            .bind(at(i));
        sql.push(") RETURNING id");
        company_ids.push(returned_id(sql.fetch_optional(&mut *tx).await?)?);
    }
    // Ids are collected, not assumed contiguous: sequences can have gaps.
    let mut ids = Vec::with_capacity(n as usize);
    let base = max_id(&mut tx).await?;
    for i in 0..n {
        let (f, l) = (rng.pick(FIRST), rng.pick(LAST));
        let company = company_ids[rng.below(company_ids.len())];
        let mut sql = Sql::new(
            "INSERT INTO contacts (first_name, last_name, email, phone, company_id, created_at, \
             updated_at) VALUES (",
        );
        let email = format!(
            "{}.{}.{}@example.com",
            slug(f),
            slug(l),
            base + i as i64 + 1
        );
        sql.bind(f)
            .push(", ")
            .bind(l)
            .push(", ")
            .bind(email)
            .push(", ");
        sql.bind(format!("+1 555 {:04}", rng.below(10_000)))
            .push(", ")
            .bind(company);
        sql.push(", ")
            .bind(at(i))
            .push(", ")
            .bind(at(i))
            .push(") RETURNING id");
        ids.push(returned_id(sql.fetch_optional(&mut *tx).await?)?);
    }
    if !ids.is_empty() {
        seed_deals(&mut tx, &mut rng, n / 2, &ids).await?;
        seed_tickets(&mut tx, &mut rng, n / 3, &ids).await?;
        seed_campaigns(&mut tx, &mut rng, &ids).await?;
    }
    tx.commit().await
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

async fn seed_deals(
    tx: &mut Tx<'_>,
    rng: &mut Rng,
    count: u64,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    for i in 0..count {
        let stage = DealStage::ALL[rng.below(DealStage::ALL.len())];
        let created = i * 3;
        let closed = matches!(stage, DealStage::Won | DealStage::Lost)
            .then(|| at(created + 24 * rng.below(300) as u64));
        let mut sql = Sql::new(
            "INSERT INTO deals (title, contact_id, stage, amount_minor, currency, expected_close, \
             owner, closed_at, created_at, updated_at) VALUES (",
        );
        sql.bind(format!("Deal {}", i + 1))
            .push(", ")
            .bind(ids[rng.below(ids.len())]);
        sql.push(", ")
            .bind(stage.as_str())
            .push(", ")
            .bind((rng.below(5_000) as i64 + 1) * 10_000);
        sql.push(", ")
            .bind(rng.pick(CURRENCY))
            .push(", ")
            .bind(at(created + 24 * 90)[..10].to_string());
        sql.push(", ")
            .bind(rng.pick(&["sam", "alex", "kim", "jo"]))
            .push(", ")
            .bind(closed);
        sql.push(", ")
            .bind(at(created))
            .push(", ")
            .bind(at(created))
            .push(")");
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn seed_tickets(
    tx: &mut Tx<'_>,
    rng: &mut Rng,
    count: u64,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    for i in 0..count {
        let status = TicketStatus::ALL[rng.below(TicketStatus::ALL.len())];
        let done = matches!(status, TicketStatus::Resolved | TicketStatus::Closed);
        let created = i * 5;
        let mut sql = Sql::new(
            "INSERT INTO tickets (contact_id, subject, status, priority, rating, resolved_at, \
             created_at, updated_at) VALUES (",
        );
        sql.bind(ids[rng.below(ids.len())])
            .push(", ")
            .bind(format!("Issue #{}", i + 1));
        sql.push(", ").bind(status.as_str()).push(", ");
        sql.bind(Priority::ALL[rng.below(Priority::ALL.len())].as_str())
            .push(", ");
        sql.bind(done.then(|| rng.below(5) as i64 + 1)).push(", ");
        sql.bind(done.then(|| at(created + 1 + rng.below(72) as u64)))
            .push(", ");
        sql.bind(at(created)).push(", ").bind(at(created)).push(")");
        sql.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn seed_campaigns(tx: &mut Tx<'_>, rng: &mut Rng, ids: &[i64]) -> Result<(), sqlx::Error> {
    for i in 0..3u64 {
        let mut sql = Sql::new(
            "INSERT INTO campaigns (name, channel, status, budget_minor, currency, starts_on, \
             ends_on, created_at, updated_at) VALUES (",
        );
        sql.bind(format!("Campaign {}", i + 1)).push(", ");
        sql.bind(Channel::ALL[i as usize % Channel::ALL.len()].as_str())
            .push(", ");
        sql.bind(CampaignStatus::ALL[i as usize % CampaignStatus::ALL.len()].as_str())
            .push(", ");
        sql.bind(1_000_000 * (i as i64 + 1))
            .push(", ")
            .bind("EUR")
            .push(", ");
        sql.bind(at(i * 24 * 30)[..10].to_string()).push(", ");
        sql.bind(at((i + 1) * 24 * 30)[..10].to_string()).push(", ");
        sql.bind(at(i))
            .push(", ")
            .bind(at(i))
            .push(") RETURNING id");
        let id = returned_id(sql.fetch_optional(&mut **tx).await?)?;
        // Every third contact, shifted per campaign, is a member.
        for c in (i as usize..ids.len()).step_by(3) {
            let resp = MemberResponse::ALL[rng.below(MemberResponse::ALL.len())];
            let mut sql = Sql::new(
                "INSERT INTO campaign_members (campaign_id, contact_id, response, updated_at) VALUES (",
            );
            sql.bind(id)
                .push(", ")
                .bind(ids[c])
                .push(", ")
                .bind(resp.as_str());
            sql.push(", ").bind(at(c as u64)).push(")");
            sql.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

fn slug(s: &str) -> String {
    s.to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

fn returned_id(row: Option<sqlx::any::AnyRow>) -> Result<i64, sqlx::Error> {
    let row = row.ok_or(sqlx::Error::RowNotFound)?;
    sqlx::Row::try_get(&row, "id")
}

/// Highest contact id so far, so emails stay unique when seeding twice.
async fn max_id(tx: &mut Tx<'_>) -> Result<i64, sqlx::Error> {
    let row = Sql::new("SELECT CAST(MAX(id) AS BIGINT) AS id FROM contacts")
        .fetch_optional(&mut **tx)
        .await?;
    let v: Option<i64> = match row {
        Some(r) => sqlx::Row::try_get(&r, "id")?,
        None => None,
    };
    Ok(v.unwrap_or(0))
}
