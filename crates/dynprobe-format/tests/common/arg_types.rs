//! Every argument type a definition may use, for tests that cover them all.

use dynprobe_format::ArgType;

pub const ALL_TYPES: [ArgType; 9] = [
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
