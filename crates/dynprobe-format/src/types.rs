//! Argument types and the rules for argument names: what a probe's
//! arguments may be, shared by the definition, the image writer and the
//! reader. A leaf: it uses nothing else of this crate.
//!
//! The JavaScript package spells the same table in `lib/arg-types.json`
//! (type names, sizes, signs, limits, the argument-name rules); the addon
//! exports this side (`formatTable()`) and `test/arg-types.test.js` checks
//! that the two, and `index.d.ts`, agree.

use std::fmt;

/// The most arguments a probe may take (the DTrace limit).
pub const MAX_ARGS: usize = 32;
/// The longest argument name (DTrace keeps 64-byte names too).
pub const MAX_ARG_NAME_LEN: usize = 64;

/// The type of one probe argument, as a tracer will read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArgType {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    /// A pointer to NUL-terminated bytes.
    Str,
}

impl ArgType {
    /// Every argument type, in a stable order.
    pub const ALL: [ArgType; 9] = [
        ArgType::I8,
        ArgType::U8,
        ArgType::I16,
        ArgType::U16,
        ArgType::I32,
        ArgType::U32,
        ArgType::I64,
        ArgType::U64,
        ArgType::Str,
    ];

    /// Size in bytes of the value a tracer reads.
    pub fn size(self) -> u8 {
        match self {
            ArgType::I8 | ArgType::U8 => 1,
            ArgType::I16 | ArgType::U16 => 2,
            ArgType::I32 | ArgType::U32 => 4,
            ArgType::I64 | ArgType::U64 | ArgType::Str => 8,
        }
    }

    pub fn is_signed(self) -> bool {
        matches!(
            self,
            ArgType::I8 | ArgType::I16 | ArgType::I32 | ArgType::I64
        )
    }

    /// The C spelling, as `dynprobe list` and error messages show it.
    pub fn c_name(self) -> &'static str {
        match self {
            ArgType::I8 => "int8_t",
            ArgType::U8 => "uint8_t",
            ArgType::I16 => "int16_t",
            ArgType::U16 => "uint16_t",
            ArgType::I32 => "int32_t",
            ArgType::U32 => "uint32_t",
            ArgType::I64 => "int64_t",
            ArgType::U64 => "uint64_t",
            ArgType::Str => "char *",
        }
    }

    /// The 64-bit register value a C caller would pass for `bits` converted
    /// to this type: truncated to its size, then sign or zero extended. Every
    /// tracer then reads the same value, whether it honours the note's size or
    /// reads the whole register.
    #[inline]
    pub fn normalize(self, bits: u64) -> u64 {
        match self {
            ArgType::I8 => bits as i8 as i64 as u64,
            ArgType::U8 => bits as u8 as u64,
            ArgType::I16 => bits as i16 as i64 as u64,
            ArgType::U16 => bits as u16 as u64,
            ArgType::I32 => bits as i32 as i64 as u64,
            ArgType::U32 => bits as u32 as u64,
            ArgType::I64 | ArgType::U64 | ArgType::Str => bits,
        }
    }

    /// A stable byte used when hashing a definition.
    pub(crate) fn code(self) -> u8 {
        match self {
            ArgType::I8 => 1,
            ArgType::U8 => 2,
            ArgType::I16 => 3,
            ArgType::U16 => 4,
            ArgType::I32 => 5,
            ArgType::U32 => 6,
            ArgType::I64 => 7,
            ArgType::U64 => 8,
            ArgType::Str => 9,
        }
    }
}

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

/// Why `name` cannot name an argument, or `None`: a C identifier
/// (`[A-Za-z_][A-Za-z0-9_]*`) of 1 to [`MAX_ARG_NAME_LEN`] bytes that is not
/// one of the tracers' own names for arguments ([`is_tracer_arg_word`]).
pub fn check_arg_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Some("is empty".into());
    }
    if bytes.len() > MAX_ARG_NAME_LEN {
        return Some(format!(
            "is {} bytes long; at most {MAX_ARG_NAME_LEN} are allowed",
            bytes.len()
        ));
    }
    let ident = (bytes[0].is_ascii_alphabetic() || bytes[0] == b'_')
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    if !ident {
        return Some(
            "is not a C identifier (letters, digits and _, not starting with a digit)".into(),
        );
    }
    if is_tracer_arg_word(name) {
        return Some(
            "is a tracer's own name for an argument (arg0, arg1, ..., sarg0, ..., args), \
             which a listing would show in the wrong place"
                .into(),
        );
    }
    None
}

/// The names bpftrace and DTrace give a probe's arguments by position:
/// `arg0`, `arg1`, ... (both), `sarg0`, ... (bpftrace's stack arguments)
/// and `args` (DTrace's typed `args[]`, bpftrace's `args`). An argument
/// called `arg1` in `req(char *arg1, int32_t arg0)` would be read as the
/// tracer's `arg1`, which it is not.
pub fn is_tracer_arg_word(name: &str) -> bool {
    let numbered = |prefix: &str| {
        name.strip_prefix(prefix)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    name == "args" || numbered("arg") || numbered("sarg")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let codes: std::collections::HashSet<u8> = ArgType::ALL.iter().map(|t| t.code()).collect();
        assert_eq!(codes.len(), ArgType::ALL.len());
    }

    #[test]
    fn arg_names_are_c_identifiers() {
        for good in [
            "a",
            "_",
            "url",
            "request_struct",
            "A9_z",
            &"n".repeat(64),
            "arg",
            "argv",
            "arg_1",
            "Arg1",
            "sarg",
            "args2",
            "pid",
            "retval",
        ] {
            assert_eq!(check_arg_name(good), None, "{good:?}");
        }
        for (bad, why) in [
            ("", "is empty"),
            ("9lives", "not a C identifier"),
            ("has space", "not a C identifier"),
            ("dash-ed", "not a C identifier"),
            ("\u{e9}t\u{e9}", "not a C identifier"),
            ("a\0b", "not a C identifier"),
            ("x\x1b[2J", "not a C identifier"),
            (&"n".repeat(65), "65 bytes long"),
        ] {
            let got = check_arg_name(bad).unwrap_or_default();
            assert!(got.contains(why), "{bad:?}: {got}");
        }
    }

    #[test]
    fn the_tracers_own_argument_names_are_refused() {
        for word in [
            "arg0", "arg1", "arg9", "arg12", "arg31", "arg007", "sarg0", "sarg3", "args",
        ] {
            let got = check_arg_name(word).unwrap_or_default();
            assert!(
                got.contains("a tracer's own name for an argument"),
                "{word:?}: {got}"
            );
        }
    }
}
