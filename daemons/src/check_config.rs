//! `shinken check-config PATH [--format text|json]`.

use shinken_config::output;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

enum Format {
    Text,
    Json,
}

pub fn run(args: &[String]) -> ExitCode {
    let mut path: Option<PathBuf> = None;
    let mut format = Format::Text;
    let mut timings = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--format" => match it.next().map(String::as_str) {
                Some("text") => format = Format::Text,
                Some("json") => format = Format::Json,
                other => return usage(&format!("--format takes text or json, not {}", other.unwrap_or("nothing"))),
            },
            "--timings" => timings = true,
            "--format=text" => format = Format::Text,
            "--format=json" => format = Format::Json,
            s if s.starts_with('-') => return usage(&format!("unknown option {s}")),
            s if path.is_none() => path = Some(PathBuf::from(s)),
            s => return usage(&format!("unexpected argument {s}")),
        }
    }
    let Some(path) = path else { return usage("a PATH is required") };

    let cfg = match shinken_config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shinken check-config: cannot read the configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if timings {
        for (stage, d) in &cfg.timings {
            eprintln!("{:>10.3} ms  {stage}", d.as_secs_f64() * 1000.0);
        }
    }
    let rendered = match format {
        Format::Text => output::text(&cfg),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&output::json(&cfg)).unwrap_or_default();
            s.push('\n');
            s
        }
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = stdout.write_all(rendered.as_bytes());
    let _ = stdout.flush();
    let code = if cfg.has_errors() { ExitCode::from(1) } else { ExitCode::SUCCESS };
    // The process ends here: freeing a large tree object by object would only cost time
    // (a third of the run at 100k services).
    std::mem::forget(cfg);
    code
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("shinken check-config: {msg}\nusage: shinken check-config PATH [--format text|json] [--timings]");
    ExitCode::from(2)
}
