//! The callbacks scenario's reference: a plain HTTP client posting callback bodies of the
//! backlog's shape to the bench's receiver, as many at once as kassa's dispatcher sends to one
//! endpoint. The bench runs it twice: in a process of its own (`kassa plain-client`, hidden),
//! which is the reference — kassa's dispatcher, too, is in another process than the receiver —
//! and inside the bench's own process beside the receiver, reported for comparison with
//! earlier figures (client and receiver then share one runtime and hand requests over without
//! waking another process, so it reads higher and swings between runs).

use crate::Failure;
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
}

/// Posts `count` bodies, prints `posts per second N` and exits.
pub async fn run(args: PlainClientArgs) -> Result<(), Failure> {
    if args.count == 0 || args.count > MAX_POSTS {
        return Err(Failure(format!("--count must be 1 to {MAX_POSTS}")));
    }
    let per_second = posts_per_second(&args.receiver, args.count).await?;
    println!("{ANSWER_PREFIX}{per_second:.1}");
    Ok(())
}

/// Posts per second of a plain client in a process of its own (`kassa plain-client`).
pub fn in_own_process(receiver: &str, count: usize) -> Result<f64, Failure> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["plain-client", "--receiver", receiver, "--count"])
        .arg(count.to_string())
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
    let _ = child.kill();
    let _ = child.wait();
    let figure = line.trim().strip_prefix(ANSWER_PREFIX);
    figure
        .and_then(|figure| figure.parse().ok())
        .ok_or_else(|| {
            // Its one line of error, which says why (posts that failed, a bad --count).
            let mut why = String::new();
            if let Some(stderr) = child.stderr.take() {
                let _ = BufReader::new(stderr).read_line(&mut why);
            }
            Failure(format!("the plain client did not answer: {}", why.trim()))
        })
}

/// Posts `count` callback bodies to `receiver`, as many at once as kassa sends to one
/// endpoint, from this process. Posts per second; an error if any post was not answered 2xx
/// (a refused post would count as a fast one).
pub async fn posts_per_second(receiver: &str, count: usize) -> Result<f64, Failure> {
    let at_once = kassa_server::dispatcher::DispatcherConfig::default().max_per_endpoint;
    let client = reqwest::Client::new();
    let (next, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let started = Instant::now();
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..at_once.max(1) {
        let (client, receiver) = (client.clone(), receiver.to_string());
        let (next, failed) = (next.clone(), failed.clone());
        posters.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let body = format!(r#"{{"orderNo":"8{i:015}","status":2}}"#);
                let sent = client
                    .post(&receiver)
                    .header("content-type", "application/json");
                let answered = match sent.body(body).send().await {
                    Ok(answer) if answer.status().is_success() => answer.bytes().await.is_ok(),
                    _ => false,
                };
                if !answered {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    posters.join_all().await;
    let elapsed = started.elapsed();
    match failed.load(Ordering::Relaxed) {
        0 => Ok(count as f64 / elapsed.as_secs_f64()),
        n => Err(Failure(format!(
            "{n} of {count} posts to {receiver} failed"
        ))),
    }
}
