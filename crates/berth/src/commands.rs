//! One function per verb: open the store, call the library, print.

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use image::archive::{self, Format};
use image::manifest::Platform;
use image::progress::{NoProgress, PlainProgress, Progress, TerminalProgress};
use image::pull::{pull, PullOptions};
use image::reference::Reference;
use image::registry::{ClientOptions, RegistryClient};
use image::store::{familiar_name, NoUsers, Removed, Store};

use crate::cli::*;
use crate::output;

const DEFAULT_ROOT: &str = "/var/lib/berth";
const REGISTRIES_CONFIG: &str = "/etc/berth/registries.json";

pub fn run(cli: Cli) -> Result<()> {
    let root = cli
        .root
        .or_else(|| {
            std::env::var_os("BERTH_ROOT")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT));
    let ctx = Ctx { root };
    match cli.command {
        Command::Pull(a) => ctx.pull(a),
        Command::Push(a) => ctx.push(a),
        Command::Images(a) => ctx.images(a),
        Command::Rmi(a) => ctx.rmi(a),
        Command::Tag(a) => ctx.tag(a),
        Command::Inspect(a) => ctx.inspect(a),
        Command::History(a) => ctx.history(a),
        Command::Save(a) => ctx.save(a),
        Command::Load(a) => ctx.load(a),
        Command::Import(a) => ctx.import(a),
        Command::Login(a) => login(a),
        Command::Logout(a) => logout(a),
        Command::Image(sub) => match sub {
            ImageCommand::Ls(a) => ctx.images(a),
            ImageCommand::Rm(a) => ctx.rmi(a),
            ImageCommand::Pull(a) => ctx.pull(a),
            ImageCommand::Push(a) => ctx.push(a),
            ImageCommand::Tag(a) => ctx.tag(a),
            ImageCommand::Inspect(a) => ctx.inspect(a),
            ImageCommand::History(a) => ctx.history(a),
            ImageCommand::Save(a) => ctx.save(a),
            ImageCommand::Load(a) => ctx.load(a),
            ImageCommand::Import(a) => ctx.import(a),
            ImageCommand::Prune(a) => ctx.prune(a),
        },
    }
}

struct Ctx {
    root: PathBuf,
}

impl Ctx {
    fn store(&self) -> Result<Store> {
        Store::open(&self.root).with_context(|| format!("open image store {}", self.root.display()))
    }

    fn pull(&self, a: PullArgs) -> Result<()> {
        let reference = Reference::parse(&a.image)?;
        let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
        let store = self.store()?;
        let client = client(a.tls.tls_verify)?;
        let opts = PullOptions {
            platform,
            max_concurrent: a.max_concurrent_downloads.max(1),
        };
        let progress = progress_for(a.quiet);
        let pulled = pull(&store, &client, &reference, &opts, progress.as_ref())?;
        let mut out = io::stdout().lock();
        writeln!(out, "{}", pulled.name)?;
        Ok(())
    }

    fn push(&self, a: PushArgs) -> Result<()> {
        let store = self.store()?;
        let client = client(a.tls.tls_verify)?;
        let progress = progress_for(a.quiet);
        let pushed = image::push::push(&store, &client, &a.image, progress.as_ref())?;
        if a.quiet {
            writeln!(io::stdout().lock(), "{}", pushed.digest)?;
        }
        Ok(())
    }

    fn images(&self, a: ImagesArgs) -> Result<()> {
        let store = self.store()?;
        let filter = a
            .repository
            .as_deref()
            .map(Reference::parse_named)
            .transpose()?;
        let mut out = io::stdout().lock();
        let mut rows = Vec::new();
        let mut ids = Vec::new();
        for img in store.images()? {
            let id = if a.no_trunc {
                img.id.to_string()
            } else {
                img.id.short().to_string()
            };
            let names: Vec<(String, String)> = if !img.tags.is_empty() {
                img.tags.iter().map(|t| split_tag(t)).collect()
            } else if !img.repo_digests.is_empty() {
                // Pulled by digest: the repository is known, the tag is not.
                img.repo_digests
                    .iter()
                    .map(|d| (split_digest(d).0, "<none>".to_string()))
                    .collect()
            } else {
                vec![("<none>".into(), "<none>".into())]
            };
            for (repo, tag) in names {
                if let Some(f) = &filter {
                    if repo != f.familiar_name() || f.tag.as_ref().is_some_and(|t| *t != tag) {
                        continue;
                    }
                }
                if !ids.contains(&id) {
                    ids.push(id.clone());
                }
                let digest = img
                    .repo_digests
                    .iter()
                    .find(|d| split_digest(d).0 == repo)
                    .map(|d| split_digest(d).1)
                    .unwrap_or_else(|| "<none>".into());
                rows.push(ImageRow {
                    repo,
                    tag,
                    digest,
                    id: id.clone(),
                    img: img.clone(),
                });
            }
        }
        if a.quiet {
            for id in ids {
                writeln!(out, "{id}")?;
            }
            return Ok(());
        }
        match a.format {
            OutputFormat::Json => {
                for r in rows {
                    serde_json::to_writer(&mut out, &r.json())?;
                    writeln!(out)?;
                }
            }
            OutputFormat::Table => {
                let mut header = vec!["REPOSITORY", "TAG"];
                if a.digests {
                    header.push("DIGEST");
                }
                header.extend(["IMAGE ID", "CREATED", "SIZE"]);
                let cells: Vec<Vec<String>> = rows.iter().map(|r| r.cells(a.digests)).collect();
                output::table(&mut out, &header, &cells)?;
            }
        }
        Ok(())
    }

    fn rmi(&self, a: RmiArgs) -> Result<()> {
        let store = self.store()?;
        let mut out = io::stdout().lock();
        let mut failed = None;
        for name in &a.images {
            match store.remove_with(name, a.force, &NoUsers) {
                Ok(removed) => print_removed(&mut out, &removed)?,
                Err(e) if a.images.len() > 1 => {
                    eprintln!("berth: {e}");
                    failed = Some(e);
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            // Each failure was printed; exit like Docker with the engine code.
            Some(_) if a.images.len() > 1 => bail!("some images could not be removed"),
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn tag(&self, a: TagArgs) -> Result<()> {
        self.store()?.tag(&a.source, &a.target)?;
        Ok(())
    }

    fn inspect(&self, a: InspectArgs) -> Result<()> {
        let store = self.store()?;
        let mut values = Vec::new();
        for name in &a.images {
            let img = store.resolve(name)?;
            values.push(store.inspect(&img.id)?);
        }
        output::json_pretty(&mut io::stdout().lock(), &values)?;
        Ok(())
    }

    fn history(&self, a: HistoryArgs) -> Result<()> {
        let store = self.store()?;
        let img = store.resolve(&a.image)?;
        let entries = store.history(&img.id)?;
        let mut out = io::stdout().lock();
        let short = |id: &str| -> String {
            if a.no_trunc || id == "<missing>" {
                id.to_string()
            } else {
                id.trim_start_matches("sha256:").chars().take(12).collect()
            }
        };
        if a.quiet {
            for e in &entries {
                writeln!(out, "{}", short(&e.id))?;
            }
            return Ok(());
        }
        let rows: Vec<Vec<String>> = entries
            .iter()
            .map(|e| {
                let by = if a.no_trunc {
                    e.created_by.clone()
                } else {
                    output::truncate(&e.created_by, 45)
                };
                vec![
                    short(&e.id),
                    output::ago(e.created.as_deref()),
                    by,
                    image::progress::human_size(e.size),
                    e.comment.clone(),
                ]
            })
            .collect();
        output::table(
            &mut out,
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &rows,
        )?;
        Ok(())
    }

    fn save(&self, a: SaveArgs) -> Result<()> {
        let store = self.store()?;
        let format = match a.format {
            ArchiveFormat::DockerArchive => Format::DockerArchive,
            ArchiveFormat::OciArchive => Format::OciArchive,
        };
        match &a.output {
            Some(path) => {
                // Written next to the target and renamed: no half archive on failure.
                let tmp = path.with_file_name(format!(
                    ".{}.berth-tmp",
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ));
                let file =
                    File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
                let result = archive::save(&store, &a.images, format, io::BufWriter::new(file));
                if let Err(e) = result {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e.into());
                }
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("rename {} to {}", tmp.display(), path.display()))?;
            }
            None => {
                if io::stdout().is_terminal() {
                    bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
                }
                archive::save(
                    &store,
                    &a.images,
                    format,
                    io::BufWriter::new(io::stdout().lock()),
                )?;
            }
        }
        Ok(())
    }

    fn load(&self, a: LoadArgs) -> Result<()> {
        let store = self.store()?;
        let input: Box<dyn Read> = match &a.input {
            Some(path) => {
                Box::new(File::open(path).with_context(|| format!("open {}", path.display()))?)
            }
            None => {
                if io::stdin().is_terminal() {
                    bail!("requested load from stdin, but stdin is empty");
                }
                Box::new(io::stdin().lock())
            }
        };
        let loaded = archive::load(&store, input)?;
        if !a.quiet {
            let mut out = io::stdout().lock();
            for img in loaded {
                if img.names.is_empty() {
                    writeln!(out, "Loaded image ID: {}", img.id)?;
                }
                for name in img.names {
                    writeln!(out, "Loaded image: {}", familiar_name(&name))?;
                }
            }
        }
        Ok(())
    }

    fn import(&self, a: ImportArgs) -> Result<()> {
        let store = self.store()?;
        let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
        let input: Box<dyn Read> = if a.file == "-" {
            Box::new(io::stdin().lock())
        } else {
            Box::new(File::open(&a.file).with_context(|| format!("open {}", a.file))?)
        };
        let id = archive::import(&store, input, reference.as_ref(), &a.file)?;
        writeln!(io::stdout().lock(), "{id}")?;
        Ok(())
    }

    fn prune(&self, a: PruneArgs) -> Result<()> {
        if !a.force {
            let what = if a.all {
                "all images without at least one container associated to them"
            } else {
                "all dangling images"
            };
            eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
            let mut answer = String::new();
            io::stdin().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                return Ok(());
            }
        }
        let store = self.store()?;
        let removed = store.prune(a.all, &NoUsers)?;
        let mut out = io::stdout().lock();
        if !removed.is_empty() {
            writeln!(out, "Deleted Images:")?;
            print_removed(&mut out, &removed)?;
        }
        Ok(())
    }
}

struct ImageRow {
    repo: String,
    tag: String,
    digest: String,
    id: String,
    img: image::store::Image,
}

impl ImageRow {
    fn cells(&self, digests: bool) -> Vec<String> {
        let mut c = vec![self.repo.clone(), self.tag.clone()];
        if digests {
            c.push(self.digest.clone());
        }
        c.extend([
            self.id.clone(),
            output::ago(self.img.created.as_deref()),
            image::progress::human_size(self.img.size),
        ]);
        c
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "Containers": "N/A",
            "CreatedAt": self.img.created.clone().unwrap_or_default(),
            "CreatedSince": output::ago(self.img.created.as_deref()),
            "Digest": self.digest,
            "ID": self.id,
            "Repository": self.repo,
            "SharedSize": "N/A",
            "Size": image::progress::human_size(self.img.size),
            "Tag": self.tag,
            "UniqueSize": "N/A",
            "VirtualSize": image::progress::human_size(self.img.size),
        })
    }
}

/// `docker.io/library/busybox:latest` -> (`busybox`, `latest`).
fn split_tag(full: &str) -> (String, String) {
    match Reference::parse(full) {
        Ok(r) => (r.familiar_name(), r.tag.unwrap_or_else(|| "<none>".into())),
        Err(_) => (full.to_string(), "<none>".into()),
    }
}

/// `docker.io/library/busybox@sha256:...` -> (`busybox`, `sha256:...`).
fn split_digest(full: &str) -> (String, String) {
    match Reference::parse(full) {
        Ok(r) => (
            r.familiar_name(),
            r.digest.map(|d| d.to_string()).unwrap_or_default(),
        ),
        Err(_) => (full.to_string(), String::new()),
    }
}

fn print_removed(out: &mut dyn Write, removed: &[Removed]) -> io::Result<()> {
    for r in removed {
        match r {
            Removed::Untagged(name) => writeln!(out, "Untagged: {}", familiar_name(name))?,
            Removed::Deleted(id) => writeln!(out, "Deleted: {id}")?,
        }
    }
    Ok(())
}

/// Progress on stderr: redrawn lines on a terminal, plain lines otherwise.
fn progress_for(quiet: bool) -> Box<dyn Progress> {
    if quiet {
        Box::new(NoProgress)
    } else if io::stderr().is_terminal() {
        Box::new(TerminalProgress::new(io::stderr()))
    } else {
        Box::new(PlainProgress::new(io::stderr()))
    }
}

/// A registry client with the insecure registries of /etc/berth/registries.json.
fn client(tls_verify: bool) -> Result<RegistryClient> {
    let mut opts = ClientOptions {
        tls_verify,
        ..ClientOptions::default()
    };
    if let Ok(bytes) = std::fs::read(REGISTRIES_CONFIG) {
        let config: serde_json::Value =
            serde_json::from_slice(&bytes).with_context(|| format!("parse {REGISTRIES_CONFIG}"))?;
        if let Some(list) = config.get("insecure").and_then(|v| v.as_array()) {
            opts.insecure_registries = list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
        }
    }
    Ok(RegistryClient::new(opts))
}

fn login(a: LoginArgs) -> Result<()> {
    let registry = a.registry.unwrap_or_else(|| "docker.io".into());
    let username = match a.username {
        Some(u) => u,
        None => prompt("Username: ")?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => {
            let mut s = String::new();
            io::stdin().read_to_string(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => prompt_secret("Password: ")?,
    };
    if password.is_empty() {
        bail!("error: password required");
    }
    let creds = image::auth::Credentials::new(&username, &password);
    client(a.tls.tls_verify)?.check_login(&registry, &creds)?;
    image::auth::store(&registry, &creds)?;
    println!("Login Succeeded");
    Ok(())
}

fn logout(a: LogoutArgs) -> Result<()> {
    let registry = a.registry.unwrap_or_else(|| "docker.io".into());
    if image::auth::erase(&registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}");
    let mut s = String::new();
    io::stdin().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// Like `prompt`, with the terminal's echo off while the secret is typed.
fn prompt_secret(label: &str) -> Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it or fails.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd 0 and a valid pointer to a local termios.
    let is_tty = unsafe { libc::tcgetattr(fd, &mut saved) } == 0;
    if is_tty {
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        quiet.c_lflag |= libc::ECHONL;
        // SAFETY: as above, with a termios derived from the current one.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    }
    let answer = prompt(label);
    if is_tty {
        // SAFETY: restores the settings read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    }
    answer
}
