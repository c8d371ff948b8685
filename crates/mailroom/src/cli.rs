//! The command line of SPEC 7. The names are a public interface that
//! scripts and docs rely on: keep them.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::datadir::Missing;
use crate::{commands, config, serve};

#[derive(Parser, Debug)]
#[command(
    name = "mailroom",
    version,
    about = "SMTP, POP3 and IMAP mail server in one binary"
)]
pub struct Cli {
    /// Config file (default: $MAILROOM_CONFIG, else ./mailroom.toml, else
    /// /etc/mailroom/mailroom.toml, else the quick-start defaults)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Create the data directory if it does not exist (only `serve` does
    /// so by itself: a command run with the wrong config must not quietly
    /// start an empty store)
    #[arg(long, global = true)]
    pub create_data_dir: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run every listener until SIGTERM or SIGINT
    Serve,
    /// Manage users
    #[command(subcommand)]
    User(UserCmd),
    /// Manage aliases: one address delivering to others
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Manage mailing lists: EXPN shows the members, mail goes to each
    #[command(subcommand)]
    List(ListCmd),
    /// Manage RFC 821 forwarding: RCPT answers 251 (or 551 with --refuse)
    #[command(subcommand)]
    Forward(ForwardCmd),
    /// The outbound queue: mail waiting to leave for other domains
    #[command(subcommand)]
    Queue(QueueCmd),
    /// DKIM keys that sign our domains' outbound mail (RFC 6376)
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Import an mbox file or a Maildir++ tree into ADDRESS's mailboxes
    /// (a rerun skips what an earlier run imported)
    Import {
        address: String,
        path: PathBuf,
        /// mbox or maildir (default: maildir for a directory, else mbox)
        #[arg(long)]
        format: Option<String>,
        /// The mailbox to import into (mbox; default INBOX), or under
        /// which to put the Maildir's folders
        #[arg(long, value_name = "NAME")]
        folder: Option<String>,
    },
    /// Copy the data directory of a running (or stopped) server into DIR,
    /// consistently: the databases as snapshots, keys and certificates
    Backup { dir: PathBuf },
    /// Restore a backup from DIR into the configured data directory, which
    /// must be missing or empty (so no server runs on it)
    Restore { dir: PathBuf },
    /// Copy the configured (embedded) data directory's mail, queue,
    /// directory, DKIM keys and SRS secret into an empty PostgreSQL
    /// database, keeping UIDs, flags and mod-sequences, in committed
    /// batches: a rerun after an interruption resumes; stop the server
    /// first, then set `[store] backend = "postgres"` and `url`
    Migrate {
        /// postgres://user:password@host:port/dbname (sslmode=, sslrootcert=)
        #[arg(long, value_name = "URL")]
        to: String,
        /// Rows per committed batch
        #[arg(long, value_name = "ROWS", default_value_t = backends::postgres::MIGRATE_BATCH)]
        batch: usize,
    },
    /// Export ADDRESS's mailboxes into DIR (Maildir++, or one mbox file
    /// per folder)
    Export {
        address: String,
        dir: PathBuf,
        /// maildir (default) or mbox
        #[arg(long, default_value = "maildir")]
        format: String,
    },
    /// Deliver a message from standard input to ADDRESS's mailbox (an LDA)
    Deliver {
        /// Recipient address (a bare local part means the primary domain)
        address: String,
        /// Envelope sender, written as Return-Path
        #[arg(long, short = 'f', value_name = "SENDER")]
        from: Option<String>,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct PasswordArgs {
    /// The password (visible in the process list: prefer --password-stdin)
    #[arg(long, value_name = "PW")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user with its mailboxes
    Add {
        address: String,
        /// Full name, shown by VRFY
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete a user and all of their mail
    Del { address: String },
    /// Change a user's password
    Passwd {
        address: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// List users
    List,
    /// Set a user's quota: SIZE in octets, or with K, M or G (1024-based);
    /// 0 is unlimited
    Quota {
        address: String,
        size: String,
        /// At most this many messages (0: unlimited)
        #[arg(long)]
        messages: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AliasCmd {
    /// Create an alias, or add targets to an existing one
    Add {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// Remove targets, or the whole alias when none is named
    Del {
        address: String,
        targets: Vec<String>,
    },
    /// List aliases
    List,
}

#[derive(Subcommand, Debug)]
pub enum ListCmd {
    /// Create a mailing list, or add members to an existing one
    Add {
        address: String,
        #[arg(required = true)]
        members: Vec<String>,
    },
    /// Remove members, or the whole list when none is named
    Del {
        address: String,
        members: Vec<String>,
    },
    /// Show mailing lists and their members
    Show,
}

#[derive(Subcommand, Debug)]
pub enum QueueCmd {
    /// One line per queued recipient: id, status, attempts, next attempt,
    /// sender, recipient, last error
    List {
        /// One JSON object per line instead
        #[arg(long)]
        json: bool,
    },
    /// One entry in full, with its message
    Show { id: i64 },
    /// Make an entry (or, with --all, every entry) due now
    Retry {
        #[arg(required_unless_present = "all")]
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
        all: bool,
    },
    /// Remove an entry: its recipient will not get the message
    Delete { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum DkimCmd {
    /// Make a key for DOMAIN, kept in the data directory, and print the
    /// DNS TXT record to publish
    Generate {
        domain: String,
        /// The selector (default: mr-rsa, or mr-ed for ed25519)
        #[arg(long)]
        selector: Option<String>,
        /// rsa (2048 bits) or ed25519 (RFC 8463)
        #[arg(long, default_value = "rsa")]
        algorithm: String,
    },
    /// Every key with its record, and which one signs
    List,
}

#[derive(Subcommand, Debug)]
pub enum ForwardCmd {
    /// Forward ADDRESS's mail to TARGET
    Set {
        address: String,
        target: String,
        /// Keep a local copy too
        #[arg(long)]
        keep: bool,
        /// Do not forward: answer 551 with the new address instead
        #[arg(long, conflicts_with = "keep")]
        refuse: bool,
    },
    /// Stop forwarding
    Del { address: String },
}

impl PasswordArgs {
    fn resolve(self) -> Result<String, String> {
        match (self.password, self.password_stdin) {
            (Some(pw), _) => Ok(pw),
            (None, true) => {
                let mut s = String::new();
                std::io::stdin()
                    .take(commands::MAX_PASSWORD_INPUT)
                    .read_to_string(&mut s)
                    .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
                let pw = s.lines().next().unwrap_or("").to_string();
                if pw.is_empty() {
                    return Err("empty password on stdin".into());
                }
                Ok(pw)
            }
            (None, false) => Err("give --password PW or --password-stdin".into()),
        }
    }
}

/// Exit statuses. `mailroom deliver` uses the sysexits.h codes that MTAs
/// and fetchmail read from an LDA; every other failure is 1.
pub mod exit {
    /// EX_USAGE: bad arguments (an address that is not one).
    pub const USAGE: u8 = 64;
    /// EX_DATAERR: the message itself is unusable (empty, too large).
    pub const DATA_ERR: u8 = 65;
    /// EX_NOUSER: no such local recipient.
    pub const NO_USER: u8 = 67;
    /// EX_TEMPFAIL: try again later (store busy, disk full, I/O).
    pub const TEMP_FAIL: u8 = 75;
    /// EX_CONFIG: the config or the data directory is wrong.
    pub const CONFIG: u8 = 78;
    /// Everything else.
    pub const FAILURE: u8 = 1;
}

/// A failed command: its message and exit status.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(exit::FAILURE, message)
    }
}

pub fn run(cli: Cli) -> Result<(), Failure> {
    let missing = if cli.create_data_dir {
        Missing::Create
    } else {
        Missing::Refuse
    };
    if let Cmd::Deliver { address, from } = &cli.command {
        return deliver(cli.config.as_deref(), missing, address, from.as_deref());
    }
    let loaded = config::load(cli.config.as_deref())?;
    let result = match cli.command {
        Cmd::Serve => serve::run(loaded),
        Cmd::User(c) => {
            let ctx = commands::Ctx::open(&loaded, missing).map_err(|f| f.message)?;
            match c {
                UserCmd::Add {
                    address,
                    name,
                    password,
                } => ctx.user_add(&address, name.as_deref(), &password.resolve()?),
                UserCmd::Del { address } => ctx.user_del(&address),
                UserCmd::Passwd { address, password } => {
                    ctx.user_passwd(&address, &password.resolve()?)
                }
                UserCmd::List => ctx.user_list(),
                UserCmd::Quota {
                    address,
                    size,
                    messages,
                } => ctx.user_quota(&address, &size, messages),
            }
        }
        Cmd::Alias(c) => {
            let ctx = commands::Ctx::open(&loaded, missing).map_err(|f| f.message)?;
            match c {
                AliasCmd::Add { address, targets } => ctx.alias_add(&address, &targets),
                AliasCmd::Del { address, targets } => ctx.alias_del(&address, &targets),
                AliasCmd::List => ctx.alias_list(),
            }
        }
        Cmd::List(c) => {
            let ctx = commands::Ctx::open(&loaded, missing).map_err(|f| f.message)?;
            match c {
                ListCmd::Add { address, members } => ctx.list_add(&address, &members),
                ListCmd::Del { address, members } => ctx.list_del(&address, &members),
                ListCmd::Show => ctx.list_show(),
            }
        }
        Cmd::Forward(c) => {
            let ctx = commands::Ctx::open(&loaded, missing).map_err(|f| f.message)?;
            match c {
                ForwardCmd::Set {
                    address,
                    target,
                    keep,
                    refuse,
                } => ctx.forward_set(&address, &target, keep, refuse),
                ForwardCmd::Del { address } => ctx.forward_del(&address),
            }
        }
        Cmd::Queue(c) => {
            let ctx = commands::Ctx::open(&loaded, missing).map_err(|f| f.message)?;
            match c {
                QueueCmd::List { json } => ctx.queue_list(json),
                QueueCmd::Show { id } => ctx.queue_show(id),
                QueueCmd::Retry { id, .. } => ctx.queue_retry(id),
                QueueCmd::Delete { id } => ctx.queue_delete(id),
            }
        }
        Cmd::Dkim(c) => {
            // Refuses a missing data directory like every other command.
            commands::Ctx::open(&loaded, missing).map_err(|f| f.message)?;
            match c {
                DkimCmd::Generate {
                    domain,
                    selector,
                    algorithm,
                } => commands::dkim_generate(&loaded, &domain, selector.as_deref(), &algorithm),
                DkimCmd::List => commands::dkim_list(&loaded),
            }
        }
        Cmd::Import {
            address,
            path,
            format,
            folder,
        } => {
            let ctx = commands::Ctx::open(&loaded, missing).map_err(|f| f.message)?;
            ctx.import(&address, &path, format.as_deref(), folder.as_deref())
        }
        Cmd::Export {
            address,
            dir,
            format,
        } => {
            let ctx = commands::Ctx::open(&loaded, missing).map_err(|f| f.message)?;
            ctx.export(&address, &dir, &format)
        }
        Cmd::Backup { dir } => commands::backup(&loaded, &dir),
        Cmd::Restore { dir } => commands::restore(&loaded, &dir),
        Cmd::Migrate { to, batch } => commands::migrate(&loaded, &to, batch),
        Cmd::Deliver { .. } => Ok(()),
    };
    Ok(result?)
}

/// `mailroom deliver`: as an LDA, every failure has its sysexits code.
fn deliver(
    config: Option<&std::path::Path>,
    missing: Missing,
    address: &str,
    from: Option<&str>,
) -> Result<(), Failure> {
    let loaded = config::load(config).map_err(|e| Failure::new(exit::CONFIG, e))?;
    commands::Ctx::open(&loaded, missing)?.deliver(address, from)
}
