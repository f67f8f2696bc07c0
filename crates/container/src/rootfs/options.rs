//! `mounts[].options` of config.json, parsed into what mount(2) takes.
//!
//! The OCI spec lists mount(8)-style words; each is either a flag that is
//! set or cleared, a propagation change (which mount(2) only accepts in a
//! call of its own), a bind request, or filesystem data that is passed
//! through untouched (`mode=755`, `size=65536k`, `newinstance`, ...).
//! Later words win over earlier ones, as with mount(8).

use nix::mount::MsFlags;

/// One mount's options, split by how they reach the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Flags for the mount call itself.
    pub flags: MsFlags,
    /// Flags the options explicitly cleared ("rw", "suid", ...): the caller
    /// must not carry them over from an existing mount.
    pub cleared: MsFlags,
    /// Propagation changes, in order, each applied with its own call.
    pub propagation: Vec<MsFlags>,
    /// Everything else, comma-joined, for the filesystem.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            data: String::new(),
        }
    }
}

impl MountOptions {
    /// "bind" or "rbind" was among the options.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Flags that a bind mount needs a second MS_REMOUNT call for: a bind
    /// mount ignores everything but MS_BIND and MS_REC.
    pub fn remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }

    /// Whether the options say anything about access times.
    pub fn sets_atime(&self) -> bool {
        let atime = atime_flags();
        self.flags.intersects(atime) || self.cleared.intersects(atime)
    }
}

/// The flags that together select the access-time behaviour.
pub(crate) fn atime_flags() -> MsFlags {
    MsFlags::MS_NOATIME | MsFlags::MS_NODIRATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME
}

/// `(set, flag)`: the word sets `flag` when `set`, else clears it.
fn flag_word(word: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    let entry = match word {
        "ro" => (true, F::MS_RDONLY),
        "rw" => (false, F::MS_RDONLY),
        "nosuid" => (true, F::MS_NOSUID),
        "suid" => (false, F::MS_NOSUID),
        "nodev" => (true, F::MS_NODEV),
        "dev" => (false, F::MS_NODEV),
        "noexec" => (true, F::MS_NOEXEC),
        "exec" => (false, F::MS_NOEXEC),
        "sync" => (true, F::MS_SYNCHRONOUS),
        "async" => (false, F::MS_SYNCHRONOUS),
        "dirsync" => (true, F::MS_DIRSYNC),
        "remount" => (true, F::MS_REMOUNT),
        "mand" => (true, F::MS_MANDLOCK),
        "nomand" => (false, F::MS_MANDLOCK),
        "noatime" => (true, F::MS_NOATIME),
        "atime" => (false, F::MS_NOATIME),
        "nodiratime" => (true, F::MS_NODIRATIME),
        "diratime" => (false, F::MS_NODIRATIME),
        "relatime" => (true, F::MS_RELATIME),
        "norelatime" => (false, F::MS_RELATIME),
        "strictatime" => (true, F::MS_STRICTATIME),
        "nostrictatime" => (false, F::MS_STRICTATIME),
        "lazytime" => (true, F::MS_LAZYTIME),
        "nolazytime" => (false, F::MS_LAZYTIME),
        "bind" => (true, F::MS_BIND),
        "rbind" => (true, F::MS_BIND | F::MS_REC),
        _ => return None,
    };
    Some(entry)
}

/// The mount(2) flags of a propagation word: "shared", "slave",
/// "private", "unbindable" and their recursive "r" forms.
pub fn propagation_flag(s: &str) -> Option<MsFlags> {
    let (recursive, base) = match s.strip_prefix('r') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let flag = match base {
        "shared" => MsFlags::MS_SHARED,
        "slave" => MsFlags::MS_SLAVE,
        "private" => MsFlags::MS_PRIVATE,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    };
    Some(if recursive {
        flag | MsFlags::MS_REC
    } else {
        flag
    })
}

/// Splits `options` into flags, propagation changes and data.
pub(crate) fn parse_options(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data = Vec::new();
    for word in options.iter().map(String::as_str) {
        if let Some((set, flag)) = flag_word(word) {
            if set {
                out.flags |= flag;
                out.cleared -= flag;
            } else {
                out.flags -= flag;
                out.cleared |= flag;
            }
        } else if let Some(flag) = propagation_flag(word) {
            out.propagation.push(flag);
        } else if word != "defaults" && !word.is_empty() {
            data.push(word);
        }
    }
    out.data = data.join(",");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> MountOptions {
        parse_options(&words.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn tmpfs_options_split_into_flags_and_data() {
        let o = parse(&["nosuid", "strictatime", "mode=755", "size=65536k"]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, "mode=755,size=65536k");
        assert!(o.propagation.is_empty());
        assert!(!o.is_bind());
    }

    #[test]
    fn devpts_data_keeps_order() {
        let o = parse(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC);
        assert_eq!(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    }

    #[test]
    fn later_words_override_earlier_ones() {
        let o = parse(&["ro", "rw", "noexec", "exec", "nodev"]);
        assert_eq!(o.flags, MsFlags::MS_NODEV);
        assert_eq!(o.cleared, MsFlags::MS_RDONLY | MsFlags::MS_NOEXEC);
        let o = parse(&["rw", "ro"]);
        assert_eq!(o.flags, MsFlags::MS_RDONLY);
        assert!(o.cleared.is_empty());
    }

    #[test]
    fn rbind_is_recursive_bind_and_needs_a_remount_for_ro() {
        let o = parse(&["rbind", "ro", "rprivate"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC));
        assert_eq!(o.remount_flags(), MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert_eq!(o.data, "");
    }

    #[test]
    fn all_flag_words_are_known() {
        let words = [
            "ro",
            "rw",
            "suid",
            "nosuid",
            "dev",
            "nodev",
            "exec",
            "noexec",
            "sync",
            "async",
            "dirsync",
            "remount",
            "mand",
            "nomand",
            "atime",
            "noatime",
            "diratime",
            "nodiratime",
            "relatime",
            "norelatime",
            "strictatime",
            "nostrictatime",
            "lazytime",
            "nolazytime",
            "bind",
            "rbind",
            "defaults",
        ];
        for w in words {
            assert_eq!(
                parse(&[w]).data,
                "",
                "{w} should not end up in the data string"
            );
        }
    }

    #[test]
    fn atime_words_are_noticed() {
        assert!(parse(&["noatime"]).sets_atime());
        assert!(parse(&["norelatime"]).sets_atime());
        assert!(!parse(&["nosuid", "mode=1777"]).sets_atime());
    }

    #[test]
    fn propagation_words() {
        use MsFlags as F;
        let cases = [
            ("shared", F::MS_SHARED),
            ("rshared", F::MS_SHARED | F::MS_REC),
            ("slave", F::MS_SLAVE),
            ("rslave", F::MS_SLAVE | F::MS_REC),
            ("private", F::MS_PRIVATE),
            ("rprivate", F::MS_PRIVATE | F::MS_REC),
            ("unbindable", F::MS_UNBINDABLE),
            ("runbindable", F::MS_UNBINDABLE | F::MS_REC),
        ];
        for (word, flag) in cases {
            assert_eq!(propagation_flag(word), Some(flag), "{word}");
        }
        for bad in ["", "r", "ro", "rw", "rrshared", "Shared", "bind"] {
            assert_eq!(propagation_flag(bad), None, "{bad:?} is not a propagation");
        }
    }
}
