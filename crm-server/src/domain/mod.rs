//! Validated values. Each is built by `parse` (or serde, which calls it), so
//! a handler never sees an invalid one.

use serde::{Deserialize, Serialize};

/// Declare a string newtype validated by `parse`.
macro_rules! text_type {
    ($(#[$m:meta])* $name:ident, $parse:expr, $schema:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validate `s`.
            pub fn parse(s: &str) -> Result<Self, String> {
                let f: fn(&str) -> Result<String, String> = $parse;
                f(s).map($name)
            }
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                let f: fn() -> utoipa::openapi::ObjectBuilder = $schema;
                f().build().into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

/// Characters `char::is_control` refuses (Unicode Cc), for patterns.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// Whitespace `char::is_whitespace` knows that is not a control character.
const SPACE: &str = r" \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// The pattern of `bounded` text: no control character but tab and line
/// feed, and at least one character that is neither space nor control.
pub fn text_pattern() -> String {
    let allowed = r"[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]";
    format!("^{allowed}*[^{CONTROL}{SPACE}]{allowed}*$")
}

fn text_schema(max: usize) -> utoipa::openapi::ObjectBuilder {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(text_pattern()))
}

/// Trimmed text of 1..=`max` characters. Length and control characters are
/// checked before trimming, so the OpenAPI schema says exactly this.
fn bounded(s: &str, max: usize) -> Result<String, String> {
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters other than tab and line feed".into());
    }
    let t = s.trim();
    if t.is_empty() {
        return Err("must not be empty or only spaces".into());
    }
    Ok(t.to_string())
}

text_type!(
    /// A name or title: 1..=200 characters, trimmed.
    Name,
    |s| bounded(s, 200),
    || text_schema(200)
);
text_type!(
    /// Free text: 1..=10000 characters.
    Text,
    |s| bounded(s, 10_000),
    || text_schema(10_000)
);
text_type!(
    /// An email address, lower-cased; unique per tenant for contacts.
    Email,
    |s| {
        let t = bounded(s, 254)?.to_lowercase();
        let (local, domain) = t.split_once('@').ok_or("must contain @")?;
        let bad = local.is_empty()
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains('@')
            || t.chars().any(char::is_whitespace);
        if bad {
            return Err("is not a valid email address".into());
        }
        Ok(t)
    },
    || {
        // Optional spaces around local@domain; the domain has a dot, neither
        // first nor last; no '@', space or control character inside.
        let ws = format!(r"[\t\n{SPACE}]");
        let c = format!("[^@{CONTROL}{SPACE}]");
        let d = format!("[^@.{CONTROL}{SPACE}]");
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .max_length(Some(254))
            .pattern(Some(format!("^{ws}*{c}+@{d}{c}*[.]{c}*{d}{ws}*$")))
    }
);
text_type!(
    /// ISO 4217 currency code: three upper-case ASCII letters.
    Currency,
    |s| {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(s.to_string())
        } else {
            Err("must be a three-letter upper-case ISO 4217 code".into())
        }
    },
    || utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some("^[A-Z]{3}$"))
);
text_type!(
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    |s| {
        let shape = s.len() == 10
            && s.bytes()
                .enumerate()
                .all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        match s.parse::<jiff::civil::Date>() {
            Ok(d) if shape && d.year() >= 1 => Ok(d.to_string()),
            _ => Err("must be a date YYYY-MM-DD (year 0001 to 9999)".to_string()),
        }
    },
    || utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
            utoipa::openapi::KnownFormat::Date,
        )))
        .pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
);

/// Declare a closed set of lower-case string values.
macro_rules! enum_type {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub enum $name { $(#[doc = $s] $variant),+ }

        impl $name {
            /// All values, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// Parse the wire form.
            pub fn parse(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$variant),)+
                    _ => Err(format!("must be one of: {}", [$($s),+].join(", "))),
                }
            }
            /// The wire and storage form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }
        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> { Self::parse(&s) }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String { v.as_str().to_string() }
        }
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::Type::String)
                    .enum_values(Some([$($s),+]))
                    .build()
                    .into()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

enum_type!(
    /// Where a deal is in the pipeline.
    DealStage { Lead => "lead", Qualified => "qualified", Proposal => "proposal",
        Negotiation => "negotiation", Won => "won", Lost => "lost" }
);
enum_type!(
    /// Life cycle of a support ticket.
    TicketStatus { Open => "open", Pending => "pending", Resolved => "resolved", Closed => "closed" }
);
enum_type!(
    /// Urgency of a ticket.
    Priority { Low => "low", Normal => "normal", High => "high", Urgent => "urgent" }
);
enum_type!(
    /// Marketing channel.
    Channel { Email => "email", Social => "social", Ads => "ads", Event => "event", Other => "other" }
);
enum_type!(
    /// Campaign life cycle.
    CampaignStatus { Planned => "planned", Active => "active", Completed => "completed",
        Cancelled => "cancelled" }
);
enum_type!(
    /// How a campaign member responded.
    MemberResponse { Pending => "pending", Sent => "sent", Opened => "opened",
        Responded => "responded", Converted => "converted", Unsubscribed => "unsubscribed" }
);
enum_type!(
    /// Kind of timeline entry.
    NoteKind { Note => "note", Call => "call", Email => "email", Meeting => "meeting" }
);

/// An amount in minor units (cents), never negative, below 10^15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct MinorUnits(i64);

impl MinorUnits {
    /// Validate an amount.
    pub fn parse(v: i64) -> Result<Self, String> {
        if (0..1_000_000_000_000_000).contains(&v) {
            Ok(Self(v))
        } else {
            Err("must be between 0 and 10^15 - 1 minor units".into())
        }
    }
    /// The amount.
    pub fn get(self) -> i64 {
        self.0
    }
}
impl TryFrom<i64> for MinorUnits {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        Self::parse(v)
    }
}
impl utoipa::PartialSchema for MinorUnits {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(0))
            .maximum(Some(999_999_999_999_999_i64))
            .build()
            .into()
    }
}
impl utoipa::ToSchema for MinorUnits {}
impl From<MinorUnits> for i64 {
    fn from(v: MinorUnits) -> i64 {
        v.0
    }
}

/// A customer satisfaction rating, 1 to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Rating(i64);

impl Rating {
    /// Validate a rating.
    pub fn parse(v: i64) -> Result<Self, String> {
        if (1..=5).contains(&v) {
            Ok(Self(v))
        } else {
            Err("must be between 1 and 5".into())
        }
    }
    /// The rating.
    pub fn get(self) -> i64 {
        self.0
    }
}
impl TryFrom<i64> for Rating {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        Self::parse(v)
    }
}
impl utoipa::PartialSchema for Rating {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Int64,
            )))
            .minimum(Some(1))
            .maximum(Some(5))
            .build()
            .into()
    }
}
impl utoipa::ToSchema for Rating {}
impl From<Rating> for i64 {
    fn from(v: Rating) -> i64 {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_lowercased_and_checked() {
        assert_eq!(Email::parse(" A@B.io ").map(|e| e.0), Ok("a@b.io".into()));
        assert!(Email::parse("nope").is_err());
        assert!(Email::parse("a@b").is_err());
        assert!(Email::parse("a b@c.io").is_err());
    }

    #[test]
    fn closed_sets_and_ranges() {
        assert_eq!(DealStage::parse("won"), Ok(DealStage::Won));
        assert!(DealStage::parse("Won").is_err());
        assert!(Rating::parse(0).is_err() && Rating::parse(6).is_err());
        assert!(MinorUnits::parse(-1).is_err());
        assert!(Currency::parse("eur").is_err());
        assert!(Date::parse("2025-02-30").is_err());
        for not_iso in [
            "2025-1-01",
            "20250101",
            "0000-01-01",
            "2025-01-01T00:00",
            "+2025-01-01",
        ] {
            assert!(Date::parse(not_iso).is_err(), "{not_iso}");
        }
    }

    #[test]
    fn text_is_measured_and_checked_before_trimming_as_the_schema_says() {
        assert_eq!(Name::parse("  Ada ").map(String::from), Ok("Ada".into()));
        assert!(
            Name::parse(&format!("{} ", "a".repeat(200))).is_err(),
            "201 characters"
        );
        assert!(Name::parse("\r Ada").is_err(), "carriage return");
        assert!(Name::parse("Ada\tLovelace\n").is_ok(), "tab and line feed");
        assert!(Name::parse(" \u{3000}\n").is_err(), "only spaces");
        assert!(Email::parse(" a@b.io\t").is_ok());
    }
}
