//! The 1.1 documented examples that run on their own, run against 2.0.

use execra::{Command, Event, Runtime};
use execra_compat_examples::{interpreter_md, readme, runtime_md, scoop_install};

#[tokio::test]
async fn readme_quick_start_runs() {
    readme::quick_start().await.expect("quick start");
}

#[tokio::test]
async fn readme_persistence_creates_the_history_it_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = readme::persistence_on(dir.path()).expect("runtime");
    let outcome = rt
        .spawn(Command::new("echo").arg("hi"))
        .expect("spawn")
        .await;
    assert!(outcome.is_success());
    rt.shutdown().await.expect("shutdown");
    assert!(dir.path().join("jobs.sqlite").exists());
}

#[tokio::test]
async fn runtime_md_snippets_run() {
    runtime_md::runtime().await.expect("runtime snippet");
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime_md::persistence(dir.path()).expect("persistence snippet");
    let outcome = runtime_md::job_handle(&rt, Command::sh("echo hi"))
        .await
        .expect("job handle snippet");
    assert!(outcome.is_success());
    assert_eq!(runtime_md::commands().len(), 9);
}

#[tokio::test]
async fn the_1_1_scoop_install_interpreter_still_interprets() {
    let rt = Runtime::new();
    let script = "echo \"Installing 'git' (2.44.0) [64bit] from main bucket\"; \
                  echo \"Downloading 'https://example.com/git.7z' (50 MB)...\"; \
                  echo '25.0 MB / 50.0 MB'; \
                  echo \"'git' (2.44.0) was installed successfully!\"";
    let h = rt
        .spawn(Command::sh(script).interpreter(scoop_install::ScoopInstall::new()))
        .expect("spawn");
    let mut events = h.subscribe();
    let outcome = h.await;
    assert!(outcome.is_success(), "{outcome:?}");
    let mut kinds = Vec::new();
    while let Some(e) = events.next().await {
        kinds.push(e.kind());
        if matches!(e, Event::Finalized { .. }) {
            break;
        }
    }
    assert!(kinds.contains(&"phase_entered"), "{kinds:?}");
    assert!(kinds.contains(&"progress_updated"), "{kinds:?}");
}

#[tokio::test]
async fn the_multi_line_notes_pattern_emits_its_finding() {
    let rt = Runtime::new();
    let outcome = rt
        .spawn(
            Command::sh("printf 'Notes\\n-----\\nline one\\nline two\\n\\n'")
                .interpreter(interpreter_md::Notes::default()),
        )
        .expect("spawn")
        .await;
    let notes: Vec<&str> = outcome
        .findings()
        .iter()
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(notes, ["line one\nline two"]);
}
