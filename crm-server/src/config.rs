//! Every setting, each a flag and an environment variable.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The CRM HTTP service each tenant runs.
#[derive(Debug, Parser)]
#[command(name = "crm-server", version, about)]
pub struct Cli {
    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by all commands.
    #[command(flatten)]
    pub config: Config,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply migrations and exit.
    Migrate,
    /// Fill the database with deterministic demo data.
    Seed {
        /// How many contacts to create.
        #[arg(long, default_value_t = 100)]
        contacts: u32,
    },
    /// Copy a consistent snapshot of one database into another (SQLite or
    /// PostgreSQL either side), then verify row counts and a checksum per
    /// table. The source is only read; the target is migrated, must be
    /// empty (unless --replace) and is written in one transaction.
    Copy {
        /// The database to read (a URL like DATABASE_URL's).
        #[arg(long, env = "CRM_COPY_FROM", hide_env_values = true)]
        from: String,
        /// The database to write.
        #[arg(long, env = "CRM_COPY_TO", hide_env_values = true)]
        to: String,
        /// Remove the target's rows first, in the same transaction.
        #[arg(long, env = "CRM_COPY_REPLACE", default_value_t = false)]
        replace: bool,
    },
    /// Export a consistent, compressed snapshot of DATABASE_URL with a
    /// manifest into a new directory under --dir.
    Backup {
        /// Where backups are kept.
        #[arg(long, env = "CRM_BACKUP_DIR")]
        dir: std::path::PathBuf,
        /// Keep only this many backups (the newest) in --dir afterwards.
        #[arg(long, env = "CRM_BACKUP_RETAIN")]
        retain: Option<usize>,
    },
    /// Load a backup into DATABASE_URL, which must be empty (unless
    /// --replace), and verify it against the backup's manifest.
    Restore {
        /// The backup's directory.
        #[arg(long, env = "CRM_RESTORE_FROM")]
        from: std::path::PathBuf,
        /// Remove the database's rows first, in the same transaction.
        #[arg(long, env = "CRM_RESTORE_REPLACE", default_value_t = false)]
        replace: bool,
    },
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Server configuration.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "CRM_LISTEN_ADDR",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen_addr: String,
    /// Address of a second listener that serves only `/metrics`, so that a
    /// network policy can admit scrapers there and keep them off the API.
    /// None when unset (`/metrics` is served on the main address either way).
    #[arg(long, env = "CRM_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<String>,
    /// API key clients send as `Authorization: Bearer KEY`. Generated and
    /// printed once when unset (unless CRM_REQUIRE_API_KEY is true).
    #[arg(long, env = "CRM_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Refuse to start without an API key (deployed servers).
    #[arg(
        long,
        env = "CRM_REQUIRE_API_KEY",
        default_value_t = false,
        global = true
    )]
    pub require_api_key: bool,
    /// Database URL: sqlite://PATH?mode=rwc or postgres://USER@HOST:PORT/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://crm.db?mode=rwc",
        global = true
    )]
    pub database_url: String,
    /// Maximum database connections; half of them serve reads by id.
    #[arg(long, env = "CRM_DB_POOL_SIZE", default_value_t = 10, global = true)]
    pub db_pool_size: u32,
    /// Enabled modules, comma-separated: customers,sales,service,marketing,reports.
    #[arg(
        long,
        env = "CRM_MODULES",
        default_value = "customers,sales,service,marketing,reports",
        global = true
    )]
    pub modules: String,
    /// Log format.
    #[arg(
        long,
        env = "CRM_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
    /// Seconds a request may take before it is answered with 408.
    #[arg(
        long,
        env = "CRM_REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_secs: u64,
    /// Seconds readiness stays false after SIGTERM before the listener
    /// closes, so load balancers stop sending traffic first.
    #[arg(
        long,
        env = "CRM_SHUTDOWN_DELAY_SECS",
        default_value_t = 5,
        global = true
    )]
    pub shutdown_delay_secs: u64,
    /// Seconds a cached company/contact may be served (bounds staleness
    /// across replicas); 0 disables the cache.
    #[arg(long, env = "CRM_CACHE_TTL_SECS", default_value_t = 5, global = true)]
    pub cache_ttl_secs: u64,
    /// Entries the cache holds.
    #[arg(
        long,
        env = "CRM_CACHE_CAPACITY",
        default_value_t = 10_000,
        global = true
    )]
    pub cache_capacity: usize,
    /// Largest accepted request body in bytes.
    #[arg(
        long,
        env = "CRM_MAX_BODY_BYTES",
        default_value_t = 1_048_576,
        global = true
    )]
    pub max_body_bytes: usize,
    /// Responses smaller than this many bytes are sent uncompressed even
    /// when the client accepts gzip or brotli.
    #[arg(
        long,
        env = "CRM_COMPRESS_MIN_BYTES",
        default_value_t = crate::DEFAULT_COMPRESS_MIN_BYTES,
        global = true
    )]
    pub compress_min_bytes: u64,
    /// Serve reads only: every write is answered 503 with Retry-After. The
    /// operator sets it while the tenant's data is being moved or restored.
    #[arg(long, env = "CRM_READ_ONLY", default_value_t = false, global = true)]
    pub read_only: bool,
    /// Deliver webhooks to loopback, private and link-local addresses too
    /// (for tests and closed networks).
    #[arg(
        long,
        env = "CRM_WEBHOOK_ALLOW_LOOPBACK",
        default_value_t = false,
        global = true
    )]
    pub webhook_allow_loopback: bool,
    /// Wait before the first retry of a failed webhook delivery, in
    /// milliseconds; doubled for each further one (8 attempts in all).
    #[arg(
        long,
        env = "CRM_WEBHOOK_RETRY_BASE_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub webhook_retry_base_ms: u64,
    /// Email of the web UI's first administrator, created at start-up
    /// (with CRM_ADMIN_PASSWORD) when no user has this email.
    #[arg(long, env = "CRM_ADMIN_EMAIL", global = true)]
    pub admin_email: Option<String>,
    /// Password of that administrator (at least 10 characters); used only
    /// to create the user, never logged.
    #[arg(
        long,
        env = "CRM_ADMIN_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub admin_password: Option<String>,
    /// Mark the web UI's cookies `Secure` (they are anyway when a proxy
    /// says the request came over TLS with `X-Forwarded-Proto: https`).
    #[arg(
        long,
        env = "CRM_SECURE_COOKIES",
        default_value_t = false,
        global = true
    )]
    pub secure_cookies: bool,
}

/// The modules a server exposes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modules {
    /// Companies and contacts (and their notes).
    pub customers: bool,
    /// Deals, orders and their notes.
    pub sales: bool,
    /// Tickets and feedback.
    pub service: bool,
    /// Campaigns and members.
    pub marketing: bool,
    /// Aggregates.
    pub reports: bool,
}

impl Modules {
    /// Every module on.
    pub const ALL: Modules = Modules {
        customers: true,
        sales: true,
        service: true,
        marketing: true,
        reports: true,
    };

    /// Parse `customers,sales,...`; unknown names are an error.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut m = Modules {
            customers: false,
            sales: false,
            service: false,
            marketing: false,
            reports: false,
        };
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "customers" => m.customers = true,
                "sales" => m.sales = true,
                "service" => m.service = true,
                "marketing" => m.marketing = true,
                "reports" => m.reports = true,
                other => return Err(format!("unknown module {other:?} in CRM_MODULES")),
            }
        }
        Ok(m)
    }
}
