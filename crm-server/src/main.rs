//! `crm-server`: parse the configuration and serve (or seed / migrate).
#![forbid(unsafe_code)]

use anyhow::Context;
use base64::Engine;
use clap::Parser;
use crm_server::config::{Cli, Command, Modules};
use crm_server::db::Db;
use crm_server::{AppState, ops};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let cfg = cli.config;
    ops::init_logging(cfg.log_format);
    if let Some(command) = &cli.command
        && let Some(done) = crm_server::transfer::run(command, &cfg.database_url).await
    {
        return done.map_err(Into::into);
    }
    let modules = Modules::parse(&cfg.modules).map_err(anyhow::Error::msg)?;
    let api_key = match cfg.api_key.clone().filter(|k| !k.is_empty()) {
        Some(k) => k,
        None if cfg.require_api_key => {
            anyhow::bail!("CRM_API_KEY is required (CRM_REQUIRE_API_KEY=true)")
        }
        None => generated_key()?,
    };
    let db = Db::connect(&cfg.database_url, cfg.db_pool_size).await?;
    db.migrate().await?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => Ok(()),
        Command::Copy { .. } | Command::Backup { .. } | Command::Restore { .. } => Ok(()),
        Command::Seed { contacts } => {
            crm_server::seed::seed(&db, contacts)
                .await
                .context("seeding")?;
            Ok(())
        }
        Command::Serve => {
            ensure_admin(&db, &cfg).await?;
            let state = AppState::from_config(db, &api_key, modules, &cfg)?;
            if let Some(addr) = &cfg.metrics_addr {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding {addr}"))?;
                tracing::info!(%addr, "serving metrics");
                let metrics = crm_server::metrics::router(state.clone());
                tokio::spawn(async move {
                    if let Err(error) = axum::serve(listener, metrics).await {
                        tracing::error!(%error, "metrics listener failed");
                    }
                });
            }
            crm_server::webhooks::deliver::spawn(state.db.clone(), state.webhooks);
            let listener = tokio::net::TcpListener::bind(&cfg.listen_addr)
                .await
                .with_context(|| format!("binding {}", cfg.listen_addr))?;
            tracing::info!(addr = %cfg.listen_addr, "listening");
            ops::serve(
                listener,
                state,
                std::time::Duration::from_secs(cfg.shutdown_delay_secs),
            )
            .await
            .context("serving")
        }
    }
}

/// The web UI's first administrator, from CRM_ADMIN_EMAIL and
/// CRM_ADMIN_PASSWORD (both or neither).
async fn ensure_admin(db: &Db, cfg: &crm_server::config::Config) -> anyhow::Result<()> {
    let email = cfg.admin_email.as_deref().filter(|e| !e.is_empty());
    let password = cfg.admin_password.as_deref().filter(|p| !p.is_empty());
    let (email, password) = match (email, password) {
        (Some(e), Some(p)) => (e, p),
        (None, None) => return Ok(()),
        _ => anyhow::bail!("set both CRM_ADMIN_EMAIL and CRM_ADMIN_PASSWORD, or neither"),
    };
    let mut conn = db
        .pool
        .acquire()
        .await
        .context("creating the administrator")?;
    match crm_server::ui::users::ensure_admin(&mut conn, email, password).await {
        Ok(true) => tracing::info!(email, "created the web UI's administrator"),
        Ok(false) => {}
        Err(e) => anyhow::bail!("creating the administrator: {e}"),
    }
    Ok(())
}

/// A random key for local runs, printed once so the user can call the API.
fn generated_key() -> anyhow::Result<String> {
    let mut buf = [0u8; 24];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("random key: {e}"))?;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf);
    println!("No CRM_API_KEY set; generated API key for this run: {key}");
    Ok(key)
}
