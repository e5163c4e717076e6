//! G.711 decoding (ITU-T G.711, the codecs a PSTN call's audio usually arrives in).
//!
//! Computed rather than looked up: both laws are a sign bit, a 3-bit segment (exponent) and a
//! 4-bit step (mantissa), so the decode is a few shifts; no table to keep in sync with the spec.

/// Decodes one μ-law (PCMU) byte to a linear 16-bit sample (range ±32124).
///
/// μ-law bytes are stored inverted; the segment's linear value is `((step << 3) + 132) << segment`
/// minus the 132 bias that makes the curve pass through zero.
pub fn ulaw_to_linear(b: u8) -> i16 {
    let u = !b;
    let segment = (u >> 4) & 0x07;
    let step = i32::from(u & 0x0F);
    let magnitude = (((step << 3) + 0x84) << segment) - 0x84;
    let value = if u & 0x80 != 0 { -magnitude } else { magnitude };
    value as i16
}

/// Decodes one A-law (PCMA) byte to a linear 16-bit sample (range ±32256).
///
/// A-law bytes have their even bits inverted (`^ 0x55`); segment 0 is linear, the others double
/// each time. Unlike μ-law, a set sign bit means positive.
pub fn alaw_to_linear(b: u8) -> i16 {
    let a = b ^ 0x55;
    let segment = (a >> 4) & 0x07;
    let step = i32::from(a & 0x0F);
    let mut magnitude = (step << 4) + 8;
    if segment != 0 {
        magnitude = (magnitude + 0x100) << (segment - 1);
    }
    let value = if a & 0x80 != 0 { magnitude } else { -magnitude };
    value as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    /// Flipping the sign bit negates the sample, for every byte.
    #[test]
    fn both_laws_are_symmetric() {
        for b in 0..=255u8 {
            assert_eq!(
                ulaw_to_linear(b),
                -ulaw_to_linear(b ^ 0x80),
                "ulaw {b:#04x}"
            );
            assert_eq!(
                alaw_to_linear(b),
                -alaw_to_linear(b ^ 0x80),
                "alaw {b:#04x}"
            );
        }
    }

    /// The 128 positive codes of each law are 128 distinct, ordered levels: a wrong shift or bias
    /// breaks the order at a segment boundary.
    #[test]
    fn positive_codes_are_strictly_monotonic() {
        // μ-law: 0x80 is the loudest positive code, 0xFF zero.
        let ulaw: Vec<i16> = (0x80..=0xFFu8).map(ulaw_to_linear).collect();
        assert!(ulaw.windows(2).all(|w| w[0] > w[1]));
        // A-law: order by the de-inverted code.
        let alaw: Vec<i16> = (0x80..=0xFFu8).map(|c| alaw_to_linear(c ^ 0x55)).collect();
        assert!(alaw.windows(2).all(|w| w[0] < w[1]));
    }
}
