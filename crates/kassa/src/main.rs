//! The `kassa` command: the gateway (`serve`), the operator's commands (merchants, apps,
//! keys, migrations) and the merchant developer's tools (`sign`, `verify`).

mod bench;
mod channels;
mod checks;
mod config;
mod kek;
mod keyfiles;
mod ledger;
mod listen;
mod log_lines;
mod operator;
mod serve;
mod users;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc, not the system allocator: a request allocates about a hundred times, and glibc's
/// malloc and free were a tenth of a query's instructions (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kassa",
    version,
    about = "kassa — a self-hosted payment collection gateway"
)]
struct Cli {
    /// Log lines as text for people, or as JSON objects (one per line) for log collectors.
    #[arg(
        long,
        global = true,
        env = "KASSA_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

/// Commands that never open a database: they take no database options.
const OFFLINE_COMMANDS: [&str; 5] = ["sign", "verify", "pix", "openapi", "null-gateway"];

/// The options of every command that opens a database, given to those commands (and their
/// subcommands) only, so that `kassa sign --help` does not offer a database.
fn database_options() -> [clap::Arg; 3] {
    use clap::Arg;
    [
        Arg::new("database_url")
            .long("database-url")
            .env("KASSA_DATABASE_URL")
            .global(true)
            .help(
                "Database: sqlite://PATH (created if missing) or postgres://USER@HOST/DB. \
                 [default: sqlite://kassa-data/kassa.db]",
            ),
        Arg::new("config")
            .long("config")
            .env("KASSA_CONFIG")
            .global(true)
            .value_parser(clap::value_parser!(PathBuf))
            .help("A TOML file with defaults for the options (flags and KASSA_* variables override it)."),
        Arg::new("kek_file")
            .long("kek-file")
            .env("KASSA_KEK_FILE")
            .global(true)
            .value_parser(clap::value_parser!(PathBuf))
            .help(
                "A file holding the key-encryption key of the database's secrets (base64 of 32 \
                 bytes; KASSA_KEK may hold the key itself). [default: `kek` beside a SQLite \
                 database, created there the first time; required for PostgreSQL]",
            ),
    ]
}

/// The whole command line: the derived one, with the database options on the commands that
/// open a database.
fn command_line() -> clap::Command {
    let mut command = Cli::command();
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_string())
        .filter(|name| !OFFLINE_COMMANDS.contains(&name.as_str()))
        .collect();
    for name in names {
        command = command.mut_subcommand(name, |sub| sub.args(database_options()));
    }
    command
}

/// The database options as given to the command.
struct DatabaseOptions {
    database_url: Option<String>,
    config: Option<PathBuf>,
    kek_file: Option<PathBuf>,
}

impl DatabaseOptions {
    fn of(matches: &clap::ArgMatches) -> DatabaseOptions {
        let command = matches.subcommand().map(|(_, sub)| sub).unwrap_or(matches);
        let path = |id: &str| command.try_get_one::<PathBuf>(id).ok().flatten().cloned();
        DatabaseOptions {
            database_url: command
                .try_get_one::<String>("database_url")
                .ok()
                .flatten()
                .cloned(),
            config: path("config"),
            kek_file: path("kek_file"),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(Box<config::ServeOptions>),
    /// Bring the database schema up to date (serve does this on start too).
    Migrate,
    /// Manage merchants.
    #[command(subcommand)]
    Merchant(operator::MerchantCommand),
    /// Manage a merchant's apps (one per currency).
    App {
        /// Print the app's webhook secret and its public key's PEM (hidden otherwise).
        #[arg(long, global = true)]
        show_secrets: bool,
        #[command(subcommand)]
        command: operator::AppCommand,
    },
    /// Show platform keys.
    #[command(subcommand)]
    Keys(operator::KeysCommand),
    /// Inspect and resend callbacks to merchants.
    #[command(subcommand)]
    Callback(operator::CallbackCommand),
    /// Manage the channels rails move money through (upstream PSP accounts, the sandbox).
    Channel {
        /// Print the public keys' PEM (fingerprints otherwise): kassa's, to register at the
        /// upstream.
        #[arg(long, global = true)]
        show_secrets: bool,
        #[command(subcommand)]
        command: Box<channels::ChannelCommand>,
    },
    /// What the books say an app's merchant is owed (pending, available) and paid in fees.
    Balance { app_id: i64 },
    /// The books: verify their invariants, settle what is due.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
    /// Reports from the books.
    #[command(subcommand)]
    Report(ledger::ReportCommand),
    /// Compare a channel's day with what the upstream says of it and list every difference
    /// (exits non-zero when there is one).
    Reconcile(channels::ReconcileArgs),
    /// Inspect orders and settle exceptions.
    #[command(subcommand)]
    Order(operator::OrderCommand),
    /// Take what is past its retention out of the hot tables now, until nothing is left: final
    /// orders to the archive, old delivered or given-up callbacks deleted (`kassa serve` with
    /// --order-retention or --callback-retention does this by itself, paced).
    Prune(operator::PruneArgs),
    /// The back office's users: add (the first operator too), list, disable, reset a password.
    #[command(subcommand)]
    User(users::UserCommand),
    /// PIX tools.
    #[command(subcommand)]
    Pix(operator::PixCommand),
    /// Play the bank of the sandbox rail from the command line.
    #[command(subcommand)]
    Sandbox(operator::SandboxCommand),
    /// The sandbox's shortcut: `kassa trigger ORDER_NO --outcome paid` settles an order as the
    /// payer's bank would (the same as `kassa sandbox pay`).
    Trigger(operator::TriggerArgs),
    /// Measure kassa under load: throughput, latency, CPU per request against the crypto floor.
    Bench(bench::BenchArgs),
    /// The bench's reference server (`kassa bench --scenario limit` starts it).
    #[command(hide = true)]
    NullGateway(bench::null_gateway::NullGatewayArgs),
    /// The callbacks scenario's reference client (`kassa bench --scenario callbacks` starts it).
    #[command(hide = true)]
    PlainClient(bench::plain_client::PlainClientArgs),
    /// Sign a JSON request with a merchant private key and print it with `sign` set.
    Sign(SignArgs),
    /// Check the signature of a JSON reply or callback with the platform public key.
    Verify(VerifyArgs),
    /// Receive callbacks while you develop: print each, check both signatures, answer
    /// `success` (or a chosen failure), optionally forward to your own endpoint.
    Listen(listen::ListenArgs),
    /// Print the OpenAPI 3.1 description of the HTTP API (as served at /openapi.json).
    Openapi,
}

#[derive(Args)]
struct SignArgs {
    /// The merchant's private key (PKCS#8 or PKCS#1 PEM).
    #[arg(long)]
    key: PathBuf,
    /// The JSON file to sign; `-` or nothing reads standard input.
    input: Option<PathBuf>,
}

#[derive(Args)]
struct VerifyArgs {
    /// The public key to verify with (PEM or base64 DER), usually the platform's.
    #[arg(long)]
    key: PathBuf,
    /// A header of the message, `Name: value` — a pix reply's or callback's `X-Sign`, or a
    /// callback's `webhook-*` headers. Repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE")]
    headers: Vec<String>,
    /// The app's webhook secret (`whsec_…`): also check a callback's Standard Webhooks
    /// signature (its headers from --header or the saved exchange).
    #[arg(long)]
    secret: Option<String>,
    /// The signed JSON — a reply (its envelope's `data` is checked), a callback, or a saved HTTP
    /// exchange with its headers (`curl -si` output); `-` or nothing reads standard input.
    input: Option<PathBuf>,
}

/// What a command failed with: a message for the person at the terminal.
#[derive(Debug)]
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

pub type Outcome = Result<(), Failure>;

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn init_logging(serving: bool, format: LogFormat) {
    // The server logs at info; one-shot commands stay quiet unless asked.
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("KASSA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only for a person at a terminal: escape codes in a log file or a collector's
    // pipe are noise to read and cost formatting on every span.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A request's lines name it as a `request` span would (log_lines.rs).
    match format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .event_format(log_lines::text())
            .init(),
        // One object per line: RFC 3339 time, level, target, message, fields, and every span
        // the line is in (a request's carries its request_id).
        LogFormat::Json => logs
            .with_ansi(false)
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(log_lines::json())
            .init(),
    }
}

/// One-shot commands end like any Unix tool when their reader goes away (`kassa … | head`):
/// by SIGPIPE, silently, instead of a panic about a failed print. The server keeps Rust's
/// default (the signal ignored), so a client that hangs up never stops it.
fn die_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called before any other thread exists; restores the default disposition of one
    // signal, which has no memory-safety effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    // The matches are kept: they tell which options the command line or environment set, so
    // the config file fills in only the others.
    let matches = command_line().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let serving = matches!(cli.command, Command::Serve(_));
    if !serving {
        die_quietly_on_a_closed_pipe();
    }
    init_logging(serving, cli.log_format);
    // Before any thread could touch SQLite: its configuration is not thread-safe.
    kassa_store::sqlite_page_cache::install();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Short slices let a thread that wakes (the SQLite writer, a database's process on
        // the same cores) preempt a worker that is signing sooner (docs/performance.md,
        // "Short slices for the runtime's workers").
        .on_thread_start(|| {
            use kassa_store::scheduling::{SHORT_SLICE, ask_for_short_slices};
            ask_for_short_slices(SHORT_SLICE)
        })
        .build()
        .expect("start the async runtime");
    let outcome = runtime.block_on(run(cli, &matches));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("kassa: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The commands without a database.
fn run_offline(command: Command) -> Outcome {
    match command {
        Command::Pix(command) => operator::pix(command),
        Command::Sign(args) => keyfiles::sign(&args.key, args.input.as_deref()),
        Command::Verify(args) => keyfiles::verify(
            &args.key,
            args.input.as_deref(),
            &args.headers,
            args.secret.as_deref(),
        ),
        Command::Openapi => {
            print!("{}", kassa_server::openapi::document_json());
            Ok(())
        }
        _ => unreachable!("only offline commands come here"),
    }
}

async fn run(cli: Cli, matches: &clap::ArgMatches) -> Outcome {
    let name = matches.subcommand_name().unwrap_or_default();
    if let Command::NullGateway(args) = cli.command {
        return bench::null_gateway::serve(args).await;
    }
    if let Command::PlainClient(args) = cli.command {
        return bench::plain_client::run(args).await;
    }
    if OFFLINE_COMMANDS.contains(&name) {
        return run_offline(cli.command);
    }
    let options = DatabaseOptions::of(matches);
    let file = config::ConfigFile::load(options.config.as_deref()).map_err(Failure)?;
    let named_database = options
        .database_url
        .or(file.database_url().map_err(Failure)?);
    let database_url =
        (named_database.clone()).unwrap_or_else(|| config::DEFAULT_DATABASE_URL.to_string());
    kek::configure(kek::Source {
        text: std::env::var("KASSA_KEK").ok(),
        file: options.kek_file,
        database_url: database_url.clone(),
    });
    if let Command::Bench(args) = cli.command {
        // A bench makes its own fresh database unless one is named.
        return bench::run(args, named_database.as_deref()).await;
    }
    match cli.command {
        Command::Serve(options) => {
            let serve_matches = matches
                .subcommand_matches("serve")
                .expect("serve was parsed");
            let options = options.with_file(serve_matches, &file).map_err(Failure)?;
            serve::run(options, &database_url).await
        }
        Command::Migrate => {
            operator::open_store(&database_url).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Merchant(command) => operator::merchant(command, &database_url).await,
        Command::App {
            command,
            show_secrets,
        } => operator::app(command, show_secrets, &database_url).await,
        Command::Keys(command) => operator::keys(command, &database_url).await,
        Command::Callback(command) => operator::callback(command, &database_url).await,
        Command::Sandbox(command) => operator::sandbox(command, &database_url).await,
        Command::Trigger(args) => operator::sandbox(args.into(), &database_url).await,
        Command::Order(command) => operator::order(command, &database_url).await,
        Command::Prune(args) => operator::prune(args, &database_url).await,
        Command::Channel {
            command,
            show_secrets,
        } => {
            let store = operator::open_store(&database_url).await?;
            channels::channel(*command, show_secrets, &store).await
        }
        Command::Balance { app_id } => {
            let store = operator::open_store(&database_url).await?;
            ledger::balance(app_id, &store).await
        }
        Command::Ledger(command) => {
            let store = operator::open_store(&database_url).await?;
            ledger::ledger(command, &store).await
        }
        Command::Report(command) => {
            let store = operator::open_store(&database_url).await?;
            ledger::report(command, &store).await
        }
        Command::Reconcile(args) => {
            let store = operator::open_store(&database_url).await?;
            channels::reconcile(args, &store).await
        }
        Command::User(command) => {
            let store = operator::open_store(&database_url).await?;
            users::user(command, &store).await
        }
        Command::Listen(args) => listen::run(args, &database_url).await,
        Command::Bench(_) | Command::NullGateway(_) | Command::PlainClient(_) => {
            unreachable!("handled above")
        }
        Command::Pix(_) | Command::Sign(_) | Command::Verify(_) | Command::Openapi => {
            unreachable!("offline commands are run above")
        }
    }
}
