//! The `tandem` command itself: workspaces from the CLI, settings from flags, environment and
//! config file, and clear one-line failures.

use std::process::Command;

fn tandem(args: &[&str], envs: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tandem"));
    cmd.args(args).env("TANDEM_LOG", "error");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn workspace_commands_create_list_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, out, err) = tandem(
        &[
            "workspace",
            "create",
            "team-a",
            "--description",
            "Team A",
            "--data",
            data,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created workspace team-a"));
    let (code, _, err) = tandem(&["workspace", "create", "team-a", "--data", data], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = tandem(&["workspace", "create", "Bad_Name", "--data", data], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("must match the pattern"), "{err}");
    // The data folder may also come from the environment.
    let (code, out, _) = tandem(&["workspace", "list"], &[("TANDEM_DATA", data)]);
    assert_eq!(code, 0);
    assert!(
        out.lines().any(|l| l.starts_with("team-a\tTeam A")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("default\t")), "{out}");
    let (code, out, _) = tandem(&["workspace", "delete", "team-a", "--data", data], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("deleted"));
    let (code, _, err) = tandem(&["workspace", "delete", "team-a", "--data", data], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("does not exist"), "{err}");
    let (code, _, err) = tandem(&["workspace", "delete", "default", "--data", data], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot be deleted"), "{err}");
}

#[test]
fn bad_settings_stop_the_server_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, _, err) = tandem(
        &["server", "--listen", "not-an-address", "--data", data],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("setting 'listen'"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (code, _, err) = tandem(
        &["server", "--durability", "sometimes", "--data", data],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("setting 'durability'"), "{err}");
    let cfg = dir.path().join("tandem.toml");
    std::fs::write(&cfg, "listen = [1, 2]\n").unwrap();
    let (code, _, err) = tandem(&["server", "--config", cfg.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("tandem.toml"), "{err}");
    let (code, _, err) = tandem(&["server", "--config", "/nonexistent/tandem.toml"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot read config file"), "{err}");
    // A port already taken.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let (code, _, err) = tandem(&["server", "--listen", &addr, "--data", data], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("cannot listen on"), "{err}");
}

#[test]
fn config_file_and_environment_settings_reach_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-config");
    let cfg = dir.path().join("tandem.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:1\"\ndata = \"{}\"\nregion = \"west-1\"\n",
            data.display()
        ),
    )
    .unwrap();
    // The environment overrides the file's listen address; the file gives data and region.
    crate::support::init();
    let child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["server", "--config", cfg.to_str().unwrap()])
        .env("TANDEM_LISTEN", "127.0.0.1:0")
        .env("TANDEM_AUTH", "off")
        .env("TANDEM_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Killed on drop, so a failing assertion leaves no server behind.
    let mut proc = crate::crash::Proc {
        child,
        url: String::new(),
    };
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(proc.child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("tracking uri: ").map(str::to_owned))
        .expect("tracking uri printed");
    let body = get_json(&format!(
        "{url}/api/tandem/v1/workspaces/default/changes?after=0&limit=1"
    ));
    assert_eq!(body["events"][0]["origin"], "west-1");
    assert!(data.join("metadata.sqlite").exists());
    // SIGTERM: a graceful stop with exit code 0.
    sigterm(proc.child.id());
    let status = proc.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

fn sigterm(pid: u32) {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// A blocking GET for a test that has no runtime of its own.
fn get_json(url: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async { reqwest::get(url).await.unwrap().json().await.unwrap() })
}

#[test]
fn migrate_runs_and_a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, out, err) = tandem(&["migrate", "--data", data], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("schema version"), "{out}");
    // Migrating again changes nothing and succeeds.
    let (code, _, _) = tandem(&["migrate", "--data", data], &[]);
    assert_eq!(code, 0);
    // A database written by a newer tandem: refused, with a message saying what to do.
    let db = rusqlite::Connection::open(dir.path().join("metadata.sqlite")).unwrap();
    db.execute("INSERT INTO schema_version (version) VALUES (999)", [])
        .unwrap();
    drop(db);
    let (code, _, err) = tandem(&["server", "--listen", "127.0.0.1:0", "--data", data], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("newer than this tandem knows") && err.contains("setting 'store'"),
        "{err}"
    );
}

#[test]
fn a_bad_deployment_file_stops_tandem_up_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let file = dir.path().join("deployment.toml");
    let good = tandem::region::deployment::local_default(
        dir.path(),
        0,
        tandem::region::deployment::WriteAck::Async,
        45000,
    );
    std::fs::write(
        &file,
        good.replace("preferred_leader = \"east\"", "preferred_leader = \"mars\""),
    )
    .unwrap();
    let (code, out, err) = tandem(&["up", "--data", data, "--port", "0"], &[]);
    assert_ne!(code, 0);
    let line = good
        .lines()
        .position(|l| l.contains("preferred_leader"))
        .unwrap()
        + 1;
    assert!(
        err.contains(&format!("deployment.toml:{line}:"))
            && err.contains("not a region of this deployment"),
        "{err}"
    );
    assert!(!out.contains("tracking uri"), "{out}");
    // Nothing was started.
    assert!(!dir.path().join("east").exists());
}

#[test]
fn backup_restore_and_deployment_commands_reject_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let archive = format!("file://{}", d.join("archive").display());
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "backup".into(),
                "list".into(),
                "--archive".into(),
                "ftp://nope".into(),
            ],
            "archive",
        ),
        (
            vec![
                "backup".into(),
                "verify".into(),
                "--archive".into(),
                archive.clone(),
                "--workspace".into(),
                "ghost".into(),
            ],
            "nothing for workspace 'ghost'",
        ),
        (
            vec![
                "restore".into(),
                "--archive".into(),
                archive.clone(),
                "--to-time".into(),
                "last tuesday".into(),
                "--into".into(),
                format!("sqlite://{}", d.join("r.sqlite").display()),
            ],
            "--to-time",
        ),
        (
            vec![
                "restore".into(),
                "--archive".into(),
                archive.clone(),
                "--into".into(),
                "mysql://x".into(),
            ],
            "setting 'store'",
        ),
        (
            vec![
                "restore".into(),
                "--archive".into(),
                archive.clone(),
                "--into".into(),
                format!("sqlite://{}", d.join("r.sqlite").display()),
            ],
            "nothing for workspace 'default'",
        ),
        (
            vec![
                "status".into(),
                "--deployment".into(),
                d.join("missing.toml").display().to_string(),
            ],
            "cannot read the deployment file",
        ),
        (
            vec![
                "failover".into(),
                "--workspace".into(),
                "default".into(),
                "--to".into(),
                "mars".into(),
                "--deployment".into(),
                d.join("missing.toml").display().to_string(),
            ],
            "cannot read the deployment file",
        ),
        (
            vec![
                "diverged".into(),
                "list".into(),
                "--deployment".into(),
                d.join("missing.toml").display().to_string(),
            ],
            "cannot read the deployment file",
        ),
        (
            vec![
                "region".into(),
                "--deployment".into(),
                d.join("missing.toml").display().to_string(),
                "--name".into(),
                "east".into(),
            ],
            "cannot read the deployment file",
        ),
    ];
    for (args, expect) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = tandem(&args, &[]);
        assert_ne!(code, 0, "{args:?} succeeded");
        assert!(
            err.contains(expect) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    // A real deployment file, but a region it does not have.
    let file = d.join("deployment.toml");
    std::fs::write(
        &file,
        tandem::region::deployment::local_default(
            d,
            0,
            tandem::region::deployment::WriteAck::Async,
            45100,
        ),
    )
    .unwrap();
    let (code, _, err) = tandem(
        &[
            "failover",
            "--workspace",
            "default",
            "--to",
            "mars",
            "--deployment",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no region named 'mars'"), "{err}");
    let (code, _, err) = tandem(
        &[
            "region",
            "--deployment",
            file.to_str().unwrap(),
            "--name",
            "mars",
            "--data",
            d.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("no region named 'mars'"), "{err}");
}
