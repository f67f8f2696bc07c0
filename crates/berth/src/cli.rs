//! The command line, declared once: clap derives parsing and `--help` from
//! these types. Verbs, flags and their meaning follow Docker's CLI.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// berth: a daemonless container engine with Docker's command line.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about,
    propagate_version = true,
    disable_help_subcommand = true
)]
#[command(
    after_help = "Examples:\n  berth pull busybox\n  berth images\n  berth --root /tmp/store pull localhost:5000/app:1\n\nThe store lives under --root (default /var/lib/berth, or $BERTH_ROOT)."
)]
pub struct Cli {
    /// Directory of the image store [env: BERTH_ROOT] [default: /var/lib/berth]
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// List images
    Images(ImagesArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load images from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Load images from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Remove unused images
    Prune(PruneArgs),
}

/// Registry connection flags shared by pull and push.
#[derive(Debug, Args)]
pub struct TlsArgs {
    /// Require HTTPS and verify certificates (false: allow plain HTTP and
    /// unverified certificates for this registry)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth pull busybox\n  berth pull --platform linux/arm64 alpine:3.20\n  berth pull -q localhost:5000/app@sha256:<digest>"
)]
pub struct PullArgs {
    /// Image reference: NAME[:TAG|@DIGEST]
    pub image: String,
    /// Print only the image name
    #[arg(short, long)]
    pub quiet: bool,
    /// Platform to pull from a multi-platform image: os/arch[/variant]
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Layers downloaded at once
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_concurrent_downloads: usize,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth push localhost:5000/app:1\n  berth tag busybox localhost:5000/busybox && berth push localhost:5000/busybox"
)]
pub struct PushArgs {
    /// Image reference: NAME[:TAG]
    pub image: String,
    /// Print only the pushed digest
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth images\n  berth images --digests\n  berth images -q\n  berth images --format json"
)]
pub struct ImagesArgs {
    /// Show only images of this repository (and tag)
    pub repository: Option<String>,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format: table or json (one object per line)
    #[arg(long, value_name = "FORMAT", default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth rmi busybox\n  berth rmi -f 3f4ca61aafcd\n  berth rmi localhost:5000/app@sha256:<digest>"
)]
pub struct RmiArgs {
    /// Images: names, id prefixes or digests
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Force removal of the image (several names, or in use)
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  berth tag busybox localhost:5000/tools/busybox:1.36")]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth inspect busybox\n  berth image inspect 3f4ca61aafcd")]
pub struct InspectArgs {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  berth history busybox")]
pub struct HistoryArgs {
    pub image: String,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth save -o images.tar busybox alpine\n  berth save --format oci-archive busybox > busybox-oci.tar"
)]
pub struct SaveArgs {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Archive format
    #[arg(long, value_name = "FORMAT", default_value = "docker-archive")]
    pub format: ArchiveFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveFormat {
    DockerArchive,
    OciArchive,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth load -i images.tar\n  berth load < busybox-oci.tar")]
pub struct LoadArgs {
    /// Read from a tar archive file, instead of STDIN
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth import rootfs.tar myimage:1\n  tar -C rootfs -c . | berth import - myimage"
)]
pub struct ImportArgs {
    /// A tar of a root filesystem (optionally compressed), or - for STDIN
    pub file: String,
    /// Name for the new image: REPOSITORY[:TAG]
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth login -u alice localhost:5000\n  echo \"$TOKEN\" | berth login -u alice --password-stdin ghcr.io"
)]
pub struct LoginArgs {
    /// Registry host (default docker.io)
    pub registry: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from STDIN
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub tls: TlsArgs,
}

#[derive(Debug, Args)]
#[command(after_help = "Example:\n  berth logout localhost:5000")]
pub struct LogoutArgs {
    /// Registry host (default docker.io)
    pub registry: Option<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth image prune -f\n  berth image prune -a -f")]
pub struct PruneArgs {
    /// Remove all images no container uses, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_an_example() {
        let cli = Cli::command();
        let mut missing = Vec::new();
        for sub in cli.get_subcommands() {
            let nested: Vec<_> = sub.get_subcommands().collect();
            if nested.is_empty() {
                if sub.get_after_help().is_none() {
                    missing.push(sub.get_name().to_string());
                }
            } else {
                for n in nested {
                    if n.get_after_help().is_none() {
                        missing.push(format!("{} {}", sub.get_name(), n.get_name()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "commands without an example in --help: {missing:?}"
        );
    }

    #[test]
    fn tls_verify_takes_an_explicit_false() {
        let cli = Cli::try_parse_from(["berth", "pull", "--tls-verify=false", "x"]).expect("parse");
        match cli.command {
            Command::Pull(p) => assert!(!p.tls.tls_verify),
            other => panic!("expected pull, got {other:?}"),
        }
    }
}
