//! State the nodes of one PostgreSQL database share (issue 21, issue 16):
//! the SRS secret and the DKIM keys live in the database's `shared_state`
//! table (`store_pg::SharedState`) instead of each node's data directory,
//! so every node rewrites, checks and signs alike. On SQLite nothing
//! changes: `srs.key` and `dkim/` in the data directory. (The SCRAM
//! fake-salt secret is the directory's, in `directory_meta`.)
//!
//! A node whose `[relay] srs_secret` differs from the database's refuses
//! to start: SRS addresses one node made would fail the other's check.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use backends::postgres::SharedState;
use backends::{Backend, BackendConfig};
use delivery::dkim::{KeyInfo, Signer};

use crate::config::Loaded;

/// The `shared_state` name of the SRS secret.
const SRS_NAME: &str = "srs_secret";

/// The prefix of DKIM keys' names (then the key's file name).
const DKIM_PREFIX: &str = "dkim/";

/// How often a server on PostgreSQL reads the DKIM keys again: a key that
/// `mailroom dkim generate` stored on any machine signs within this.
pub const DKIM_REFRESH: Duration = Duration::from_secs(10);

/// The shared state of the configured database; None on SQLite.
pub async fn open(loaded: &Loaded) -> Result<Option<SharedState>, String> {
    open_backend(&crate::commands::backend_config(loaded)?).await
}

/// [`open`] for the factories' config.
pub async fn open_backend(config: &BackendConfig) -> Result<Option<SharedState>, String> {
    match config.backend {
        Backend::Sqlite => Ok(None),
        Backend::Postgres => SharedState::open(&config.pg_options())
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// The SRS of forwarded mail: the database's secret on PostgreSQL
/// (`[relay] srs_secret` when set must equal it; the first node stores
/// its own, or a new one), else `srskey::load`.
pub async fn srs(
    data_dir: &Path,
    configured: &str,
    shared: Option<&SharedState>,
    primary: &str,
) -> Result<delivery::srs::Srs, String> {
    let Some(shared) = shared else {
        return crate::srskey::load(data_dir, configured, primary);
    };
    let offered = if configured.is_empty() {
        delivery::srs::generate_secret()?
    } else {
        configured.to_string()
    };
    let stored = shared
        .get_or_put(SRS_NAME, &offered)
        .await
        .map_err(|e| format!("the SRS secret in the database: {e}"))?;
    if !configured.is_empty() && stored != configured {
        return Err(
            "[relay] srs_secret differs from the SRS secret in the database, which every node \
             uses: set the same one on every node, or leave it empty to take the database's \
             (refusing to start)"
                .to_string(),
        );
    }
    Ok(delivery::srs::Srs::new(stored.as_bytes(), primary))
}

/// Every DKIM key in the database, oldest first; unreadable rows are
/// logged and skipped.
pub async fn dkim_keys(shared: &SharedState) -> Result<Vec<KeyInfo>, String> {
    let rows = shared
        .list(DKIM_PREFIX)
        .await
        .map_err(|e| format!("DKIM keys in the database: {e}"))?;
    let keys = rows
        .into_iter()
        .filter_map(|(name, text)| {
            let key = KeyInfo::from_text(&text);
            if key.is_none() {
                tracing::warn!(%name, "dkim: unreadable key in the database skipped");
            }
            key
        })
        .collect();
    Ok(delivery::dkim::sorted(keys))
}

/// Stores a new key; an existing one of the same domain and selector is
/// refused, as a key file would be.
pub async fn dkim_store(shared: &SharedState, key: &KeyInfo) -> Result<(), String> {
    let name = format!("{DKIM_PREFIX}{}", key.storage_name());
    let stored = shared
        .put_new(&name, &key.to_text())
        .await
        .map_err(|e| format!("DKIM key in the database: {e}"))?;
    if !stored {
        return Err(format!(
            "a key for {} with selector {} exists in the database: choose another --selector \
             to rotate keys",
            key.domain, key.selector
        ));
    }
    Ok(())
}

/// The DKIM signer of a server: the data directory's keys on SQLite; on
/// PostgreSQL the database's, read again every [`DKIM_REFRESH`] by a task
/// that lives as long as the signer.
pub async fn dkim_signer(
    loaded: &Loaded,
    shared: Option<SharedState>,
) -> Result<Arc<Signer>, String> {
    let Some(shared) = shared else {
        return Ok(Arc::new(Signer::new(&loaded.data_dir)));
    };
    let keys = dkim_keys(&shared).await?;
    let mut seen: Vec<String> = keys.iter().map(KeyInfo::to_text).collect();
    let signer = Arc::new(Signer::with_keys(keys));
    let weak = Arc::downgrade(&signer);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DKIM_REFRESH);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(signer) = weak.upgrade() else {
                return;
            };
            match dkim_keys(&shared).await {
                Ok(keys) => {
                    let texts: Vec<String> = keys.iter().map(KeyInfo::to_text).collect();
                    if texts != seen {
                        tracing::info!(keys = keys.len(), "dkim: keys from the database");
                        seen = texts;
                        signer.set_keys(keys);
                    }
                }
                // The keys held go on signing; the next tick tries again.
                Err(e) => tracing::warn!(error = %e, "dkim: cannot read the keys"),
            }
        }
    });
    Ok(signer)
}
