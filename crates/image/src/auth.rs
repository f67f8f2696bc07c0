//! Registry credentials in Docker's own `config.json`, so `docker login`,
//! `podman login` and `berth login` share one file.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
//! Credentials come from, in order: `credHelpers[registry]`, `credsStore`,
//! `auths[registry].auth` (base64 `user:password`). Helpers are the
//! `docker-credential-<name>` programs (`get`/`store`/`erase`, JSON on
//! stdin/stdout). When writing we keep every key we do not understand,
//! write a temporary file and rename it into place, mode 0600. Secrets are
//! never put in error messages or `Debug` output.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

/// The key Docker uses for Docker Hub in `auths` and for helpers.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: auths entry for {registry} is not base64 of user:password")]
    BadAuth { path: PathBuf, registry: String },
    #[error("credential helper docker-credential-{helper} {action} for {registry}: {reason}")]
    Helper {
        helper: String,
        action: &'static str,
        registry: String,
        reason: String,
    },
    #[error("no Docker config directory: set DOCKER_CONFIG or HOME")]
    NoConfigDir,
}

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The key for `registry` in `auths` and for credential helpers: Docker Hub
/// is stored under its historical URL, other registries by host[:port].
pub fn auth_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_AUTH_KEY.to_string(),
        other => other.to_string(),
    }
}

/// Docker's `ConvertToHostname`: `https://host:5000/v2/` -> `host:5000`.
fn key_hostname(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    rest.split('/').next().unwrap_or(rest)
}

/// Docker's config file, loaded; unknown keys are kept when saving.
pub struct DockerConfig {
    path: PathBuf,
    root: Map<String, Value>,
}

impl DockerConfig {
    /// The directory Docker uses: `$DOCKER_CONFIG` or `~/.docker`.
    pub fn default_dir() -> Result<PathBuf, AuthError> {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(d));
        }
        match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
            Some(h) => Ok(PathBuf::from(h).join(".docker")),
            None => Err(AuthError::NoConfigDir),
        }
    }

    /// Load `config.json` from the default directory.
    pub fn load_default() -> Result<DockerConfig, AuthError> {
        DockerConfig::load(&DockerConfig::default_dir()?)
    }

    /// Load `dir/config.json`; a missing file is an empty config.
    pub fn load(dir: &Path) -> Result<DockerConfig, AuthError> {
        let path = dir.join("config.json");
        let root = match std::fs::read(&path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => serde_json::from_slice(&b).map_err(|source| AuthError::Parse {
                path: path.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(source) => return Err(AuthError::Read { path, source }),
        };
        Ok(DockerConfig { path, root })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The credential helper responsible for `registry`, if any.
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        let key = auth_key(registry);
        let per_registry = self.root.get("credHelpers").and_then(Value::as_object);
        if let Some(h) = per_registry.and_then(|m| m.get(&key).or_else(|| m.get(registry))) {
            return h.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        }
        self.root
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    /// Credentials for `registry` (`docker.io`, `host:5000`).
    pub fn lookup(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        if let Some(helper) = self.helper_for(registry) {
            return helper_get(&helper, &auth_key(registry));
        }
        self.lookup_auths(registry)
    }

    fn lookup_auths(&self, registry: &str) -> Result<Option<Credentials>, AuthError> {
        let Some(auths) = self.root.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        let key = auth_key(registry);
        let wanted = key_hostname(&key);
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| key_hostname(k) == wanted || auth_key(key_hostname(k)) == key)
                .map(|(_, v)| v)
        });
        let Some(entry) = entry else { return Ok(None) };
        let bad = || AuthError::BadAuth {
            path: self.path.clone(),
            registry: registry.to_string(),
        };
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let (user, pass) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials::new(user, pass.trim_end_matches('\0'))));
        }
        let user = entry.get("username").and_then(Value::as_str);
        let pass = entry.get("password").and_then(Value::as_str);
        Ok(match (user, pass) {
            (Some(u), Some(p)) => Some(Credentials::new(u, p)),
            _ => None,
        })
    }

    /// Store credentials for `registry`: in its helper when one is
    /// configured, else base64 in `auths` (then call `save`).
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<(), AuthError> {
        let key = auth_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            helper_store(&helper, &key, creds)?;
            // Docker leaves an empty entry so `docker info` lists the login.
            self.auths_mut().insert(key, Value::Object(Map::new()));
            return Ok(());
        }
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        let mut entry = Map::new();
        entry.insert("auth".to_string(), Value::String(encoded));
        self.auths_mut().insert(key, Value::Object(entry));
        Ok(())
    }

    /// Forget `registry`; true when something was removed (then `save`).
    pub fn erase(&mut self, registry: &str) -> Result<bool, AuthError> {
        let key = auth_key(registry);
        let mut removed = false;
        if let Some(helper) = self.helper_for(registry) {
            removed = helper_erase(&helper, &key)?;
        }
        let wanted = key_hostname(&key).to_string();
        let auths = self.auths_mut();
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| **k == key || key_hostname(k) == wanted)
            .cloned()
            .collect();
        for k in keys {
            auths.remove(&k);
            removed = true;
        }
        Ok(removed)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let auths = self
            .root
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        match auths {
            Value::Object(m) => m,
            _ => unreachable!("auths was just made an object"),
        }
    }

    /// Write the file atomically (temp file + rename), mode 0600.
    pub fn save(&self) -> Result<(), AuthError> {
        let werr = |source| AuthError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(werr)?;
        }
        let tmp = self
            .path
            .with_file_name(format!("config.json.tmp-{}", std::process::id()));
        let mut text = serde_json::to_vec_pretty(&self.root).map_err(|e| werr(e.into()))?;
        text.push(b'\n');
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            werr(e)
        })
    }
}

/// Credentials for `registry` from the default Docker config.
pub fn lookup(registry: &str) -> Result<Option<Credentials>, AuthError> {
    DockerConfig::load_default()?.lookup(registry)
}

/// Store credentials for `registry` in the default Docker config.
pub fn store(registry: &str, creds: &Credentials) -> Result<(), AuthError> {
    let mut cfg = DockerConfig::load_default()?;
    cfg.store(registry, creds)?;
    cfg.save()
}

/// Remove credentials for `registry` from the default Docker config; true
/// when there were some.
pub fn erase(registry: &str) -> Result<bool, AuthError> {
    let mut cfg = DockerConfig::load_default()?;
    let removed = cfg.erase(registry)?;
    if removed {
        cfg.save()?;
    }
    Ok(removed)
}

/// Run `docker-credential-<helper> <action>` with `input` on stdin.
fn run_helper(
    helper: &str,
    action: &'static str,
    registry: &str,
    input: &[u8],
) -> Result<(bool, String), AuthError> {
    let err = |reason: String| AuthError::Helper {
        helper: helper.to_string(),
        action,
        registry: registry.to_string(),
        reason,
    };
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| err(format!("write to {program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("wait for {program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok((true, stdout))
    } else {
        // Helpers print their error message (never the secret) on stdout.
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let msg = if stdout.is_empty() { stderr } else { stdout };
        Ok((false, msg))
    }
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credentials>, AuthError> {
    let (ok, out) = run_helper(helper, "get", key, key.as_bytes())?;
    if !ok {
        if out.contains("credentials not found") {
            return Ok(None);
        }
        return Err(helper_error(helper, "get", key, out));
    }
    let v: BTreeMap<String, Value> = serde_json::from_str(&out)
        .map_err(|_| helper_error(helper, "get", key, "output is not JSON".to_string()))?;
    let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (user, secret) = (field("Username"), field("Secret"));
    if user.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: user,
        password: secret,
    }))
}

fn helper_store(helper: &str, key: &str, creds: &Credentials) -> Result<(), AuthError> {
    let body = serde_json::json!({
        "ServerURL": key,
        "Username": creds.username,
        "Secret": creds.password,
    });
    let (ok, out) = run_helper(helper, "store", key, body.to_string().as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(helper_error(helper, "store", key, out))
    }
}

fn helper_erase(helper: &str, key: &str) -> Result<bool, AuthError> {
    let (ok, out) = run_helper(helper, "erase", key, key.as_bytes())?;
    if ok {
        Ok(true)
    } else if out.contains("credentials not found") {
        Ok(false)
    } else {
        Err(helper_error(helper, "erase", key, out))
    }
}

fn helper_error(helper: &str, action: &'static str, registry: &str, reason: String) -> AuthError {
    AuthError::Helper {
        helper: helper.to_string(),
        action,
        registry: registry.to_string(),
        reason: if reason.is_empty() {
            "failed without a message".to_string()
        } else {
            reason
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_keys_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"aHViOnNlY3JldA=="}},"psFormat":"table"}"#,
        )
        .unwrap();
        let mut cfg = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(
            cfg.lookup("docker.io").unwrap(),
            Some(Credentials::new("hub", "secret"))
        );
        assert_eq!(cfg.lookup("ghcr.io").unwrap(), None);
        cfg.store("localhost:5000", &Credentials::new("u", "p:with:colons"))
            .unwrap();
        cfg.save().unwrap();
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(
            text.contains("\"psFormat\": \"table\""),
            "unknown keys kept: {text}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut cfg = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(
            cfg.lookup("localhost:5000").unwrap(),
            Some(Credentials::new("u", "p:with:colons"))
        );
        assert!(cfg.erase("localhost:5000").unwrap());
        assert!(!cfg.erase("localhost:5000").unwrap());
        assert_eq!(cfg.lookup("localhost:5000").unwrap(), None);
    }

    #[test]
    fn url_shaped_keys_match_by_host() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"https://reg.example.com:5000/v2/":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        let cfg = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(
            cfg.lookup("reg.example.com:5000").unwrap(),
            Some(Credentials::new("a", "b"))
        );
    }

    #[test]
    fn bad_auth_names_the_registry_not_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"r.io":{"auth":"bm9jb2xvbg=="}}}"#,
        )
        .unwrap();
        let e = DockerConfig::load(dir.path())
            .unwrap()
            .lookup("r.io")
            .unwrap_err()
            .to_string();
        assert!(e.contains("r.io") && !e.contains("nocolon"), "{e}");
        let e = format!("{:?}", Credentials::new("u", "hunter2"));
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn default_dir_honours_docker_config() {
        // Only this test touches the variable.
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("DOCKER_CONFIG", dir.path());
        store("127.0.0.1:5000", &Credentials::new("x", "y")).unwrap();
        assert_eq!(
            lookup("127.0.0.1:5000").unwrap(),
            Some(Credentials::new("x", "y"))
        );
        assert!(erase("127.0.0.1:5000").unwrap());
        assert_eq!(lookup("127.0.0.1:5000").unwrap(), None);
        std::env::remove_var("DOCKER_CONFIG");
    }

    #[test]
    fn credential_helpers_get_store_erase() {
        // A fake helper keeping one credential in a file next to it.
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let state = dir.path().join("state");
        let script = format!(
            "#!/bin/sh\nS={}\ncase \"$1\" in\n\
             get) read url; if [ -f $S ]; then cat $S; else echo 'credentials not found in native keychain'; exit 1; fi;;\n\
             store) cat > $S;;\n\
             erase) read url; if [ -f $S ]; then rm $S; else echo 'credentials not found in native keychain'; exit 1; fi;;\n\
             esac\n",
            state.display()
        );
        let helper = bin.join("docker-credential-berthtest");
        std::fs::write(&helper, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"credHelpers":{"reg.test":"berthtest"}}"#,
        )
        .unwrap();
        // Run the helper by absolute path through a PATH that has it first.
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        std::env::set_var("PATH", path);
        let mut cfg = DockerConfig::load(dir.path()).unwrap();
        assert_eq!(cfg.helper_for("reg.test").as_deref(), Some("berthtest"));
        assert_eq!(cfg.lookup("reg.test").unwrap(), None);
        cfg.store("reg.test", &Credentials::new("alice", "s3cret"))
            .unwrap();
        assert_eq!(
            cfg.lookup("reg.test").unwrap(),
            Some(Credentials::new("alice", "s3cret"))
        );
        assert!(cfg.erase("reg.test").unwrap());
        assert_eq!(cfg.lookup("reg.test").unwrap(), None);
        assert_eq!(cfg.helper_for("other.test"), None);
    }
}
