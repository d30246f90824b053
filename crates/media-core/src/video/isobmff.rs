//! Walking ISO BMFF (MP4) boxes: one level at a time, every box checked to
//! lie inside its parent. The transcoder patches its chunks' fragments with
//! it, and the codec strings are read from init segments with it. Pure.

/// One ISO BMFF box: (type, start of the box, start of its body, end).
pub type BoxAt = ([u8; 4], usize, usize, usize);

/// The ISO BMFF boxes in `bytes[from..to]`.
pub fn boxes(bytes: &[u8], from: usize, to: usize) -> Result<Vec<BoxAt>, String> {
    let mut out = Vec::new();
    let mut at = from;
    while at + 8 <= to {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().expect("4 bytes");
        let (body, end) = match size {
            1 if at + 16 <= to => {
                let large = u64::from_be_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes"));
                (at + 16, at.saturating_add(usize::try_from(large).map_err(|_| "a box too large")?))
            }
            0 => (at + 8, to),
            n => (at + 8, at + n),
        };
        if end < body || end > to {
            return Err(format!("the {} box at {at} overruns its parent", String::from_utf8_lossy(&kind)));
        }
        out.push((kind, at, body, end));
        at = end;
    }
    Ok(out)
}
