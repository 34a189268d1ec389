//! filer-sync: argh → validated config → run → exit code. The only place
//! that prints the final error. Exit codes: 0 success, 1 failure (or
//! differences found), 2 usage error (bad flags or input; nothing touched),
//! 3 another process holds the state file (nothing done).

use argh::FromArgs;
use filer_sync::cli::{Cli, Command, LogFormat};
use filer_sync::error::ErrorKind;
use filer_sync::{commands, retry};
use std::process::ExitCode;

fn main() -> ExitCode {
    no_thread_caches();
    few_arenas();
    let args: Vec<String> = std::env::args().collect();
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = match Cli::from_args(&["filer-sync"], &strs[1.min(strs.len())..]) {
        Ok(c) => c,
        Err(early) => {
            return if early.status.is_ok() {
                filer_sync::util::say(&early.output);
                ExitCode::SUCCESS
            } else {
                eprintln!("{}", early.output.trim_end());
                eprintln!("Run filer-sync --help for usage.");
                ExitCode::from(2)
            };
        }
    };
    let format = match cli.log_format() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("filer-sync: {e}");
            return ExitCode::from(2);
        }
    };
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger
        .format_timestamp_millis()
        // The HTTP client traces raw request bytes, write tokens included,
        // and its chatter helps no operator: warnings only, whatever RUST_LOG says.
        .filter_module("ureq", log::LevelFilter::Warn)
        .filter_module("ureq_proto", log::LevelFilter::Warn);
    if format == LogFormat::Json {
        logger.format(|buf, record| {
            use std::io::Write;
            writeln!(buf, "{}", filer_sync::util::json_log_line(record))
        });
    }
    logger.init();
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t == NO_THREAD_CACHES) {
        log::debug!("glibc's per-thread caches are off (GLIBC_TUNABLES={NO_THREAD_CACHES})");
    }
    // SIGINT/SIGTERM cancel this; every run below takes a child of it.
    let stop = retry::Cancel::new();
    let on_signal = stop.clone();
    let result = match &cli.cmd {
        Command::Sync(args) => args.validate().and_then(|cfg| {
            let _ = ctrlc::set_handler(move || {
                log::warn!("stop requested: finishing the window in flight");
                on_signal.cancel();
            });
            commands::sync(&cfg, &stop)
        }),
        Command::Verify(args) => args
            .validate()
            .and_then(|(pair, opts)| commands::verify::verify(&pair, opts)),
        Command::Migrate(args) => args.validate().and_then(|cfg| {
            let _ = ctrlc::set_handler(move || on_signal.cancel());
            commands::migrate::migrate(&cfg, &stop)
        }),
        Command::Status(args) => args
            .validate()
            .and_then(|states| commands::status::status(&states, args.json)),
        Command::Checkpoint(args) => args
            .validate()
            .and_then(|cfg| commands::checkpoint::checkpoint(&cfg)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("filer-sync: {e}");
            ExitCode::from(match e.kind() {
                ErrorKind::Usage => 2,
                ErrorKind::Busy => 3,
                ErrorKind::Paused => 4,
                _ => 1,
            })
        }
    }
}

/// What `no_thread_caches` starts the process again with.
const NO_THREAD_CACHES: &str = "glibc.malloc.tcache_count=0";

/// glibc keeps up to 7 freed blocks of each small size (to 1 KiB) in a
/// cache of each thread, for that thread alone, and `malloc_trim` cannot
/// reach them. A sync runs some 60 threads, and as a long walk's work
/// spread over all of them their caches filled: peak RSS 35 MB walking
/// 10,000 files and 44 MB walking 1,000,000 (x1.26; the live heap was
/// flat, 13.5 and 13.7 MB), against 36.7 and 38.2 MB (x1.04) with the
/// caches off, at the same files/s (`scripts/walk_rss_ab.py`). Only
/// GLIBC_TUNABLES at start-up turns them off, so the process starts itself
/// again with it set: the same PID, arguments, environment otherwise and
/// descriptors, before anything else has run. An operator's own
/// GLIBC_TUNABLES is left as it is (and the caches with it); where the
/// binary cannot be started again, the run goes on with them.
fn no_thread_caches() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        use std::os::unix::process::CommandExt;
        // The binary's own path, not /proc/self/exe: the kernel names the
        // process after the file run (`ps`, `pkill filer-sync`).
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_default();
        // Returns only when the exec failed.
        let _ = std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env("GLIBC_TUNABLES", NO_THREAD_CACHES)
            .exec();
    }
}

/// glibc gives each thread that allocates a heap ("arena") of its own, up
/// to 8 per core, and keeps what is freed in each for later: with the
/// pipeline's threads and pools the resident memory of a long catch-up
/// crept up with the number of files (a walk of 100,000 files: 58 MB
/// against 43 MB at 10,000) while the live heap grew by 4 MB (heaptrack:
/// more listing pages at once). With two arenas: 47 and 39 MB, at no
/// measured cost in speed. An operator's MALLOC_ARENA_MAX or own
/// GLIBC_TUNABLES (not the one `no_thread_caches` sets) still wins.
fn few_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none()
        && std::env::var("GLIBC_TUNABLES").map_or(true, |t| t == NO_THREAD_CACHES)
    {
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        const M_ARENA_MAX: i32 = -8;
        // SAFETY: mallopt only sets an allocator parameter; it is called
        // before any other thread exists.
        unsafe {
            mallopt(M_ARENA_MAX, 2);
        }
    }
}
