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

/// glibc gives each thread that allocates a heap ("arena") of its own, up
/// to 8 per core, and keeps what is freed in each for later: with the
/// pipeline's threads and pools the resident memory of a long catch-up
/// crept up with the number of files (a walk of 100,000 files: 58 MB
/// against 43 MB at 10,000) while the live heap grew by 4 MB (heaptrack:
/// more listing pages at once). With two arenas: 47 and 39 MB, at no
/// measured cost in speed. An operator's MALLOC_ARENA_MAX still wins.
fn few_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
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
