//! The local executor and the shim that fences job attempts (docs/design/jobs.md): real
//! processes, each test bounded in time, every process it starts gone at its end.

use std::path::Path;
use std::time::{Duration, Instant};
use tandem::jobs::{AttemptSpec, Executor, LocalExecutor, Outcome, RunningAttempt};

fn executor() -> LocalExecutor {
    LocalExecutor::new(env!("CARGO_BIN_EXE_tandem").into())
}

fn spec(dir: &Path, script: &str, timeout: Option<Duration>, lease: Duration) -> AttemptSpec {
    AttemptSpec {
        workdir: dir.to_owned(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![
            ("TANDEM_JOB_KEY".into(), "key-1".into()),
            ("TANDEM_JOB_ATTEMPT".into(), "2".into()),
        ],
        timeout,
        lease,
    }
}

/// Polls until the attempt ends, extending its lease every 100 ms while `extend` says so.
fn finish(a: &mut Box<dyn RunningAttempt>, within: Duration, extend: bool) -> (Outcome, Duration) {
    let start = Instant::now();
    let mut last = Instant::now();
    while start.elapsed() < within {
        if let Some(o) = a.poll().unwrap() {
            return (o, start.elapsed());
        }
        if extend && last.elapsed() > Duration::from_millis(100) {
            let _ = a.extend();
            last = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the attempt did not end within {within:?}");
}

/// Whether a process with this pid (read from a file the attempt wrote) is still there.
fn alive(pid_file: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(pid_file) else {
        return false;
    };
    let pid: i32 = pid.trim().parse().unwrap();
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits up to 5 s for the process to be gone, and says whether it is.
fn gone(pid_file: &Path) -> bool {
    let t = Instant::now();
    while alive(pid_file) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid_file)
}

fn wait_written(f: &Path) {
    let t = Instant::now();
    while !f.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(50));
}

#[test]
fn an_attempt_runs_in_its_folder_with_its_environment_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_secs(5);
    let mut a = executor()
        .start(&spec(dir.path(), "echo \"$TANDEM_JOB_KEY/$TANDEM_JOB_ATTEMPT\"; echo oops >&2; echo ckpt > checkpoint; exit 3", None, lease))
        .unwrap();
    let (o, _) = finish(&mut a, Duration::from_secs(20), true);
    assert_eq!(o, Outcome::Exited(3));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stdout.txt")).unwrap(),
        "key-1/2\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap(),
        "oops\n"
    );
    assert!(dir.path().join("checkpoint").exists());
    let mut ok = executor()
        .start(&spec(dir.path(), "exit 0", None, lease))
        .unwrap();
    assert_eq!(
        finish(&mut ok, Duration::from_secs(20), true).0,
        Outcome::Exited(0)
    );
    // No command, no attempt.
    let mut bad = spec(dir.path(), "", None, lease);
    bad.command.clear();
    assert!(executor().start(&bad).is_err());
}

#[test]
fn timeout_and_cancel_kill_the_whole_process_group() {
    for cancel in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("grandchild.pid");
        // A grandchild in the background: it must go too.
        let script = "sleep 60 & echo $! > grandchild.pid; wait";
        let timeout = (!cancel).then_some(Duration::from_millis(500));
        let mut a = executor()
            .start(&spec(dir.path(), script, timeout, Duration::from_secs(30)))
            .unwrap();
        wait_written(&pid);
        assert!(alive(&pid));
        if cancel {
            a.cancel().unwrap();
        }
        let (o, took) = finish(&mut a, Duration::from_secs(20), true);
        assert_eq!(
            o,
            if cancel {
                Outcome::Cancelled
            } else {
                Outcome::TimedOut
            }
        );
        assert!(took < Duration::from_secs(10), "{took:?}");
        assert!(gone(&pid), "the grandchild outlived its attempt");
    }
}

#[test]
fn an_attempt_never_outlives_its_regions_lease() {
    let dir = tempfile::tempdir().unwrap();
    let lease = Duration::from_millis(400);
    // Extended every 100 ms: a 1.2 s job finishes although its lease is 0.4 s.
    let mut a = executor()
        .start(&spec(dir.path(), "sleep 1.2; exit 0", None, lease))
        .unwrap();
    assert_eq!(
        finish(&mut a, Duration::from_secs(20), true).0,
        Outcome::Exited(0)
    );
    // Not extended (the region froze or lost the witness): killed at the deadline.
    let pid = dir.path().join("job.pid");
    let mut a = executor()
        .start(&spec(
            dir.path(),
            "echo $$ > job.pid; exec sleep 60",
            None,
            lease,
        ))
        .unwrap();
    let (o, took) = finish(&mut a, Duration::from_secs(20), false);
    assert_eq!(o, Outcome::Fenced);
    assert!(took >= lease && took < Duration::from_secs(5), "{took:?}");
    assert!(!alive(&pid));
    // The executor goes away (its end of the pipe closes): the attempt is killed at once.
    let pid = dir.path().join("orphan.pid");
    let a = executor()
        .start(&spec(
            dir.path(),
            "echo $$ > orphan.pid; exec sleep 60",
            None,
            Duration::from_secs(60),
        ))
        .unwrap();
    wait_written(&pid);
    assert!(alive(&pid));
    drop(a);
    assert!(gone(&pid), "an attempt outlived its executor");
}

/// `tandem status`'s readiness report: the other region is flagged when its compute could not
/// hold the attempts that would move to it, and ready when it could.
#[test]
fn readiness_flags_a_region_whose_compute_cannot_take_the_running_attempts() {
    use serde_json::json;
    let jobs =
        json!({"running": {"east": {"local": 2, "gpu": 1}, "west": {"local": 1}}, "queued": {}});
    let regions = vec![
        json!({"name": "east", "compute": [{"name": "local", "slots": 4}, {"name": "gpu", "slots": 1}], "jobs": jobs}),
        json!({"name": "west", "compute": [{"name": "local", "slots": 3}], "jobs": jobs}),
    ];
    let r = tandem::scheduler::job_readiness(&regions);
    let east_lost = r.iter().find(|x| x["if_lost"] == "east").unwrap();
    assert_eq!(east_lost["moves_to"], "west");
    assert_eq!(east_lost["ready"], false, "{east_lost}");
    // West would run its own local attempt and east's two (3 of 3 slots) but has no gpu.
    assert_eq!(
        east_lost["needs"]["local"],
        json!({"attempts": 3, "slots": 3})
    );
    assert_eq!(
        east_lost["needs"]["gpu"],
        json!({"attempts": 1, "slots": 0})
    );
    assert!(east_lost["summary"].as_str().unwrap().contains("NOT READY"));
    let west_lost = r.iter().find(|x| x["if_lost"] == "west").unwrap();
    assert_eq!(west_lost["ready"], true, "{west_lost}");
    assert_eq!(
        west_lost["needs"]["local"],
        json!({"attempts": 3, "slots": 4})
    );
}
