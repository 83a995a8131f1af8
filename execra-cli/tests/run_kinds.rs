//! `execra run` flags for other kinds of CLI: --pty, --encoding,
//! --idle-timeout, --secret-env.

mod common;

use common::{execra, text};

const ISATTY: &str = "if [ -t 1 ]; then echo tty; else echo pipe; fi";

#[cfg(unix)]
#[test]
fn pty_gives_the_program_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let out = execra(&db, &["run", "--pty", "--", "sh", "-c", ISATTY]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "tty\n");
    let out = execra(&db, &["run", "--", "sh", "-c", ISATTY]);
    assert_eq!(text(&out.stdout), "pipe\n");
    let out = execra(&db, &["run", "--pty-size", "100x30", "--", "stty", "size"]);
    assert_eq!(text(&out.stdout), "30 100\n");
}

#[test]
fn encoding_decodes_gbk_and_rejects_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let out = execra(
        &db,
        &[
            "run",
            "--encoding",
            "gbk",
            "--",
            "printf",
            "\\304\\343\\272\\303\\n",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "你好\n");
    let out = execra(&db, &["run", "--encoding", "klingon", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown output encoding"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn idle_timeout_stops_a_silent_job_with_exit_124() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let out = execra(
        &db,
        &["run", "--idle-timeout", "300ms", "--", "sleep", "30"],
    );
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("without output"),
        "{}",
        text(&out.stderr)
    );
    let ls = text(&execra(&db, &["ls"]).stdout);
    assert!(ls.contains("idle timeout"), "{ls}");
    let out = execra(&db, &["run", "--idle-timeout", "0", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn secret_env_reaches_the_child_but_not_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let out = execra(
        &db,
        &[
            "run",
            "--secret-env",
            "TOKEN=hunter2",
            "--",
            "sh",
            "-c",
            "[ ${#TOKEN} -eq 7 ] && echo \"got $TOKEN\"",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "got ********\n");
    for args in [&["ls", "--json"][..], &["ls"][..]] {
        let o = text(&execra(&db, args).stdout);
        assert!(!o.contains("hunter2"), "{o}");
    }
    let ls = text(&execra(&db, &["ls", "--json"]).stdout);
    assert!(ls.contains("********"), "{ls}");
    let id = ls.split("\"id\":\"").nth(1).unwrap()[..8].to_string();
    let show = text(&execra(&db, &["show", &id, "--events", "--json"]).stdout);
    assert!(
        !show.contains("hunter2") && show.contains("TOKEN"),
        "{show}"
    );
}
