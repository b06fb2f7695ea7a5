//! The declared argument types of each probe, recorded in the image.
//!
//! A stapsdt note records only an argument's size and sign, so a reader
//! cannot tell a string (`char *`, and `json`, which travels as one) from a
//! `uint64_t`, nor `int` from `int64_t`. Each generated image also carries,
//! in a note section of its own (`.note.dynprobe`, not loaded, like
//! `.note.stapsdt`), one note per probe with the types as the API named them:
//!
//! ```text
//! owner "dynprobe", type 1 (NT_DYNPROBE_DECLARED)
//! descriptor: provider NUL probe NUL type NUL type NUL ...
//! ```
//!
//! with exactly the names [`DeclaredType::name`] gives (`int`, `char *`,
//! `json`, `uint64_t`, ...). Tracers read only `.note.stapsdt` and skip the
//! section; `readelf -n` shows it as a note of an unknown owner.
//!
//! Read back, a record is untrusted input like the rest of the file: it is
//! used only when every name is one of [`DeclaredType::ALL`] and each type
//! has the size and sign its stapsdt note records ([`check_against_note`]).

use std::borrow::Cow;
use std::fmt;

use crate::read::{NoteArg, MAX_NAME_LEN, MAX_NOTE_ARGS};
use crate::ArgType;

/// The note section that holds the records.
pub const SECTION: &[u8] = b".note.dynprobe";
/// The notes' owner name.
pub const OWNER: &[u8] = b"dynprobe";
/// The note type of a declared-types record (this encoding).
pub const NT_DYNPROBE_DECLARED: u32 = 1;
/// The longest type name a record may hold (the longest real ones,
/// `uint64_t` and the like, have 8 bytes).
pub const MAX_TYPE_NAME_LEN: usize = 16;

/// An argument type as the API declares it. `int` and `int64_t` are the
/// same 64-bit signed value to a tracer, and `json` and `char *` the same
/// string pointer; the declared name says how to show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeclaredType {
    /// `int`: a signed 64-bit value.
    Int,
    /// `json`: `JSON.stringify` of the value, as a string.
    Json,
    /// An exact C type: `int8_t` ... `uint64_t`, or `char *`.
    C(ArgType),
}

impl DeclaredType {
    /// Every declared type, in a stable order.
    pub const ALL: [DeclaredType; 11] = [
        DeclaredType::Int,
        DeclaredType::C(ArgType::I8),
        DeclaredType::C(ArgType::U8),
        DeclaredType::C(ArgType::I16),
        DeclaredType::C(ArgType::U16),
        DeclaredType::C(ArgType::I32),
        DeclaredType::C(ArgType::U32),
        DeclaredType::C(ArgType::I64),
        DeclaredType::C(ArgType::U64),
        DeclaredType::C(ArgType::Str),
        DeclaredType::Json,
    ];

    /// The name as the API spells it and the record holds it.
    pub fn name(self) -> &'static str {
        match self {
            DeclaredType::Int => "int",
            DeclaredType::Json => "json",
            DeclaredType::C(t) => t.c_name(),
        }
    }

    /// Exactly one of the names [`DeclaredType::name`] gives; nothing looser
    /// (a record read from a file is untrusted).
    pub fn from_name(name: &str) -> Option<DeclaredType> {
        DeclaredType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What a tracer reads: its size and sign.
    pub fn arg_type(self) -> ArgType {
        match self {
            DeclaredType::Int => ArgType::I64,
            DeclaredType::Json => ArgType::Str,
            DeclaredType::C(t) => t,
        }
    }

    /// A stable byte for the build-id hash.
    pub(crate) fn code(self) -> u8 {
        match self {
            DeclaredType::Int => 1,
            DeclaredType::Json => 2,
            DeclaredType::C(t) => 16 + t.code(),
        }
    }
}

impl From<ArgType> for DeclaredType {
    fn from(t: ArgType) -> DeclaredType {
        DeclaredType::C(t)
    }
}

impl fmt::Display for DeclaredType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a probe's declared types are, as read back from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// No record for this probe (a `sys/sdt.h` object, an older dynprobe).
    Absent,
    /// The types, one per argument of the stapsdt note, each consistent
    /// with it.
    Types(Vec<DeclaredType>),
    /// A record that cannot be used, and why (it is then as if absent).
    Unusable(String),
}

impl Declared {
    /// The types, when a usable record exists.
    pub fn types(&self) -> Option<&[DeclaredType]> {
        match self {
            Declared::Types(t) => Some(t),
            _ => None,
        }
    }
}

/// The descriptor of one probe's record.
pub(crate) fn encode(provider: &str, probe: &str, types: &[DeclaredType]) -> Vec<u8> {
    let mut desc = Vec::new();
    for s in [provider, probe]
        .into_iter()
        .chain(types.iter().map(|t| t.name()))
    {
        desc.extend_from_slice(s.as_bytes());
        desc.push(0);
    }
    desc
}

/// One record as read: whose it is, and its types or why they are unusable.
pub(crate) struct Record<'a> {
    pub provider: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub types: Result<Vec<DeclaredType>, String>,
}

impl Record<'_> {
    /// What it holds in memory, as [`crate::read::MAX_DECODED_BYTES`] counts.
    pub fn footprint(&self) -> usize {
        let owned = |s: &Cow<'_, str>| match s {
            Cow::Owned(s) => s.len(),
            Cow::Borrowed(_) => 0,
        };
        std::mem::size_of::<Self>()
            + owned(&self.provider)
            + owned(&self.name)
            + match &self.types {
                Ok(t) => t.len() * std::mem::size_of::<DeclaredType>(),
                Err(why) => why.len(),
            }
    }
}

/// Decodes a record's descriptor. `None` when it names no probe this reader
/// could have read (no NUL within [`MAX_NAME_LEN`] bytes): it is skipped.
/// The work is bounded by the limits, whatever the descriptor's length.
pub(crate) fn decode(desc: &[u8]) -> Option<Record<'_>> {
    let mut rest = desc;
    let mut take = |max: usize| -> Result<Option<&[u8]>, ()> {
        if rest.is_empty() {
            return Ok(None);
        }
        let window = &rest[..rest.len().min(max + 1)];
        match window.iter().position(|&b| b == 0) {
            Some(end) => {
                let s = &rest[..end];
                rest = &rest[end + 1..];
                Ok(Some(s))
            }
            None if rest.len() > max => Err(()),
            None => {
                let s = rest;
                rest = &[];
                Ok(Some(s))
            }
        }
    };
    let provider = take(MAX_NAME_LEN).ok()??;
    let name = take(MAX_NAME_LEN).ok()??;
    let mut types = Vec::new();
    let types = loop {
        match take(MAX_TYPE_NAME_LEN) {
            Ok(None) => break Ok(types),
            Err(()) => break Err(format!(
                "its declared-types record has a type name longer than {MAX_TYPE_NAME_LEN} bytes"
            )),
            Ok(Some(_)) if types.len() == MAX_NOTE_ARGS => {
                break Err(format!(
                    "its declared-types record lists more than {MAX_NOTE_ARGS} types"
                ))
            }
            Ok(Some(bytes)) => {
                match std::str::from_utf8(bytes)
                    .ok()
                    .and_then(DeclaredType::from_name)
                {
                    Some(t) => types.push(t),
                    None => {
                        break Err(format!(
                            "its declared-types record names an unknown type {:?}",
                            String::from_utf8_lossy(bytes)
                        ))
                    }
                }
            }
        }
    };
    Some(Record {
        provider: String::from_utf8_lossy(provider),
        name: String::from_utf8_lossy(name),
        types,
    })
}

/// The record's types if they fit the probe's stapsdt arguments: as many,
/// and each of the size and sign the note records.
pub(crate) fn check_against_note(types: &[DeclaredType], args: &[NoteArg]) -> Declared {
    if types.len() != args.len() {
        return Declared::Unusable(format!(
            "its declared-types record lists {} types for the {} arguments of its note",
            types.len(),
            args.len()
        ));
    }
    for (i, (t, arg)) in types.iter().zip(args).enumerate() {
        let a = t.arg_type();
        if arg.float || arg.size != a.size() || arg.signed != a.is_signed() {
            // The token as the note has it, cut: it may be 8 KiB long.
            let spec: String = arg.spec.chars().take(64).collect();
            return Declared::Unusable(format!(
                "its declared-types record says {t} for argument {i}, which its note records as {spec:?}"
            ));
        }
    }
    Declared::Types(types.to_vec())
}

/// Why a probe has no usable record when more than one names it.
pub(crate) fn duplicated() -> String {
    "it has more than one declared-types record".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::parse_arg_spec;

    #[test]
    fn names_are_exact_and_round_trip() {
        for t in DeclaredType::ALL {
            assert_eq!(DeclaredType::from_name(t.name()), Some(t));
        }
        for loose in [
            "char*",
            "string",
            " int",
            "int ",
            "JSON",
            "int64",
            "",
            "uint64_t\0",
        ] {
            assert_eq!(DeclaredType::from_name(loose), None, "{loose:?}");
        }
        let codes: std::collections::HashSet<u8> =
            DeclaredType::ALL.iter().map(|t| t.code()).collect();
        assert_eq!(codes.len(), DeclaredType::ALL.len());
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let types = [
            DeclaredType::Int,
            DeclaredType::C(ArgType::Str),
            DeclaredType::Json,
        ];
        let desc = encode("prov", "probe-1", &types);
        let record = decode(&desc).unwrap();
        assert_eq!((&*record.provider, &*record.name), ("prov", "probe-1"));
        assert_eq!(record.types, Ok(types.to_vec()));
        let none = encode("p", "q", &[]);
        assert_eq!(decode(&none).unwrap().types, Ok(vec![]));
    }

    #[test]
    fn bad_records_are_unusable_or_skipped() {
        let unusable = |desc: &[u8]| decode(desc).unwrap().types.unwrap_err();
        assert!(unusable(b"p\0q\0int\0float\0").contains("unknown type \"float\""));
        assert!(unusable(b"p\0q\0\x1b[2J\0").contains(r#""\u{1b}[2J""#));
        assert!(unusable(b"p\0q\0uint64_t_and_more_bytes\0").contains("longer than 16"));
        let many = format!("p\0q\0{}", "int\0".repeat(MAX_NOTE_ARGS + 1));
        assert!(unusable(many.as_bytes()).contains("more than 64 types"));
        // Exactly at the limit is fine.
        let most = format!("p\0q\0{}", "int\0".repeat(MAX_NOTE_ARGS));
        assert_eq!(decode(most.as_bytes()).unwrap().types.unwrap().len(), 64);
        // No probe to attribute it to.
        assert!(decode(b"").is_none());
        assert!(decode(b"p").is_none());
        assert!(decode(&vec![b'n'; MAX_NAME_LEN + 1]).is_none());
    }

    #[test]
    fn types_must_fit_the_note() {
        use DeclaredType::*;
        let args = parse_arg_spec("-8@%rdi 8@%rsi 8@%rdx -4@%ecx");
        let fits = [Int, C(ArgType::Str), Json, C(ArgType::I32)];
        assert_eq!(
            check_against_note(&fits, &args),
            Declared::Types(fits.to_vec())
        );
        let u64s = [
            C(ArgType::I64),
            C(ArgType::U64),
            C(ArgType::U64),
            C(ArgType::I32),
        ];
        assert!(check_against_note(&u64s, &args).types().is_some());
        let Declared::Unusable(why) = check_against_note(&fits[..3], &args) else {
            panic!()
        };
        assert!(why.contains("3 types for the 4 arguments"), "{why}");
        let wrong = [Int, C(ArgType::Str), Json, C(ArgType::Str)];
        let Declared::Unusable(why) = check_against_note(&wrong, &args) else {
            panic!()
        };
        assert!(
            why.contains("char * for argument 3") && why.contains("-4@%ecx"),
            "{why}"
        );
        let floats = parse_arg_spec("8f@%xmm0");
        assert!(check_against_note(&[Int], &floats).types().is_none());
    }
}
