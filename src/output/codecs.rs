//! RFC 6381 `CODECS` values for the master playlist and the DASH manifest, read from the
//! headers an encoder emits (Annex B or OBU extradata, or the first packet) or from the ISO
//! BMFF configuration record that carries them (`avcC`, `hvcC`, `av1C`). Every parser
//! returns `None` on input it cannot read in full rather than guess a value.

use std::fmt::Write as _;

use crate::config::VideoCodec;

/// The RFC 6381 codec string of a video encoder's output, from its global header; `None`
/// when the header does not say.
pub(crate) fn video_codec_string(codec: VideoCodec, extradata: &[u8]) -> Option<String> {
    match codec {
        VideoCodec::H264 => h264(extradata),
        VideoCodec::Hevc => hevc(extradata),
        VideoCodec::Av1 => av1(extradata),
    }
}

/// AAC-LC: MPEG-4 audio (object type indication 0x40), audio object type 2 (RFC 6381 3.3).
pub(crate) const AAC_LC: &str = "mp4a.40.2";

/// `avc1.PPCCLL` (RFC 6381 3.3): profile_idc, the constraint-flags byte and level_idc of an
/// H.264 SPS (H.264 7.3.2.1.1), from the first SPS (NAL type 7) of an Annex B stream, or
/// from an `avcC` record (first byte 1), whose bytes 1..4 copy the same three values
/// (ISO/IEC 14496-15 5.3.3.1).
pub(crate) fn h264(data: &[u8]) -> Option<String> {
    let sps: [u8; 3] = if data.first() == Some(&1) {
        // A record shorter than its 7-byte header is truncated.
        bytes(data.get(..7)?, 1)?
    } else {
        let nal = nal_units(data)
            .into_iter()
            .find(|n| n.first().is_some_and(|h| h & 0x1f == 7))?;
        bytes(&rbsp(nal.get(1..)?), 0)?
    };
    let [profile, constraints, level] = sps;
    Some(format!("avc1.{profile:02X}{constraints:02X}{level:02X}"))
}

/// `hvc1.` string per ISO/IEC 14496-15 Annex E (E.3), from the general part of
/// profile_tier_level (H.265 7.3.3): read from the first base-layer SPS (NAL type 33),
/// else VPS (32), of an Annex B stream, or from an `hvcC` record (first byte 1), which
/// copies those 12 bytes at offset 1 (ISO/IEC 14496-15 8.3.3.1).
pub(crate) fn hevc(data: &[u8]) -> Option<String> {
    let ptl: [u8; 12] = if data.first() == Some(&1) {
        // A record shorter than its 23-byte fixed header is truncated.
        bytes(data.get(..23)?, 1)?
    } else {
        let nals = nal_units(data);
        // nuh_layer_id 0 only: an SPS of another layer may have no profile_tier_level.
        let find = |kind: u8| {
            nals.iter().find(
                |n| matches!(n, [h0, h1, ..] if h0 >> 1 == kind && h0 & 1 == 0 && h1 >> 3 == 0),
            )
        };
        let (nal, offset) = match find(33) {
            // sps_video_parameter_set_id, sps_max_sub_layers_minus1, temporal_id_nesting: 1 byte.
            Some(sps) => (sps, 1),
            // vps id, layer flags and counts, then vps_reserved_0xffff_16bits: 4 bytes.
            None => (find(32)?, 4),
        };
        let rbsp = rbsp(nal.get(2..)?);
        if offset == 4 && rbsp.get(2..4) != Some(&[0xff, 0xff][..]) {
            return None;
        }
        bytes(&rbsp, offset)?
    };
    let [first, c0, c1, c2, c3, ref constraints @ .., level] = ptl;
    let space = ["", "A", "B", "C"][usize::from(first >> 6)];
    let tier = if first & 0x20 != 0 { 'H' } else { 'L' };
    // Flag j is bit 31 - j of the field; the string puts flag j at bit j.
    let compat = u32::from_be_bytes([c0, c1, c2, c3]).reverse_bits();
    let mut s = format!("hvc1.{space}{}.{compat:X}.{tier}{level}", first & 0x1f);
    for b in trim_zeros(constraints) {
        let _ = write!(s, ".{b:X}");
    }
    Some(s)
}

/// `av01.P.LLT.DD` per the AV1 ISO media file format binding, "Codecs Parameter String":
/// seq_profile, `seq_level_idx[0]`, `seq_tier[0]` and BitDepth of the first sequence header
/// OBU (AV1 5.5), found in low-overhead OBUs with size fields (AV1 5.2) or in the
/// configOBUs of an `av1C` record (first byte 0x81). A record without a sequence header
/// falls back on its own copies of those fields (AV1-ISOBMFF 2.3.3).
pub(crate) fn av1(data: &[u8]) -> Option<String> {
    let (profile, level, tier, depth) = match *data {
        [0x81, b1, b2, _, ref obus @ ..] => match sequence_header_obu(obus) {
            Some(payload) => sequence_header(payload)?,
            None => {
                let profile = u32::from(b1 >> 5);
                let depth = bit_depth(profile, b2 & 0x40 != 0, b2 & 0x20 != 0);
                (profile, u32::from(b1 & 0x1f), u32::from(b2 >> 7), depth)
            }
        },
        _ => sequence_header(sequence_header_obu(data)?)?,
    };
    if profile > 2 {
        return None;
    }
    let tier = if tier == 1 { 'H' } else { 'M' };
    Some(format!("av01.{profile}.{level:02}{tier}.{depth:02}"))
}

/// The NAL units of an Annex B byte stream (H.264/H.265 Annex B), without start codes.
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let starts: Vec<usize> = (3..=data.len())
        .filter(|&i| data.get(i - 3..i) == Some(&[0, 0, 1][..]))
        .collect();
    let ends = starts.iter().skip(1).map(|&s| s - 3).chain([data.len()]);
    // The zero_byte of a 4-byte start code (or trailing_zero_8bits) is not the unit's: a NAL
    // unit ends in rbsp_trailing_bits, a nonzero byte.
    let unit =
        |(&start, end): (&usize, usize)| trim_zeros(data.get(start..end).unwrap_or_default());
    starts.iter().zip(ends).map(unit).collect()
}

/// `N` bytes of `data` from `at`.
fn bytes<const N: usize>(data: &[u8], at: usize) -> Option<[u8; N]> {
    data.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn trim_zeros(mut data: &[u8]) -> &[u8] {
    while let [rest @ .., 0] = data {
        data = rest;
    }
    data
}

/// Drops each emulation_prevention_three_byte (H.264 7.4.1, H.265 7.4.2): 0x03 after 00 00.
fn rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The payload of the first sequence header OBU (type 1), walking OBU headers (AV1 5.3.1).
fn sequence_header_obu(mut obus: &[u8]) -> Option<&[u8]> {
    while let Some((&header, rest)) = obus.split_first() {
        // obu_forbidden_bit: set means this is not an OBU.
        if header & 0x80 != 0 {
            return None;
        }
        // obu_extension_flag: one more header byte.
        let rest = rest.get(usize::from(header & 0x04 != 0)..)?;
        // Without obu_has_size_field the OBU runs to the end of the data.
        let (size, rest) = if header & 0x02 != 0 {
            leb128(rest)?
        } else {
            (rest.len(), rest)
        };
        let payload = rest.get(..size)?;
        if (header >> 3) & 0x0f == 1 {
            return Some(payload);
        }
        obus = rest.get(size..)?;
    }
    None
}

/// leb128() (AV1 4.10.5): the value and the bytes after it.
fn leb128(data: &[u8]) -> Option<(usize, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in data.iter().enumerate().take(8) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((usize::try_from(value).ok()?, data.get(i + 1..)?));
        }
    }
    None
}

/// sequence_header_obu() (AV1 5.5.1) up to color_config's bit depth (5.5.2):
/// (seq_profile, `seq_level_idx[0]`, `seq_tier[0]`, BitDepth).
fn sequence_header(payload: &[u8]) -> Option<(u32, u32, u32, u32)> {
    let mut r = Bits(payload, 0);
    let profile = r.f(3)?;
    r.skip(1)?; // still_picture
    let reduced = r.flag()?;
    let (level, tier) = if reduced {
        (r.f(5)?, 0)
    } else {
        let mut buffer_delay_bits = None;
        // timing_info() (5.5.3): display tick and time scale, maybe ticks per picture.
        if r.flag()? {
            r.skip(64)?;
            if r.flag()? {
                r.skip_uvlc()?;
            }
            // decoder_model_info() (5.5.4): the delay length, then decoding tick and lengths.
            if r.flag()? {
                buffer_delay_bits = Some(r.f(5)? + 1);
                r.skip(32 + 5 + 5)?;
            }
        }
        let display_delay = r.flag()?;
        let mut first = None;
        for _ in 0..=r.f(5)? {
            r.skip(12)?; // operating_point_idc
            let level = r.f(5)?;
            let tier = if level > 7 { r.f(1)? } else { 0 };
            first.get_or_insert((level, tier));
            // operating_parameters_info() (5.5.5): two buffer delays, low_delay_mode_flag.
            if let Some(n) = buffer_delay_bits {
                if r.flag()? {
                    r.skip(2 * n + 1)?;
                }
            }
            if display_delay && r.flag()? {
                r.skip(4)?; // initial_display_delay_minus_1
            }
        }
        first?
    };
    let (width_bits, height_bits) = (r.f(4)? + 1, r.f(4)? + 1);
    r.skip(width_bits + height_bits)?;
    if !reduced && r.flag()? {
        r.skip(4 + 3)?; // frame id lengths
    }
    r.skip(3)?; // 128x128 superblock, filter intra, intra edge filter
    if !reduced {
        r.skip(4)?; // interintra, masked compound, warped motion, dual filter
        let order_hint = r.flag()?;
        if order_hint {
            r.skip(2)?; // jnt_comp, ref_frame_mvs
        }
        // seq_choose_screen_content_tools, else seq_force_screen_content_tools: either > 0.
        if (r.flag()? || r.flag()?) && !r.flag()? {
            r.skip(1)?; // seq_force_integer_mv, as seq_choose_integer_mv is 0
        }
        if order_hint {
            r.skip(3)?; // order_hint_bits_minus_1
        }
    }
    r.skip(3)?; // superres, cdef, restoration
    let high_bitdepth = r.flag()?;
    let twelve_bit = profile == 2 && high_bitdepth && r.flag()?;
    Some((
        profile,
        level,
        tier,
        bit_depth(profile, high_bitdepth, twelve_bit),
    ))
}

/// BitDepth (AV1 5.5.2 color_config): twelve_bit counts only in profile 2 with high_bitdepth.
fn bit_depth(profile: u32, high_bitdepth: bool, twelve_bit: bool) -> u32 {
    match (profile, high_bitdepth, twelve_bit) {
        (2, true, true) => 12,
        (_, true, _) => 10,
        _ => 8,
    }
}

/// Reads MSB first, as the AV1 descriptors f(n) and uvlc() do (AV1 4.10).
/// The data and the position in bits.
struct Bits<'a>(&'a [u8], usize);

impl Bits<'_> {
    /// f(n) for n up to 32.
    fn f(&mut self, n: u32) -> Option<u32> {
        (0..n).try_fold(0u32, |value, _| {
            let bit = (self.0.get(self.1 / 8)? >> (7 - self.1 % 8)) & 1;
            self.1 += 1;
            Some((value << 1) | u32::from(bit))
        })
    }

    fn skip(&mut self, n: u32) -> Option<()> {
        self.1 = self.1.checked_add(usize::try_from(n).ok()?)?;
        (self.1 <= self.0.len().saturating_mul(8)).then_some(())
    }

    fn flag(&mut self) -> Option<bool> {
        Some(self.f(1)? == 1)
    }

    /// uvlc() (AV1 4.10.3), skipped: from 32 leading zeros on, no value bits follow.
    fn skip_uvlc(&mut self) -> Option<()> {
        let mut zeros = 0u32;
        while !self.flag()? {
            zeros = zeros.saturating_add(1);
        }
        self.skip(if zeros < 32 { zeros } else { 0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real FFmpeg 5.1 output, cut after the stream headers, from
    // `-f lavfi -i testsrc2=size=64x64:rate=30 -frames:v 1` (1920x1080 where named): Annex B
    // from `-f h264` / `-f hevc`, the temporal delimiter and sequence header OBUs from
    // `-f obu`, records from the avcC/hvcC/av1C box of the same encode into `.mp4`.

    /// libx264 0.164: SPS + PPS, 8-bit (High) and `-pix_fmt yuv420p10le` (High 10).
    const H264_8: &str =
        "000000016764000aacd94426c044000003000400000300f03c489658 0000000168ebe3cb22c0";
    const H264_10: &str =
        "00000001676e000aa6cd94426c0440000003004000000f03c4896580 0000000168ebe3cb22c0";
    const AVCC_8: &str = "0164000affe100186764000aacd94426c044000003000400000300f03c48965801000668ebe3cb22c0fdf8f800";
    /// libx265 3.5 `-tag:v hvc1`: VPS (28 bytes with its start code) + SPS + PPS; Main, and
    /// Main 10 with `-x265-params profile=main10:level-idc=6.2:high-tier=1`. Both have
    /// emulation-prevention bytes in profile_tier_level. hvcC: the 23-byte fixed header.
    const HEVC_8: &str = "0000000140010c01ffff01600000030090000003000003001e959809 0000000142010101600000030090000003000003001ea020810596566924caf0168080000003008000000f04 000000014401c172b42240";
    const HEVC_10: &str = "0000000140010c01ffff2220000003009000000300000300ba959809 000000014201012220000003009000000300000300baa0208104d96566924caf016808000003000800000300f040 000000014401c172b42240";
    const HVCC_8: &str = "0101600000009000000000001ef000fcfdf8f800000f04";
    const HVCC_10: &str = "012220000000900000000000baf000fcfdfafa00000f04";
    /// libsvtav1 1.4.1: 8-bit, 10-bit, 1080p 10-bit (level 4.0: the tier bit is coded).
    const SVT_8: &str = "12000a0a00000002afff9f7f2008";
    const SVT_1080_10: &str = "12000a0b00000042abbfc373efe501";
    /// libaom 3.6 `-cpu-used 8`: 1080p `-aom-params timing-info=model` (timing info, decoder
    /// model, operating parameters, initial display delay), `timing-info=constant`
    /// (equal_picture_interval, uvlc), `-still-picture 1` (reduced header), yuv420p12le
    /// (profile 2) and yuv444p10le (profile 1).
    const AOM_MODEL: &str = "12000a1e040000000400000079780000000a53000021afc8afc85eabbfc3732be401";
    const AOM_CONST: &str = "12000a1304000000040000007b400000baafff9b5f2008";
    const AV1C_AOM_MODEL: &str =
        "81080c000a1e040000000400000079780000000a53000021afc8afc85eabbfc3732be401";

    type Parser = fn(&[u8]) -> Option<String>;
    const SAMPLES: &[(Parser, &str, &str)] = &[
        (h264, H264_8, "avc1.64000A"),
        (h264, H264_10, "avc1.6E000A"),
        (h264, AVCC_8, "avc1.64000A"),
        (hevc, HEVC_8, "hvc1.1.6.L30.90"),
        (hevc, HEVC_10, "hvc1.2.4.H186.90"),
        (hevc, HVCC_8, "hvc1.1.6.L30.90"),
        (hevc, HVCC_10, "hvc1.2.4.H186.90"),
        (av1, SVT_8, "av01.0.00M.08"),
        (av1, "12000a0a00000002afff9f7f2808", "av01.0.00M.10"),
        (av1, SVT_1080_10, "av01.0.08M.10"),
        (av1, AOM_MODEL, "av01.0.08M.08"),
        (av1, AOM_CONST, "av01.0.00M.08"),
        (av1, "12000a0618157ffda008", "av01.0.00M.08"),
        (av1, "12000a0a40000002afff9b5f2c61", "av01.2.00M.12"),
        (av1, "12000a0a20000002afff9b5f2840", "av01.1.00M.10"),
        (av1, "81000c000a0a00000002afff805f0008", "av01.0.00M.08"),
        (av1, "81084c000a0b00000042abbfc3700be101", "av01.0.08M.10"),
        (av1, AV1C_AOM_MODEL, "av01.0.08M.08"),
    ];

    fn hex(s: &str) -> Vec<u8> {
        let s = s.replace(' ', "");
        let byte = |i: usize| u8::from_str_radix(&s[i..i + 2], 16).unwrap();
        (0..s.len()).step_by(2).map(byte).collect()
    }

    #[test]
    fn real_encoder_output() {
        for &(parse, sample, want) in SAMPLES {
            assert_eq!(parse(&hex(sample)).as_deref(), Some(want), "{sample}");
        }
        // Parts of it: a VPS or SPS alone, an OBU without the temporal delimiter before it.
        for (sample, want) in [(HEVC_8, "hvc1.1.6.L30.90"), (HEVC_10, "hvc1.2.4.H186.90")] {
            assert_eq!(hevc(&hex(sample)[..28]).as_deref(), Some(want), "VPS alone");
            assert_eq!(hevc(&hex(sample)[28..]).as_deref(), Some(want), "SPS alone");
        }
        assert_eq!(av1(&hex(AOM_MODEL)[2..]).as_deref(), Some("av01.0.08M.08"));
        // An av1C without configOBUs: its own fields, which FFmpeg's muxer derived.
        let bare = av1(&hex(AV1C_AOM_MODEL)[..4]);
        assert_eq!(bare.as_deref(), Some("av01.0.08M.08"));
        // The 1080p header with its seq_tier[0] bit set.
        let mut high = hex(SVT_1080_10);
        high[7] |= 0x04;
        assert_eq!(av1(&high).as_deref(), Some("av01.0.08H.10"));
    }

    #[test]
    fn published_examples() {
        for (hvcc, want) in [
            // Apple's HLS authoring spec: Main 10, level 4.1, progressive, non-packed, frame-only.
            ("02 20000000 b00000000000 7b", "hvc1.2.4.L123.B0"),
            // profile_space 1 is 'A'; only trailing zero constraint bytes are left out.
            ("44 20000000 b00008000000 7b", "hvc1.A4.4.L123.B0.0.8"),
            ("01 00000000 000000000000 5d", "hvc1.1.0.L93"),
        ] {
            let hvcc = hex(&format!("01 {hvcc} f000fcfdfafa00000f04"));
            assert_eq!(hevc(&hvcc).as_deref(), Some(want));
        }
        // AV1-ISOBMFF "av01.0.04M.10.0.112.09.16.09.0", mandatory fields (Main, level 3.0,
        // Main tier, 10-bit); then Professional, level 5.1, High tier, 12-bit.
        for (av1c, want) in [
            ([0x81, 4, 0x6e, 0], "av01.0.04M.10"),
            ([0x81, 0x4d, 0xe0, 0], "av01.2.13H.12"),
        ] {
            assert_eq!(av1(&av1c).as_deref(), Some(want));
        }
        // The packet of the former h264_codec_string test: AUD, then SPS after 00 00 01.
        let old = h264(&hex("0000000109f0 00000167640028ac"));
        assert_eq!(old.as_deref(), Some("avc1.640028"));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        for parse in [h264, hevc, av1] {
            assert_eq!(parse(&[]), None);
            assert_eq!(parse(&[0, 0, 1]), None);
            assert_eq!(parse(&[1, 0x64, 0, 0x0a]), None, "truncated record");
        }
        assert_eq!(h264(&[0, 0, 1, 0x65, 1, 2, 3]), None, "no SPS");
        assert_eq!(h264(&hex("00000001 6764")), None, "truncated SPS");
        assert_eq!(hevc(&hex(H264_8)), None, "no VPS or SPS");
        let mut vps = hex(HEVC_8)[..28].to_vec();
        vps[9] = 0; // vps_reserved_0xffff_16bits
        assert_eq!(hevc(&vps), None);
        assert_eq!(av1(&[0x0a, 0x01, 0xe0]), None, "seq_profile 7");
        assert_eq!(av1(&[0x81, 0xe0, 0x0c, 0]), None, "seq_profile 7 in av1C");
        assert_eq!(av1(&[0x92, 0x00]), None, "forbidden bit");
        assert_eq!(av1(&hex("12000a0f00000002")), None, "size beyond the data");
        assert_eq!(av1(&hex("12000aff")), None, "unterminated leb128");
    }

    #[test]
    fn never_panics_and_prefixes_never_mislead() {
        for &(_, sample, _) in SAMPLES {
            let sample = hex(sample);
            for parse in [h264, hevc, av1] {
                let full = parse(&sample);
                for end in 0..sample.len() {
                    let got = parse(&sample[..end]);
                    assert!(got.is_none() || got == full, "{got:?} != {full:?}");
                }
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            // Most inputs start as one of the forms, to get past the first checks.
            let mut data = [&[0, 0, 1, 0x42, 1][..], &[0x81], &[0x0a], &[]][round % 4].to_vec();
            data.extend((0..next() % 64).map(|_| next() as u8));
            let _ = (h264(&data), hevc(&data), av1(&data));
        }
    }
}
