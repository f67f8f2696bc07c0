//! runc's command line, flag for flag (declared once; clap derives --help).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "berth-runtime",
    about = "berth-runtime: a runc-compatible OCI runtime",
    disable_version_flag = true,
    after_help = "Example:\n  berth-runtime spec && berth-runtime run -b . demo\n\nExit status: the container's for `run` in the foreground, 1 on error."
)]
pub struct Cli {
    /// Root directory for container state
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Write the log to FILE instead of stderr
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormatArg,
    /// Enable debug logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Treat linux.cgroupsPath as slice:prefix:name (mapped to cgroupfs)
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub systemd_cgroup: Option<bool>,
    /// Accepted for runc compatibility (rootless mode is detected)
    #[arg(long, value_name = "true|false|auto", hide = true)]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility; checkpointing is not supported
    #[arg(long, global = true, value_name = "PATH", hide = true)]
    pub criu: Option<String>,
    /// Print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a container (it waits for `start` before running the program)
    #[command(
        after_help = "Example:\n  berth-runtime create --bundle /path/to/bundle mycontainer"
    )]
    Create(CreateArgs),
    /// Run the program of a created container
    #[command(after_help = "Example:\n  berth-runtime start mycontainer")]
    Start(IdArg),
    /// Create and start a container; in the foreground, exit with its status
    #[command(after_help = "Example:\n  berth-runtime run --bundle /path/to/bundle mycontainer")]
    Run(Box<RunArgs>),
    /// Print the state of a container as JSON
    #[command(after_help = "Example:\n  berth-runtime state mycontainer")]
    State(IdArg),
    /// Send a signal to the container's init (default SIGTERM)
    #[command(
        after_help = "Example:\n  berth-runtime kill mycontainer KILL\n  berth-runtime kill --all mycontainer 9"
    )]
    Kill(KillArgs),
    /// Delete a stopped container (--force kills it first)
    #[command(after_help = "Example:\n  berth-runtime delete --force mycontainer")]
    Delete(DeleteArgs),
    /// List containers
    #[command(after_help = "Example:\n  berth-runtime list --format json")]
    List(ListArgs),
    /// Run a new process in a running container
    #[command(
        after_help = "Example:\n  berth-runtime exec -t mycontainer sh\n  berth-runtime exec --process process.json mycontainer"
    )]
    Exec(Box<ExecArgs>),
    /// List the processes of a container
    #[command(
        after_help = "Example:\n  berth-runtime ps mycontainer\n  berth-runtime ps --format json mycontainer"
    )]
    Ps(PsArgs),
    /// Freeze every process of a container
    #[command(after_help = "Example:\n  berth-runtime pause mycontainer")]
    Pause(IdArg),
    /// Thaw a paused container
    #[command(after_help = "Example:\n  berth-runtime resume mycontainer")]
    Resume(IdArg),
    /// Write a default config.json (the bundle's spec)
    #[command(after_help = "Example:\n  mkdir -p b/rootfs && cd b && berth-runtime spec")]
    Spec(SpecArgs),
    /// Change the resource limits of a running container
    #[command(
        after_help = "Example:\n  berth-runtime update --memory 100m --pids-limit 50 mycontainer\n  berth-runtime update -r resources.json mycontainer"
    )]
    Update(UpdateArgs),
    /// Print resource usage (--stats) or stream stats and OOM events as JSON
    #[command(
        after_help = "Example:\n  berth-runtime events --stats mycontainer\n  berth-runtime events --interval 1s mycontainer"
    )]
    Events(EventsArgs),
    /// Print the OCI features this runtime supports, as JSON
    #[command(after_help = "Example:\n  berth-runtime features | jq .linux.namespaces")]
    Features,
}

#[derive(Debug, Args)]
pub struct IdArg {
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Path to the bundle directory (config.json and the rootfs)
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Unix socket to send the pty master to (terminal containers)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility; not supported
    #[arg(long, value_name = "PATH", hide = true)]
    pub pidfd_socket: Option<PathBuf>,
    /// Write the container's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (MS_MOVE + chroot instead)
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Detach from the container's process
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
    /// Accepted for runc compatibility
    #[arg(long, hide = true)]
    pub no_subreaper: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Send the signal to every process of the container
    #[arg(short, long)]
    pub all: bool,
    /// Container id
    pub id: String,
    /// Signal name or number
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Kill the container first if it still runs
    #[arg(short, long)]
    pub force: bool,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Print only container ids
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: ListFormat,
    /// Container id
    pub id: String,
    /// Options passed to ps(1) (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Write a spec for a rootless container
    #[arg(long)]
    pub rootless: bool,
    /// Directory to write config.json into
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Unix socket to send the pty master to
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility; not supported
    #[arg(long, value_name = "PATH", hide = true)]
    pub pidfd_socket: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// User to run as: uid[:gid]
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional gids
    #[arg(short = 'g', long, value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Read the process from a JSON file (the spec's `process`)
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Detach from the process
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility (SELinux is not supported)
    #[arg(long, value_name = "LABEL", hide = true)]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility (AppArmor is not supported)
    #[arg(long, value_name = "PROFILE", hide = true)]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Add a capability (e.g. CAP_NET_ADMIN)
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass N extra fds (3..3+N) to the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility
    #[arg(long, hide = true)]
    pub ignore_paused: bool,
    /// Accepted for runc compatibility
    #[arg(long, value_name = "PATH", hide = true)]
    pub cgroup: Option<String>,
    /// Container id
    pub id: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// JSON linux.resources to apply ("-" reads stdin); flags override it
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Block I/O weight, 10 to 1000
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub blkio_weight: Option<i64>,
    /// CPU CFS period in microseconds
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_period: Option<i64>,
    /// CPU CFS quota in microseconds per period (-1: unlimited)
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight), 2 to 262144
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub cpu_share: Option<i64>,
    /// CPU realtime period in microseconds
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<i64>,
    /// CPU realtime runtime in microseconds
    #[arg(long, value_name = "US", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs the container may use (e.g. 0-3,5)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (e.g. 0)
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Memory limit: bytes or with a suffix (64m, 1g); -1 for unlimited
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit (reservation): bytes or with a suffix
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit: bytes or with a suffix; -1 for unlimited
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (0 or -1: unlimited)
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long, value_name = "SCHEMA")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long, value_name = "SCHEMA")]
    pub mem_bw_schema: Option<String>,
    /// Container id
    pub id: String,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Print one stats event and exit
    #[arg(long)]
    pub stats: bool,
    /// Time between stats events (e.g. 5s, 500ms)
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub interval: String,
    /// Container id
    pub id: String,
}
