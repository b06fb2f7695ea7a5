//! What differs between architectures: machine code of a stub, where each
//! argument is at the probe site, and how a stapsdt note spells that.

use crate::types::ArgType;
use object::elf;

/// An architecture the generator emits images for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Aarch64,
}

/// The no-op instruction at a probe site. On x86-64 the kernel can replace a
/// uprobe's int3 trap with a cheaper call, but only on the NOP form it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteKind {
    /// `nopl 0x0(%rax,%rax,1)`: optimised by Linux 6.18 and its peers.
    Nop5,
    /// `cs nopw 0x0(%rax,%rax,1)`: optimised by later kernels.
    Nop10,
    /// The 4-byte `nop` of aarch64.
    A64Nop,
}

/// Everything about the target machine that changes the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    arch: Arch,
    site: SiteKind,
}

impl Target {
    pub const fn x86_64(site: SiteKind) -> Target {
        Target {
            arch: Arch::X86_64,
            site,
        }
    }

    pub const fn aarch64() -> Target {
        Target {
            arch: Arch::Aarch64,
            site: SiteKind::A64Nop,
        }
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn site(&self) -> SiteKind {
        self.site
    }

    /// A stable byte for hashing: renaming a variant must not change build-ids.
    pub(crate) fn code(&self) -> u8 {
        match self.site {
            SiteKind::Nop5 => 1,
            SiteKind::Nop10 => 2,
            SiteKind::A64Nop => 3,
        }
    }

    /// Only the constructors make targets, and they pair sites and arches.
    pub(crate) fn is_consistent(&self) -> bool {
        matches!(
            (self.arch, self.site),
            (Arch::X86_64, SiteKind::Nop5 | SiteKind::Nop10) | (Arch::Aarch64, SiteKind::A64Nop)
        )
    }

    pub(crate) fn machine(&self) -> elf::Machine {
        match self.arch {
            Arch::X86_64 => elf::EM_X86_64,
            Arch::Aarch64 => elf::EM_AARCH64,
        }
    }

    /// Largest page size the architecture's kernels use: segments keep their
    /// file offset and address congruent modulo this.
    pub(crate) fn max_page_size(&self) -> u64 {
        match self.arch {
            Arch::X86_64 => 0x1000,
            Arch::Aarch64 => 0x10000,
        }
    }

    /// Each stub starts on this boundary, so a probe site never crosses a page.
    pub(crate) const STUB_ALIGN: u64 = 16;

    /// The bytes of one stub: the probe site (a NOP) followed by a return,
    /// padded with trap instructions up to [`Self::STUB_ALIGN`].
    pub(crate) fn stub(&self) -> [u8; 16] {
        let (body, fill): (&[u8], &[u8]) = match self.site {
            SiteKind::Nop5 => (&[0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3], &[0xcc]),
            SiteKind::Nop10 => (
                &[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0, 0xc3],
                &[0xcc],
            ),
            // nop; ret; then `brk #0x3e8` words.
            SiteKind::A64Nop => (
                &[0x1f, 0x20, 0x03, 0xd5, 0xc0, 0x03, 0x5f, 0xd6],
                &[0x00, 0x7d, 0x20, 0xd4],
            ),
        };
        let mut stub = [0u8; 16];
        stub[..body.len()].copy_from_slice(body);
        for (i, byte) in stub[body.len()..].iter_mut().enumerate() {
            *byte = fill[i % fill.len()];
        }
        stub
    }

    /// The stapsdt argument string for a stub entered by a C call with these
    /// argument types: `SIZE@LOCATION` per argument, separated by spaces.
    pub(crate) fn arg_spec(&self, args: &[ArgType]) -> String {
        let mut spec = String::new();
        for (i, &ty) in args.iter().enumerate() {
            if i > 0 {
                spec.push(' ');
            }
            let size = i32::from(ty.size());
            let size = if ty.is_signed() { -size } else { size };
            spec.push_str(&format!("{size}@{}", self.location(i, ty.size())));
        }
        spec
    }

    /// Where argument `index` of that size is at the stub's first instruction.
    fn location(&self, index: usize, size: u8) -> String {
        match self.arch {
            // SysV: six registers, then the stack above the return address.
            Arch::X86_64 => match X86_ARG_REGS.get(index) {
                Some(names) => format!("%{}", names[size.trailing_zeros() as usize]),
                None => format!("{}(%rsp)", 8 * (index - X86_ARG_REGS.len() + 1)),
            },
            // AAPCS64: x0..x7, then the stack, 8 bytes a slot, from sp.
            Arch::Aarch64 => {
                if index < 8 {
                    format!("x{index}")
                } else {
                    format!("[sp, {}]", 8 * (index - 8))
                }
            }
        }
    }
}

/// x86-64 argument registers, each by its 1, 2, 4 and 8-byte name, as
/// compilers write them in stapsdt notes.
const X86_ARG_REGS: [[&str; 4]; 6] = [
    ["dil", "di", "edi", "rdi"],
    ["sil", "si", "esi", "rsi"],
    ["dl", "dx", "edx", "rdx"],
    ["cl", "cx", "ecx", "rcx"],
    ["r8b", "r8w", "r8d", "r8"],
    ["r9b", "r9w", "r9d", "r9"],
];

#[cfg(test)]
mod tests {
    use super::*;
    use ArgType::*;

    #[test]
    fn x86_specs_name_sized_registers_then_stack_slots() {
        let t = Target::x86_64(SiteKind::Nop5);
        assert_eq!(
            t.arg_spec(&[I8, U16, I32, U64, Str, I64]),
            "-1@%dil 2@%si -4@%edx 8@%rcx 8@%r8 -8@%r9"
        );
        let eight = [U8; 8];
        assert_eq!(
            t.arg_spec(&eight),
            "1@%dil 1@%sil 1@%dl 1@%cl 1@%r8b 1@%r9b 1@8(%rsp) 1@16(%rsp)"
        );
    }

    #[test]
    fn aarch64_specs_use_x_registers_then_sp_offsets() {
        let t = Target::aarch64();
        let ten = [I32; 10];
        assert_eq!(
            t.arg_spec(&ten),
            "-4@x0 -4@x1 -4@x2 -4@x3 -4@x4 -4@x5 -4@x6 -4@x7 -4@[sp, 0] -4@[sp, 8]"
        );
    }

    #[test]
    fn stubs_fit_their_slot_and_return() {
        let nop5 = Target::x86_64(SiteKind::Nop5).stub();
        assert_eq!(&nop5[..6], &[0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3]);
        let nop10 = Target::x86_64(SiteKind::Nop10).stub();
        assert_eq!(nop10[10], 0xc3);
        assert!(nop10[11..].iter().all(|&b| b == 0xcc));
    }
}
