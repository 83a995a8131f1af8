//! A rule table driving a progress bar.
//!
//! A shell script plays a package manager: it downloads (with a `\r`
//! progress line), verifies, installs, and prints notes. The rule table turns
//! its output into phases, progress scaled into each phase's share of the
//! bar (byte counts from a rule, `[n/total]` counters from the generic
//! detector), a warning, a summary and a notes finding; this program draws
//! them.
//!
//! Run with: `cargo run -p execra --example rule_progress --features interpret`

use std::io::Write;

use execra::interpret::{FallbackPolicy, ProgressDetector, RuleInterpreter};
use execra::{rules, Command, Event, Progress, Runtime};

const SCRIPT: &str = r#"
printf "Downloading 'ripgrep' (14.1.0)\n"
for mb in 0.5 1.2 2.0 2.9 3.6 4.4; do printf '%s MB / 4.4 MB\r' "$mb"; sleep 0.15; done
printf '4.4 MB / 4.4 MB\n'
printf 'Checking hash of ripgrep-14.1.0.zip ... ok.\n'
sleep 0.3
printf "Installing 'ripgrep'\n"
printf "Linking shims\n"; sleep 0.3
for n in 1 2 3 4; do printf "Extracting [$n/4]\n"; sleep 0.15; done
printf "'ripgrep' is held back by policy\n"
printf "'ripgrep' (14.1.0) was installed successfully!\n"
printf 'Notes\n-----\nAdd ~/.local/bin to your PATH.\n'
"#;

fn bar(fraction: f32) -> String {
    let width = 30;
    let filled = ((fraction.clamp(0.0, 1.0) * width as f32).round()) as usize;
    format!(
        "[{}{}] {:>5.1}%",
        "#".repeat(filled),
        " ".repeat(width - filled),
        fraction * 100.0
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Download is 80% of the bar, verifying 5%, installing the rest.
    let phases = |name: &str| match name {
        "download" => Some((0.0, 0.8)),
        "verify" => Some((0.8, 0.85)),
        "install" => Some((0.85, 1.0)),
        _ => None,
    };
    let interpreter = RuleInterpreter::new(
        rules![
            enter_phase, "download", "Downloading $1 $2", r"^Downloading '([^']+)' \(([^)]+)\)";
            byte_progress_mb,                 r"([\d.]+) MB / ([\d.]+) MB";
            enter_phase, "verify", "Verifying",  r"^Checking hash";
            known, "pkg.hash", "hash mismatch for $1", r"^Hash check failed for (\S+)";
            enter_phase, "install", "Installing $1", r"^Installing '([^']+)'";
            progress, "linking shims",        r"^Linking shims";
            warning, "pkg.held", "$1 is held", r"^'([^']+)' is held";
            summary, "Installed $1 $2",       r"^'([^']+)' \(([^)]+)\) was installed";
        ],
        phases,
    )
    // Lines no rule matches (`Extracting [3/4]`) feed a generic detector.
    .detector(ProgressDetector::new())
    .notes("Notes", "pkg.notes")
    .fallback(FallbackPolicy::default().code("pkg.error"));

    let rt = Runtime::new();
    let handle = rt.spawn(
        Command::sh(SCRIPT)
            .label("install ripgrep")
            .interpreter(interpreter),
    )?;
    let mut events = handle.subscribe();
    let mut phase = String::from("starting");
    let mut last = 0.0_f32;
    let mut stdout = std::io::stdout();
    while let Some(event) = events.next().await {
        match event {
            Event::PhaseEntered { label, name, .. } => {
                phase = label.unwrap_or(name);
                print!("\n{:<28} {}", phase, bar(last));
            }
            Event::ProgressUpdated { progress, .. } => match progress {
                Progress::Indeterminate { hint } => print!(
                    "\r{:<28} {} {}…",
                    phase,
                    bar(last),
                    hint.unwrap_or_default()
                ),
                p => {
                    last = p.as_fraction().unwrap_or(last);
                    print!("\r{:<28} {}", phase, bar(last));
                }
            },
            Event::WarningDetected { message, .. } => println!("\n  warning: {message}"),
            Event::FindingEmitted { finding, .. } => {
                println!("\n  {}: {}", finding.code, finding.message)
            }
            Event::Finalized { outcome, .. } => {
                println!(
                    "\n\n{}: {}",
                    if outcome.is_success() { "ok" } else { "failed" },
                    outcome.message()
                );
                break;
            }
            _ => {}
        }
        stdout.flush()?;
    }
    Ok(())
}
