//! `berth-runtime`: runc's command line over the `container` crate.
//!
//! This file parses arguments, calls one library function per command and
//! prints the result; errors become one line on stderr (and in `--log`)
//! and exit status 1.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use container::exec::{ExecFlags, ExecOptions};
use container::log::{self, LogFormat};
use container::{create, exec, lifecycle, update, Runtime};

use cli::{Cli, Command, ListFormat, LogFormatArg};

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init(
        cli.log.clone(),
        match cli.log_format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        },
        cli.debug,
    );
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let msg = sys::error::one_line(err.as_ref());
            if log::has_file() {
                log::error(&msg);
            }
            eprintln!("berth-runtime: {msg}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    if cli.version {
        print_version();
        return Ok(0);
    }
    let rt = Runtime {
        root: cli.root.clone().unwrap_or_else(Runtime::default_root),
        systemd_cgroup: cli.systemd_cgroup.unwrap_or(false),
    };
    let Some(command) = cli.command else {
        bail!("no command given (see berth-runtime --help)");
    };
    match command {
        Command::Create(a) => {
            create::create(&rt, &create_options(a))?;
        }
        Command::Start(a) => lifecycle::start(&rt, &a.id)?,
        Command::Run(a) => {
            let a = *a;
            let code = lifecycle::run(&rt, &create_options(a.create), a.detach, a.keep)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::State(a) => println!("{}", lifecycle::state_json(&rt, &a.id)?),
        Command::Kill(a) => {
            let sig = container::signals::parse_signal(&a.signal)
                .with_context(|| format!("unknown signal {:?}", a.signal))?;
            lifecycle::kill(&rt, &a.id, sig, a.all)?;
        }
        Command::Delete(a) => lifecycle::delete(&rt, &a.id, a.force)?,
        Command::List(a) => print_list(&rt, a.format, a.quiet)?,
        Command::Exec(a) => {
            let code = run_exec(&rt, *a)?;
            return Ok(u8::try_from(code).unwrap_or(255));
        }
        Command::Ps(a) => print_ps(&rt, a)?,
        Command::Pause(a) => lifecycle::pause(&rt, &a.id)?,
        Command::Resume(a) => lifecycle::resume(&rt, &a.id)?,
        Command::Spec(a) => {
            let path = a.bundle.join("config.json");
            lifecycle::write_default_spec(&path, a.rootless)?;
        }
        Command::Update(a) => run_update(&rt, a)?,
        Command::Events(a) => run_events(&rt, a)?,
        Command::Features => {
            let json = container::features::features_json();
            println!("{}", serde_json::to_string_pretty(&json)?);
        }
    }
    Ok(0)
}

fn run_update(rt: &Runtime, a: cli::UpdateArgs) -> anyhow::Result<()> {
    let mut r = match &a.resources {
        Some(path) => update::read_resources(path)?,
        None => cgroups::LinuxResources::default(),
    };
    let flags = update::flags_to_resources(&update::UpdateFlags {
        blkio_weight: a.blkio_weight,
        cpu_period: a.cpu_period,
        cpu_quota: a.cpu_quota,
        cpu_share: a.cpu_share,
        cpu_rt_period: a.cpu_rt_period,
        cpu_rt_runtime: a.cpu_rt_runtime,
        cpuset_cpus: a.cpuset_cpus,
        cpuset_mems: a.cpuset_mems,
        memory: a.memory,
        memory_reservation: a.memory_reservation,
        memory_swap: a.memory_swap,
        pids_limit: a.pids_limit,
        l3_cache_schema: a.l3_cache_schema,
        mem_bw_schema: a.mem_bw_schema,
    })?;
    update::merge_resources(&mut r, &flags);
    update::update(rt, &a.id, &r)?;
    Ok(())
}

fn run_events(rt: &Runtime, a: cli::EventsArgs) -> anyhow::Result<()> {
    if a.stats {
        let ev = update::stats_event(rt, &a.id)?;
        println!("{}", serde_json::to_string(&ev)?);
        return Ok(());
    }
    let interval = update::parse_interval(&a.interval)?;
    update::watch_events(rt, &a.id, interval, |ev| {
        let line = serde_json::to_string(ev)
            .map_err(|e| container::ContainerError::Invalid(format!("encode event: {e}")))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| container::ContainerError::Sys {
                op: "write event to stdout",
                source: e,
            })
    })?;
    Ok(())
}

fn create_options(a: cli::CreateArgs) -> create::CreateOptions {
    create::CreateOptions {
        id: a.id,
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    }
}

fn print_version() {
    println!("berth-runtime version {}", env!("CARGO_PKG_VERSION"));
    println!("spec: {}", container::spec::OCI_VERSION);
    if let Some(v) = container::seccomp::library_version() {
        println!("libseccomp: {v}");
    }
}

fn run_exec(rt: &Runtime, a: cli::ExecArgs) -> anyhow::Result<i32> {
    let process = match &a.process {
        Some(path) => exec::process_from_file(path)?,
        None => {
            let template = exec::template(rt, &a.id)?;
            exec::process_from_flags(
                template,
                &ExecFlags {
                    args: a.command,
                    tty: a.tty,
                    cwd: a.cwd,
                    env: a.env,
                    user: a.user,
                    additional_gids: a.additional_gids,
                    caps: a.cap,
                    no_new_privs: a.no_new_privs,
                },
            )?
        }
    };
    let code = exec::exec(
        rt,
        &ExecOptions {
            id: a.id,
            process,
            console_socket: a.console_socket,
            detach: a.detach,
            pid_file: a.pid_file,
            preserve_fds: a.preserve_fds,
        },
    )?;
    Ok(code)
}

fn print_list(rt: &Runtime, format: ListFormat, quiet: bool) -> anyhow::Result<()> {
    let entries = lifecycle::list(rt)?;
    let mut out = std::io::stdout().lock();
    if quiet {
        for e in &entries {
            writeln!(out, "{}", e.id)?;
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => writeln!(out, "{}", serde_json::to_string(&entries)?)?,
        ListFormat::Table => {
            let rows: Vec<[String; 6]> = entries
                .iter()
                .map(|e| {
                    [
                        e.id.clone(),
                        e.pid.to_string(),
                        e.status.to_string(),
                        e.bundle.display().to_string(),
                        e.created.clone(),
                        e.owner.clone(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            write_table(&mut out, &header, &rows)?;
        }
    }
    Ok(())
}

fn write_table(
    out: &mut impl Write,
    header: &[String; 6],
    rows: &[[String; 6]],
) -> std::io::Result<()> {
    let mut widths = header.clone().map(|h| h.len());
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(header).chain(rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("   ").trim_end())?;
    }
    Ok(())
}

fn print_ps(rt: &Runtime, a: cli::PsArgs) -> anyhow::Result<()> {
    let pids = lifecycle::pids(rt, &a.id)?;
    match a.format {
        ListFormat::Json => println!("{}", serde_json::to_string(&pids)?),
        ListFormat::Table => {
            let args = if a.ps_args.is_empty() {
                vec!["-ef".to_string()]
            } else {
                a.ps_args
            };
            let output = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("run ps")?;
            if !output.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            print!(
                "{}",
                container::lifecycle::filter_ps_output(
                    &String::from_utf8_lossy(&output.stdout),
                    &pids
                )?
            );
        }
    }
    Ok(())
}
