//! The `sse-server` binary: parse flags, bind, print the address, run.
//! Everything else lives in the library; start reading at `lib.rs`.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;

use sse_server::cluster::Cluster;
use sse_server::event_log::ExternalLog;
use sse_server::state::Shared;

use sse_server::config::{self, Command, Config, USAGE};
use sse_server::limits::{
    FALLBACK_MAX_CLIENTS, FD_MARGIN, MAPPINGS_PER_THREAD, MAPPING_MARGIN, OVERLOAD_HEADROOM,
};
use sse_server::server::Server;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Subcommands come first and parse their own flags.
    match args.first().map(String::as_str) {
        Some("listen") => return sse_server::client::listen::main(&args[1..]),
        Some("publish") => return sse_server::client::publish::main(&args[1..]),
        Some("token") => {
            let rest = args[1..].iter().cloned();
            return sse_server::auth::token_main(rest, |name| std::env::var(name).ok());
        }
        _ => {}
    }
    let config = match config::parse_args(args, |name| std::env::var(name).ok()) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("sse-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("sse-server: {error}");
            return ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("sse-server: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> std::io::Result<()> {
    log_panics();
    // Cluster mode: reach Redis first, so a server that cannot does not
    // print "listening on" before it exits.
    let cluster = match &config.redis {
        Some(url) => {
            let connected = Cluster::connect(url.clone(), &config.redis_prefix, config.history);
            Some(connected.map_err(std::io::Error::other)?)
        }
        None => None,
    };
    let listener = TcpListener::bind(SocketAddr::new(config.bind, config.port))?;
    let address = listener.local_addr()?;
    let (mut max_clients, mut source) = match config.max_clients {
        Some(max) => (max, "flag".to_string()),
        None => default_max_clients(),
    };
    if let Some(threads) = thread_limit() {
        let cap = threads.saturating_sub(OVERLOAD_HEADROOM).max(1);
        if max_clients > cap {
            max_clients = cap;
            source = format!("capped: vm.max_map_count allows {threads} threads");
        }
    }
    let server = match &cluster {
        None => Server::new(listener, config, max_clients),
        Some((cluster, start)) => {
            let log: Arc<dyn ExternalLog> = cluster.clone();
            let shared = Shared::with_external_log(config, max_clients, log, *start);
            let server = Server::with_shared(listener, Arc::new(shared));
            cluster.start(server.shared(), *start)?;
            server
        }
    };
    install_shutdown_handler(&server)?;
    // Scripts and tests wait for this exact line, so it comes once the server
    // is ready: with `ctrlc`, after the handler (and its thread) is in place,
    // so a SIGTERM sent at once is already handled, and a thread count taken
    // at once already includes it.
    sse_server::log!("listening on http://{address}");
    sse_server::log!("max-clients={max_clients} ({source})");
    server.run();
    // After a graceful shutdown, our users leave the cluster-wide count at
    // once instead of when their presence expires.
    if let Some((cluster, _)) = cluster {
        cluster.leave();
    }
    Ok(())
}

/// A panic (there should be none) is logged as one line on stdout, like
/// every other event, before the default hook prints it to stderr. The
/// thread's `Registration` then deregisters its stream (`reason=panic`).
fn log_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let location = info.location().map(ToString::to_string).unwrap_or_default();
        sse_server::log!(
            "panic thread={} at={} message={}",
            sse_server::json::Quoted(thread.name().unwrap_or("?")),
            location,
            sse_server::json::Quoted(message)
        );
        default_hook(info);
    }));
}

/// Each stream holds one file descriptor, so the open-file limit bounds the
/// number of clients; keep a margin for everything else.
fn default_max_clients() -> (usize, String) {
    match open_file_limit() {
        Some(limit) => (
            limit.saturating_sub(FD_MARGIN).max(1),
            format!("open-file limit {limit} minus {FD_MARGIN}"),
        ),
        None => (FALLBACK_MAX_CLIENTS, "default".to_string()),
    }
}

/// How many connection threads fit in the process's memory mappings (see
/// `MAPPINGS_PER_THREAD`); `None` where there is no such limit to read.
fn thread_limit() -> Option<usize> {
    max_map_count().map(|mappings| mappings.saturating_sub(MAPPING_MARGIN) / MAPPINGS_PER_THREAD)
}

/// Linux's per-process limit on memory mappings, `vm.max_map_count`.
#[cfg(target_os = "linux")]
fn max_map_count() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok()?;
    text.trim().parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn max_map_count() -> Option<usize> {
    None
}

/// The soft open-file limit, from `/proc/self/limits` (Linux only; std has
/// no `getrlimit`).
#[cfg(target_os = "linux")]
fn open_file_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(not(target_os = "linux"))]
fn open_file_limit() -> Option<usize> {
    None
}

/// With `--features ctrlc`: Ctrl-C or SIGTERM closes every stream politely
/// (a final `shutdown` event) and exits 0. Without it, the OS default
/// applies: the process dies at once, the kernel closes every socket, and
/// browsers reconnect after their `retry:` time.
#[cfg(feature = "ctrlc")]
fn install_shutdown_handler(server: &Server) -> std::io::Result<()> {
    let handle = server.shutdown_handle()?;
    ctrlc::set_handler(move || handle.shutdown()).map_err(std::io::Error::other)
}

#[cfg(not(feature = "ctrlc"))]
fn install_shutdown_handler(_server: &Server) -> std::io::Result<()> {
    Ok(())
}
