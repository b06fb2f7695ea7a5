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
//! `json`, `uint64_t`, ...). A probe whose arguments were named has a record
//! of type 2 instead, the names after an empty field:
//!
//! ```text
//! owner "dynprobe", type 2 (NT_DYNPROBE_DECLARED_NAMED)
//! descriptor: provider NUL probe NUL type NUL ... NUL NUL name NUL name NUL ...
//! ```
//!
//! (a reader that knows only type 1 skips it, and lists the probe as one
//! without a record). Tracers read only `.note.stapsdt` and skip the
//! section; `readelf -n` shows it as a note of an unknown owner.
//!
//! Read back, a record is untrusted input like the rest of the file: it is
//! used only when every name is one of [`DeclaredType::ALL`] and each type
//! has the size and sign its stapsdt note records ([`check_against_note`]).
//! Its argument names are used only when they are as many as its types and
//! each is a C identifier of at most [`MAX_ARG_NAME_LEN`] bytes
//! ([`check_arg_name`]); otherwise the types still are, and the names are
//! [`ArgNames::Unusable`].

use std::borrow::Cow;

use crate::limits::{MAX_NAME_LEN, MAX_NOTE_ARGS};
pub use crate::types::{check_arg_name, DeclaredType, MAX_ARG_NAME_LEN};

/// The note section that holds the records.
pub const SECTION: &[u8] = b".note.dynprobe";
/// The notes' owner name.
pub const OWNER: &[u8] = b"dynprobe";
/// The note type of a declared-types record (this encoding).
pub const NT_DYNPROBE_DECLARED: u32 = 1;
/// The note type of a declared-types record that also names the arguments.
pub const NT_DYNPROBE_DECLARED_NAMED: u32 = 2;
/// The longest type name a record may hold (the longest real ones,
/// `uint64_t` and the like, have 8 bytes).
pub const MAX_TYPE_NAME_LEN: usize = 16;

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

/// What a probe's argument names are, as read back from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgNames {
    /// Its record names no arguments (or there is no usable record).
    Absent,
    /// One C identifier per argument.
    Names(Vec<String>),
    /// Its record names them in a way that cannot be used, and why (the
    /// types may still be used).
    Unusable(String),
}

impl ArgNames {
    /// The names, when a usable record gives them.
    pub fn names(&self) -> Option<&[String]> {
        match self {
            ArgNames::Names(n) => Some(n),
            _ => None,
        }
    }
}

/// The note type and descriptor of one probe's record: type 1 without
/// argument names, type 2 with them (as many as `types`, checked by the
/// definition).
pub(crate) fn encode(
    provider: &str,
    probe: &str,
    types: &[DeclaredType],
    names: Option<&[String]>,
) -> (u32, Vec<u8>) {
    let mut desc = Vec::new();
    let mut field = |s: &str| {
        desc.extend_from_slice(s.as_bytes());
        desc.push(0);
    };
    field(provider);
    field(probe);
    types.iter().for_each(|t| field(t.name()));
    match names {
        None => (NT_DYNPROBE_DECLARED, desc),
        Some(names) => {
            field("");
            names.iter().for_each(|n| field(n));
            (NT_DYNPROBE_DECLARED_NAMED, desc)
        }
    }
}

/// One record as read: whose it is, its types or why they are unusable,
/// and its argument names (type 2 records) or why they are unusable.
pub(crate) struct Record<'a> {
    pub provider: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub types: Result<Vec<DeclaredType>, String>,
    pub names: ArgNames,
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
            + match &self.names {
                ArgNames::Absent => 0,
                ArgNames::Names(n) => n
                    .iter()
                    .map(|s| std::mem::size_of::<String>() + s.len())
                    .sum(),
                ArgNames::Unusable(why) => why.len(),
            }
    }
}

/// Decodes a record's descriptor (`named`: a type 2 record, with argument
/// names). `None` when it names no probe this reader could have read (no NUL
/// within [`MAX_NAME_LEN`] bytes): it is skipped. The work is bounded by the
/// limits, whatever the descriptor's length.
pub(crate) fn decode(desc: &[u8], named: bool) -> Option<Record<'_>> {
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
            // The end of the types, in a record that names the arguments.
            Ok(Some(b"")) if named => break Ok(types),
            Err(()) => {
                break Err(format!(
                "its declared-types record has a type name longer than {MAX_TYPE_NAME_LEN} bytes"
            ))
            }
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
    let names = match &types {
        Ok(types) if named => decode_names(&mut take, types.len()),
        // Names after types that cannot be used are not read.
        _ => ArgNames::Absent,
    };
    Some(Record {
        provider: String::from_utf8_lossy(provider),
        name: String::from_utf8_lossy(name),
        types,
        names,
    })
}

/// The argument names after the types of a type 2 record: exactly `count`,
/// each a C identifier. Reads at most `count + 1` fields of at most
/// [`MAX_ARG_NAME_LEN`] + 1 bytes each.
fn decode_names<'a>(
    take: &mut impl FnMut(usize) -> Result<Option<&'a [u8]>, ()>,
    count: usize,
) -> ArgNames {
    let mut names = Vec::with_capacity(count);
    loop {
        match take(MAX_ARG_NAME_LEN) {
            Ok(None) if names.len() == count => return ArgNames::Names(names),
            Ok(None) => {
                return ArgNames::Unusable(format!(
                    "its declared-types record names {} arguments of {count}",
                    names.len()
                ))
            }
            Err(()) => {
                return ArgNames::Unusable(format!(
                    "its declared-types record has an argument name longer than {MAX_ARG_NAME_LEN} bytes"
                ))
            }
            Ok(Some(_)) if names.len() == count => {
                return ArgNames::Unusable(format!(
                    "its declared-types record names more arguments than its {count} types"
                ))
            }
            Ok(Some(bytes)) => {
                let text = String::from_utf8_lossy(bytes);
                if let Some(why) = check_arg_name(&text) {
                    return ArgNames::Unusable(format!(
                        "its declared-types record's argument name {text:?} {why}"
                    ));
                }
                if names.iter().any(|n| *n == text) {
                    return ArgNames::Unusable(format!(
                        "its declared-types record names two arguments {text:?}"
                    ));
                }
                names.push(text.into_owned());
            }
        }
    }
}

/// Why a probe has no usable record when more than one names it.
pub(crate) fn duplicated() -> String {
    "it has more than one declared-types record".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ArgType;

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let types = [
            DeclaredType::Int,
            DeclaredType::C(ArgType::Str),
            DeclaredType::Json,
        ];
        let (n_type, desc) = encode("prov", "probe-1", &types, None);
        assert_eq!(n_type, NT_DYNPROBE_DECLARED);
        let record = decode(&desc, false).unwrap();
        assert_eq!((&*record.provider, &*record.name), ("prov", "probe-1"));
        assert_eq!(record.types, Ok(types.to_vec()));
        assert_eq!(record.names, ArgNames::Absent);
        let (_, none) = encode("p", "q", &[], None);
        assert_eq!(decode(&none, false).unwrap().types, Ok(vec![]));

        let names = ["count".to_string(), "url".into(), "_body2".into()];
        let (n_type, desc) = encode("prov", "probe-1", &types, Some(&names));
        assert_eq!(n_type, NT_DYNPROBE_DECLARED_NAMED);
        assert_eq!(
            &desc[..],
            &b"prov\0probe-1\0int\0char *\0json\0\0count\0url\0_body2\0"[..]
        );
        let record = decode(&desc, true).unwrap();
        assert_eq!(record.types, Ok(types.to_vec()));
        assert_eq!(record.names, ArgNames::Names(names.to_vec()));
        let (_, none) = encode("p", "q", &[], Some(&[]));
        let record = decode(&none, true).unwrap();
        assert_eq!(
            (record.types, record.names),
            (Ok(vec![]), ArgNames::Names(vec![]))
        );
    }

    #[test]
    fn bad_names_leave_the_types_usable() {
        let names = |desc: &[u8]| {
            let record = decode(desc, true).unwrap();
            assert!(record.types.is_ok(), "{desc:?}");
            match record.names {
                ArgNames::Unusable(why) => why,
                other => panic!("{desc:?}: {other:?}"),
            }
        };
        assert!(names(b"p\0q\0int\0int\0\0a\0").contains("names 1 arguments of 2"));
        assert!(names(b"p\0q\0int\0").contains("names 0 arguments of 1"));
        assert!(names(b"p\0q\0int\0\0a\0b\0").contains("more arguments than its 1 types"));
        assert!(names(b"p\0q\0int\0\0\0").contains(r#"name "" is empty"#));
        assert!(names(b"p\0q\0int\0\0\x1b[2J\0").contains(r#""\u{1b}[2J" is not a C identifier"#));
        assert!(names(b"p\0q\0int\0\0\x31st\0").contains("not a C identifier"));
        assert!(names(b"p\0q\0int\0int\0\0a\0a\0").contains(r#"names two arguments "a""#));
        // A tracer's own word for an argument would show in the wrong place.
        for word in ["arg0", "arg1", "sarg2", "args"] {
            let desc = format!("p\0q\0int\0int\0\0url\0{word}\0");
            let why = names(desc.as_bytes());
            assert!(
                why.contains(&format!("{word:?} is a tracer's own name for an argument")),
                "{why}"
            );
        }
        let long = format!("p\0q\0int\0\0{}\0", "n".repeat(MAX_ARG_NAME_LEN + 1));
        assert!(names(long.as_bytes()).contains("longer than 64 bytes"));
        // Exactly at the limit is fine; invalid UTF-8 is refused, not mangled.
        let most = format!("p\0q\0int\0\0{}\0", "n".repeat(MAX_ARG_NAME_LEN));
        assert!(decode(most.as_bytes(), true)
            .unwrap()
            .names
            .names()
            .is_some());
        assert!(names(b"p\0q\0int\0\0a\xff\0").contains("not a C identifier"));
        // A type 1 record with the same bytes: the empty field is a bad type.
        assert!(decode(b"p\0q\0int\0\0a\0", false).unwrap().types.is_err());
        // Types that cannot be used: the names are not read at all.
        let record = decode(b"p\0q\0float\0\0a\0", true).unwrap();
        assert!(record.types.is_err());
        assert_eq!(record.names, ArgNames::Absent);
    }

    #[test]
    fn bad_records_are_unusable_or_skipped() {
        let unusable = |desc: &[u8]| decode(desc, false).unwrap().types.unwrap_err();
        assert!(unusable(b"p\0q\0int\0float\0").contains("unknown type \"float\""));
        assert!(unusable(b"p\0q\0\x1b[2J\0").contains(r#""\u{1b}[2J""#));
        assert!(unusable(b"p\0q\0uint64_t_and_more_bytes\0").contains("longer than 16"));
        let many = format!("p\0q\0{}", "int\0".repeat(MAX_NOTE_ARGS + 1));
        assert!(unusable(many.as_bytes()).contains("more than 64 types"));
        // Exactly at the limit is fine.
        let most = format!("p\0q\0{}", "int\0".repeat(MAX_NOTE_ARGS));
        assert_eq!(
            decode(most.as_bytes(), false).unwrap().types.unwrap().len(),
            64
        );
        // No probe to attribute it to.
        for named in [false, true] {
            assert!(decode(b"", named).is_none());
            assert!(decode(b"p", named).is_none());
            assert!(decode(&vec![b'n'; MAX_NAME_LEN + 1], named).is_none());
        }
    }
}
