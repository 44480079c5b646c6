//! Lines of /proc/self/maps, read where the sandbox needs the kernel's own
//! view of its address space: the vDSO's pages, file mappings' offsets.

/// One mapping: `start-end perms offset dev inode [name]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapsLine<'a> {
    pub start: u64,
    pub end: u64,
    /// `rwxp`-style: `-` where a right is absent.
    pub perms: &'a str,
    pub offset: u64,
    pub inode: &'a str,
    /// A path or a name such as `[vdso]`; None for anonymous memory.
    pub name: Option<&'a str>,
}

impl MapsLine<'_> {
    /// PROT_READ | PROT_WRITE | PROT_EXEC as `perms` says.
    pub fn prot(&self) -> u32 {
        let rights = [libc::PROT_READ, libc::PROT_WRITE, libc::PROT_EXEC];
        self.perms
            .chars()
            .zip(rights)
            .filter(|&(c, _)| c != '-')
            .fold(0, |p, (_, bit)| p | bit as u32)
    }
}

/// Parses one line; None for a line not in that format.
pub fn parse_line(line: &str) -> Option<MapsLine<'_>> {
    let mut f = line.split_whitespace();
    let (range, perms, offset, _dev, inode) =
        (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    let (s, e) = range.split_once('-')?;
    Some(MapsLine {
        start: u64::from_str_radix(s, 16).ok()?,
        end: u64::from_str_radix(e, 16).ok()?,
        perms,
        offset: u64::from_str_radix(offset, 16).ok()?,
        inode,
        name: f.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernels_format() {
        let l =
            parse_line("7fbfe4a7d000-7fbfe4a7f000 r-xp 00001000 fd:00 123   /usr/bin/x").unwrap();
        assert_eq!(
            (l.start, l.end, l.offset),
            (0x7fbf_e4a7_d000, 0x7fbf_e4a7_f000, 0x1000)
        );
        assert_eq!((l.inode, l.name), ("123", Some("/usr/bin/x")));
        assert_eq!(l.prot(), (libc::PROT_READ | libc::PROT_EXEC) as u32);
        let anon = parse_line("1000-2000 rw-p 00000000 00:00 0").unwrap();
        assert_eq!(anon.name, None);
        assert_eq!(parse_line("garbage"), None);
    }
}
