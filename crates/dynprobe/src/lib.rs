pub use dynprobe_format::*;
