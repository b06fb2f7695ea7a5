//! Writes the image of a small provider to a file, to inspect with readelf.
use dynprobe_format::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "probe.so".into());
    let arch = args.next().unwrap_or_else(|| "x86_64".into());
    let target = if arch == "aarch64" {
        Target::aarch64()
    } else {
        Target::x86_64(SiteKind::Nop5)
    };
    let mut def = ProviderDef::new("nodeapp", "nodeapp");
    def.add_probe(ProbeDef::new("probe1", vec![ArgType::I32, ArgType::Str]))
        .unwrap();
    def.add_probe(ProbeDef::new("probe-2", vec![ArgType::U8; 8]))
        .unwrap();
    let image = build_image(&def, target).unwrap();
    std::fs::write(&out, &image.bytes).unwrap();
}
