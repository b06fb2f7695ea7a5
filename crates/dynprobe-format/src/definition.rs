//! What a provider is: names, probes, argument types, and the rules they obey.

use std::collections::HashSet;
use std::fmt;

use crate::types::{check_arg_name, ArgType, DeclaredType, MAX_ARGS};

/// DTrace appends the process id (up to 10 digits) to a provider name and
/// keeps names within 64 bytes, so a provider name leaves room for it.
pub const MAX_PROVIDER_LEN: usize = 54;
/// DTrace's limit for a probe name.
pub const MAX_PROBE_LEN: usize = 64;
/// A module becomes a file name; keep it well within `NAME_MAX`.
pub const MAX_MODULE_LEN: usize = 128;

impl ArgType {
    /// Parses the exact C spellings of [`ArgType::c_name`] (and `int`, `char*`, `string`),
    /// ignoring surrounding white space; nothing looser: prefix matching of
    /// dtrace-provider's loose names belongs to its JS layer.
    pub fn from_c_name(name: &str) -> Result<ArgType, DefinitionError> {
        Ok(match name.trim() {
            "int8_t" => ArgType::I8,
            "uint8_t" => ArgType::U8,
            "int16_t" => ArgType::I16,
            "uint16_t" => ArgType::U16,
            "int32_t" => ArgType::I32,
            "uint32_t" => ArgType::U32,
            "int64_t" | "int" => ArgType::I64,
            "uint64_t" => ArgType::U64,
            "char *" | "char*" | "string" => ArgType::Str,
            other => return Err(DefinitionError::UnknownType(other.to_string())),
        })
    }
}

/// One probe: a name and the types of its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeDef {
    pub name: String,
    pub args: Vec<ArgType>,
    /// The types as the API declared them (`int`, `json`), one per
    /// argument, each of its `args` type; `None`: the C names of `args`.
    /// The image records them for listings (see [`crate::declared`]).
    pub declared: Option<Vec<DeclaredType>>,
    /// The arguments' names (C identifiers, one per argument), when the API
    /// was given them; the image records them with the declared types.
    pub arg_names: Option<Vec<String>>,
}

impl ProbeDef {
    pub fn new(name: impl Into<String>, args: impl Into<Vec<ArgType>>) -> ProbeDef {
        ProbeDef {
            name: name.into(),
            args: args.into(),
            declared: None,
            arg_names: None,
        }
    }

    /// A probe whose arguments are what `declared` types travel as.
    pub fn with_declared(name: impl Into<String>, declared: Vec<DeclaredType>) -> ProbeDef {
        ProbeDef {
            name: name.into(),
            args: declared.iter().map(|t| t.arg_type()).collect(),
            declared: Some(declared),
            arg_names: None,
        }
    }

    /// The declared type of every argument.
    pub fn declared_types(&self) -> Vec<DeclaredType> {
        match &self.declared {
            Some(declared) => declared.clone(),
            None => self.args.iter().map(|&t| DeclaredType::C(t)).collect(),
        }
    }
}

/// A provider: its name, its module (the generated file's name) and its probes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderDef {
    pub name: String,
    pub module: String,
    pub probes: Vec<ProbeDef>,
}

impl ProviderDef {
    pub fn new(name: impl Into<String>, module: impl Into<String>) -> ProviderDef {
        ProviderDef {
            name: name.into(),
            module: module.into(),
            probes: Vec::new(),
        }
    }

    /// Adds a probe, checking it against the rules and the probes already
    /// here ([`ProviderDef::add_probes`] adds many in one pass).
    pub fn add_probe(&mut self, probe: ProbeDef) -> Result<&mut Self, DefinitionError> {
        self.add_probes([probe])
    }

    /// Adds probes, checking each against the rules, the probes already here
    /// and those before it, in time linear in their number (a provider may
    /// have thousands). On an error, none is added.
    pub fn add_probes(
        &mut self,
        probes: impl IntoIterator<Item = ProbeDef>,
    ) -> Result<&mut Self, DefinitionError> {
        let before = self.probes.len();
        self.probes.extend(probes);
        if let Err(err) = check_probes(&self.probes, before) {
            self.probes.truncate(before);
            return Err(err);
        }
        Ok(self)
    }

    pub fn probe(&self, name: &str) -> Option<&ProbeDef> {
        self.probes.iter().find(|p| p.name == name)
    }

    /// Checks the whole definition; [`crate::build_image`] calls this first.
    pub fn validate(&self) -> Result<(), DefinitionError> {
        check_name(NameKind::Provider, &self.name, MAX_PROVIDER_LEN)?;
        check_name(NameKind::Module, &self.module, MAX_MODULE_LEN)?;
        if self.module.contains('/') || self.module == "." || self.module == ".." {
            return Err(DefinitionError::BadName {
                kind: NameKind::Module,
                name: self.module.clone(),
                reason: "must be usable as a file name (no '/', not '.' or '..')",
            });
        }
        if self.probes.is_empty() {
            return Err(DefinitionError::NoProbes(self.name.clone()));
        }
        check_probes(&self.probes, 0)
    }
}

/// Checks `probes[from..]`, each against the rules and the probes before it,
/// and reports the first refused in order; a set of names keeps it linear.
fn check_probes(probes: &[ProbeDef], from: usize) -> Result<(), DefinitionError> {
    let mut names: HashSet<&str> = probes[..from].iter().map(|p| p.name.as_str()).collect();
    for probe in &probes[from..] {
        check_probe(probe)?;
        if !names.insert(&probe.name) {
            return Err(DefinitionError::DuplicateProbe(probe.name.clone()));
        }
    }
    Ok(())
}

fn check_probe(probe: &ProbeDef) -> Result<(), DefinitionError> {
    check_name(NameKind::Probe, &probe.name, MAX_PROBE_LEN)?;
    if probe.args.len() > MAX_ARGS {
        return Err(DefinitionError::TooManyArgs {
            probe: probe.name.clone(),
            count: probe.args.len(),
        });
    }
    if let Some(declared) = &probe.declared {
        let fits = declared.len() == probe.args.len()
            && declared
                .iter()
                .zip(&probe.args)
                .all(|(d, &a)| d.arg_type() == a);
        if !fits {
            return Err(DefinitionError::DeclaredMismatch(probe.name.clone()));
        }
    }
    if let Some(names) = &probe.arg_names {
        if names.len() != probe.args.len() {
            return Err(DefinitionError::ArgNameCount {
                probe: probe.name.clone(),
                names: names.len(),
                args: probe.args.len(),
            });
        }
        for (index, name) in names.iter().enumerate() {
            if let Some(reason) = check_arg_name(name) {
                return Err(DefinitionError::BadArgName {
                    probe: probe.name.clone(),
                    index,
                    name: name.clone(),
                    reason,
                });
            }
        }
        if let Some((i, name)) = names
            .iter()
            .enumerate()
            .find(|(i, n)| names[..*i].contains(n))
        {
            return Err(DefinitionError::BadArgName {
                probe: probe.name.clone(),
                index: i,
                name: name.clone(),
                reason: "is also the name of an earlier argument".into(),
            });
        }
    }
    Ok(())
}

fn check_name(kind: NameKind, name: &str, max: usize) -> Result<(), DefinitionError> {
    let bad = |reason| {
        Err(DefinitionError::BadName {
            kind,
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > max {
        return Err(DefinitionError::NameTooLong {
            kind,
            name: name.to_string(),
            max,
        });
    }
    if name.contains('\0') {
        return bad("contains a NUL byte");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains white space or a control character");
    }
    if name.chars().any(is_invisible) {
        return bad(INVISIBLE);
    }
    if name.chars().any(is_private_or_noncharacter) {
        return bad(
            "contains a private-use or noncharacter code point, which shows as nothing or anything",
        );
    }
    Ok(())
}

/// Why a name with an invisible character is refused.
pub const INVISIBLE: &str = "contains an invisible or bidirectional formatting character \
    (such as U+200B, U+202E or U+FEFF), with which one name can pass for another in a listing";

/// Characters that show as nothing, or that reorder the text around them:
/// Unicode's Default_Ignorable_Code_Point (zero-width characters, the
/// bidirectional controls, variation selectors, tags, fillers) and the other
/// format characters (general category Cf).
fn is_invisible(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// Private-use code points (whatever a font draws) and noncharacters.
fn is_private_or_noncharacter(c: char) -> bool {
    let c = c as u32;
    matches!(c, 0xE000..=0xF8FF | 0xF0000.. | 0xFDD0..=0xFDEF) || c & 0xFFFE == 0xFFFE
}

/// Which name a [`DefinitionError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Provider,
    Module,
    Probe,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Provider => "provider name",
            NameKind::Module => "module name",
            NameKind::Probe => "probe name",
        })
    }
}

/// Why a definition was refused. Nothing is written for a refused definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefinitionError {
    BadName {
        kind: NameKind,
        name: String,
        reason: &'static str,
    },
    NameTooLong {
        kind: NameKind,
        name: String,
        max: usize,
    },
    DuplicateProbe(String),
    TooManyArgs {
        probe: String,
        count: usize,
    },
    UnknownType(String),
    NoProbes(String),
    /// A probe's declared types are not its argument types.
    DeclaredMismatch(String),
    /// A probe's argument names are not one per argument.
    ArgNameCount {
        probe: String,
        names: usize,
        args: usize,
    },
    /// An argument name that is not a C identifier of 1 to 64 bytes, or a
    /// repeated one.
    BadArgName {
        probe: String,
        index: usize,
        name: String,
        reason: String,
    },
}

/// A name in a message: quoted and escaped like `{:?}`, and so are the
/// invisible characters that `{:?}` leaves as they are (U+3164, U+E0041...),
/// so that a message shows what is wrong with a name.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            if is_invisible(c) || is_private_or_noncharacter(c) {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else {
                write!(f, "{}", c.escape_debug())?;
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DefinitionError::BadName { kind, name, reason } => {
                write!(f, "{kind} {} {reason}", Quoted(name))
            }
            DefinitionError::NameTooLong { kind, name, max } => write!(
                f,
                "{kind} {} is {} bytes long; at most {max} are allowed",
                Quoted(name),
                name.len()
            ),
            DefinitionError::DuplicateProbe(name) => {
                write!(f, "probe {} is defined twice", Quoted(name))
            }
            DefinitionError::TooManyArgs { probe, count } => write!(
                f,
                "probe {} has {count} arguments; at most {MAX_ARGS} are allowed",
                Quoted(probe)
            ),
            DefinitionError::UnknownType(t) => write!(
                f,
                "unknown argument type {} (expected int8_t..int64_t, uint8_t..uint64_t, int or char *)",
                Quoted(t)
            ),
            DefinitionError::NoProbes(provider) => {
                write!(f, "provider {} has no probes", Quoted(provider))
            }
            DefinitionError::DeclaredMismatch(probe) => write!(
                f,
                "probe {}: its declared types are not its argument types",
                Quoted(probe)
            ),
            DefinitionError::ArgNameCount { probe, names, args } => write!(
                f,
                "probe {} has {args} arguments but {names} argument names",
                Quoted(probe)
            ),
            DefinitionError::BadArgName {
                probe,
                index,
                name,
                reason,
            } => write!(
                f,
                "probe {}: the name {} of argument {index} {reason}",
                Quoted(probe),
                Quoted(name)
            ),
        }
    }
}

impl std::error::Error for DefinitionError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(provider: &str, module: &str, probe: &str) -> Option<DefinitionError> {
        let mut def = ProviderDef::new(provider, module);
        def.probes.push(ProbeDef::new(probe, vec![ArgType::I64]));
        def.validate().err()
    }

    #[test]
    fn invisible_and_bidirectional_characters_are_refused_in_every_name() {
        let invisible = [
            "\u{200B}",  // zero width space
            "\u{200D}",  // zero width joiner
            "\u{200E}",  // left-to-right mark
            "\u{202E}",  // right-to-left override
            "\u{2066}",  // left-to-right isolate
            "\u{2069}",  // pop directional isolate
            "\u{2060}",  // word joiner
            "\u{FEFF}",  // byte order mark
            "\u{00AD}",  // soft hyphen
            "\u{061C}",  // arabic letter mark
            "\u{180E}",  // mongolian vowel separator
            "\u{FE0F}",  // variation selector
            "\u{3164}",  // hangul filler
            "\u{E0041}", // tag latin capital a
        ];
        for c in invisible {
            for (i, name) in [format!("log{c}-info"), format!("{c}x"), format!("x{c}")]
                .iter()
                .enumerate()
            {
                let cases = [
                    (NameKind::Provider, refusal(name, "m", "p")),
                    (NameKind::Module, refusal("p", name, "p")),
                    (NameKind::Probe, refusal("p", "m", name)),
                ];
                for (kind, got) in cases {
                    assert_eq!(
                        got,
                        Some(DefinitionError::BadName {
                            kind,
                            name: name.clone(),
                            reason: INVISIBLE
                        }),
                        "{kind} #{i} with U+{:04X}",
                        c.chars().next().unwrap() as u32
                    );
                }
            }
        }
        // The message escapes the character, so that it shows.
        for c in invisible {
            let message = refusal(&format!("bun{c}yan"), "m", "p")
                .unwrap()
                .to_string();
            let code = c.chars().next().unwrap() as u32;
            assert!(
                message.contains(&format!(r"bun\u{{{code:x}}}yan")),
                "{message}"
            );
            assert!(!message.contains(c), "{message}");
        }
    }

    #[test]
    fn private_use_and_noncharacters_are_refused() {
        for c in [
            '\u{E000}',
            '\u{F8FF}',
            '\u{F0000}',
            '\u{10FFFD}',
            '\u{FDD0}',
            '\u{FFFE}',
            '\u{1FFFF}',
        ] {
            let err = refusal(&format!("a{c}"), "m", "p").expect("refused");
            assert!(
                matches!(&err, DefinitionError::BadName { reason, .. } if reason.contains("private-use")),
                "U+{:04X}: {err}",
                c as u32
            );
        }
    }

    #[test]
    fn the_names_applications_use_are_accepted() {
        for (provider, module, probe) in [
            ("bunyan", "bunyan", "log-info"),
            ("restify", "restify", "route-start"),
            ("restify", "restify", "handler-0"),
            ("nodeapp", "mod-0x1234", "__proto__"),
            ("my_app", "libp.so.1", "request.done"),
            ("café", "módulo", "über-probe"),
            ("应用", "模块", "探针"),
            ("a$b", "m", "x:y"),
        ] {
            assert_eq!(
                refusal(provider, module, probe),
                None,
                "{provider} {module} {probe}"
            );
        }
    }
}
