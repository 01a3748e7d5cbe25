//! The callbacks scenario's reference: a plain HTTP client posting callback bodies of the
//! backlog's shape to the bench's receiver, as many at once as kassa's dispatcher sends to one
//! endpoint. The bench runs it twice: in a process of its own (`kassa plain-client`, hidden),
//! which is the reference — kassa's dispatcher, too, is in another process than the receiver —
//! and inside the bench's own process beside the receiver, reported for comparison with
//! earlier figures (client and receiver then share one runtime and hand requests over without
//! waking another process, so it reads higher and swings between runs).
//!
//! The reference client is reqwest with its defaults. kassa's dispatcher sends with a leaner
//! client of its own ([`kassa_server::callback_client`]), so the bench also runs that client
//! alone, in a process of its own, posting the same bodies (`--client kassa`): kassa's deliveries
//! against it say what the dispatcher's own work costs, apart from the choice of client.

use crate::Failure;
use kassa_server::callback_client::{CallbackClient, Uri};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The most posts one run makes: a bound on the child's running time.
const MAX_POSTS: usize = 10_000_000;
/// The longest the bench waits for the child's answer.
const CHILD_TIMEOUT: Duration = Duration::from_secs(600);
/// The line the child prints its figure on.
const ANSWER_PREFIX: &str = "posts per second ";

#[derive(clap::Args)]
pub struct PlainClientArgs {
    /// The receiver's URL (loopback).
    #[arg(long)]
    receiver: String,
    /// How many bodies to post.
    #[arg(long)]
    count: usize,
    /// Which client posts them.
    #[arg(long, value_enum, default_value_t = Client::Reqwest)]
    client: Client,
}

/// The client that posts: the reference (reqwest with its defaults), or the one kassa's
/// dispatcher delivers callbacks with.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Client {
    Reqwest,
    Kassa,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Reqwest => "reqwest",
            Client::Kassa => "kassa",
        }
    }
}

/// Posts `count` bodies, prints `posts per second N CPU_US IDLE_PCT` (see `answer_figures`)
/// and exits.
pub async fn run(args: PlainClientArgs) -> Result<(), Failure> {
    if args.count == 0 || args.count > MAX_POSTS {
        return Err(Failure(format!("--count must be 1 to {MAX_POSTS}")));
    }
    let posted = match args.client {
        Client::Reqwest => posts_per_second(&args.receiver, args.count).await?,
        Client::Kassa => kassa_posts_per_second(&args.receiver, args.count).await?,
    };
    // Its CPU per post is its own here: the receiver is in the bench's process.
    let cpu_us = posted.cpu_us_per_post.unwrap_or(-1.0);
    let idle = posted.machine_idle_pct.unwrap_or(-1.0);
    println!(
        "{ANSWER_PREFIX}{:.1} {cpu_us:.2} {idle:.1}",
        posted.per_second
    );
    Ok(())
}

/// What a run of posts measured: posts per second, the CPU the posting process used per post
/// while it posted (user and system, from `/proc/self/stat`), and the machine's idle share
/// meanwhile (from `/proc/stat`); none where they cannot be read.
#[derive(Clone, Copy, Debug)]
pub struct Posted {
    pub per_second: f64,
    pub cpu_us_per_post: Option<f64>,
    pub machine_idle_pct: Option<f64>,
}

/// Posts per second of `client` in a process of its own (`kassa plain-client`), and its CPU per
/// post.
pub fn in_own_process(receiver: &str, count: usize, client: Client) -> Result<Posted, Failure> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["plain-client", "--receiver", receiver, "--count"])
        .arg(count.to_string())
        .args(["--client", client.name()])
        // Its logs off: its error output is then its one line of failure, read below, and a
        // chatty log level set for the bench can never fill the pipe and stall the client.
        .env("KASSA_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().expect("piped");
    // Read on a thread of its own, so a child that hangs is killed at the timeout.
    let (answer, answered) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = answer.send(line);
    });
    let line = answered.recv_timeout(CHILD_TIMEOUT).unwrap_or_default();
    let ending = match line.is_empty() {
        true => super::Ending::Kill,
        false => super::Ending::Await,
    };
    super::end_child(&mut child, ending);
    let figures = line.trim().strip_prefix(ANSWER_PREFIX);
    figures.and_then(answer_figures).ok_or_else(|| {
        // Its one line of error, which says why (posts that failed, a bad --count).
        let mut why = String::new();
        if let Some(stderr) = child.stderr.take() {
            let _ = BufReader::new(stderr).read_line(&mut why);
        }
        Failure(format!("the plain client did not answer: {}", why.trim()))
    })
}

/// The figures of the child's answer: posts per second, CPU µs per post and the machine's idle
/// share (each of the last two negative when it could not be read).
pub(super) fn answer_figures(figures: &str) -> Option<Posted> {
    let mut fields = figures.split(' ').map(str::parse::<f64>);
    let (per_second, cpu_us, idle) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let read = |figure: f64| (figure >= 0.0).then_some(figure);
    Some(Posted {
        per_second: per_second.ok()?,
        cpu_us_per_post: read(cpu_us.ok()?),
        machine_idle_pct: read(idle.ok()?),
    })
}

/// Posts `count` callback bodies to `receiver`, as many at once as kassa sends to one
/// endpoint, from this process, with reqwest's defaults (the reference). Posts per second; an
/// error if any post was not answered 2xx (a refused post would count as a fast one).
pub async fn posts_per_second(receiver: &str, count: usize) -> Result<Posted, Failure> {
    let client = reqwest::Client::new();
    let receiver_url = receiver.to_string();
    posting(receiver, count, move |body| {
        let sent = client
            .post(&receiver_url)
            .header("content-type", "application/json")
            .body(body);
        async move {
            match sent.send().await {
                Ok(answer) if answer.status().is_success() => answer.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await
}

/// As [`posts_per_second`], with the client kassa's dispatcher delivers callbacks with.
async fn kassa_posts_per_second(receiver: &str, count: usize) -> Result<Posted, Failure> {
    let config = kassa_server::dispatcher::DispatcherConfig::default();
    let timeouts = (Duration::from_secs(2), Duration::from_secs(10));
    let at_once = config.max_per_endpoint;
    let client = CallbackClient::new("kassa-bench", timeouts, true, at_once)?;
    let client = Arc::new(client);
    let target: Uri = receiver.parse().map_err(|e| Failure(format!("{e}")))?;
    posting(receiver, count, move |body| {
        let (client, target) = (client.clone(), target.clone());
        async move {
            let headers = [("content-type", "application/json")];
            let answered = client.post(target, &headers, body, 1024).await;
            answered.is_ok_and(|answer| (200..300).contains(&answer.status))
        }
    })
    .await
}

/// Posts `count` bodies through `post` (true when answered 2xx), as many at once as kassa sends
/// to one endpoint. Posts per second and this process's CPU per post, or how many failed.
async fn posting<F, Fut>(receiver: &str, count: usize, post: F) -> Result<Posted, Failure>
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let at_once = kassa_server::dispatcher::DispatcherConfig::default().max_per_endpoint;
    let (next, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let cpu_before = super::own_cpu_seconds();
    let ticks_before = super::machine_ticks();
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..at_once.max(1) {
        let (post, next, failed) = (post.clone(), next.clone(), failed.clone());
        posters.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let body = kassa_store::bench::bench_callback_body(i as i64);
                if !post(body).await {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    posters.join_all().await;
    let elapsed = started.elapsed();
    let cpu_us_per_post = super::cpu_us_per(cpu_before, super::own_cpu_seconds(), count);
    let machine_idle_pct = super::machine_idle_since(ticks_before);
    match failed.load(Ordering::Relaxed) {
        0 => Ok(Posted {
            per_second: count as f64 / elapsed.as_secs_f64(),
            cpu_us_per_post,
            machine_idle_pct,
        }),
        n => Err(Failure(format!(
            "{n} of {count} posts to {receiver} failed"
        ))),
    }
}
