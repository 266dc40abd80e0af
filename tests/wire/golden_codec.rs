//! Every message captured from the reference server parses, and re-encoding
//! it gives the captured bytes exactly: the codec agrees with the
//! reference's encoder in both directions.

use crate::support::golden::{Dir, Step, load};
use qnetd::proto::{DecodeError, Msg, MsgType, ReplyErrorCode, TlvType};

/// Messages the reference rejects when decoding, by scenario, with the error
/// our decoder must report.
fn expected_failure(scenario: &str) -> Option<DecodeError> {
    Some(match scenario {
        s if s.contains("#11 message too long") => DecodeError::InvalidLength {
            tlv: TlvType::MsgSeqNumber,
            len: 0,
        },
        s if s.contains("#12 TLV length beyond message end") => DecodeError::Inconsistent,
        s if s.contains("#13 TLV u32 with wrong length") => DecodeError::InvalidLength {
            tlv: TlvType::MsgSeqNumber,
            len: 3,
        },
        s if s.contains("#14 vote value out of range") => DecodeError::InvalidValue {
            tlv: TlvType::TieBreaker,
        },
        s if s.contains("#22 echo request without seq") => DecodeError::Inconsistent,
        _ => return None,
    })
}

#[test]
fn every_traced_message_round_trips() {
    let scenarios = load();
    assert!(
        scenarios.len() >= 30,
        "trace file not parsed: {} scenarios",
        scenarios.len()
    );
    let mut checked = 0;
    let mut types_seen = std::collections::BTreeSet::new();
    for sc in &scenarios {
        for step in &sc.steps {
            let Step::Msg {
                dir, name, bytes, ..
            } = step
            else {
                continue;
            };
            let ctx = format!("{} / {:?} {name}", sc.name, dir);
            match Msg::parse(bytes) {
                Ok(msg) => {
                    types_seen.insert(u16::from(msg.msg_type));
                    let has_unknown_tlv = sc.name.contains("#23 echo request with extra unknown");
                    if has_unknown_tlv {
                        // Unknown options are skipped by the decoder; the server
                        // copies echo requests byte for byte instead.
                        continue;
                    }
                    let mut out = vec![0u8; msg.buffer_len()];
                    let n = msg.emit(&mut out).expect(&ctx);
                    assert_eq!(n, bytes.len(), "{ctx}: length");
                    assert_eq!(&out[..n], &bytes[..], "{ctx}: bytes");
                    checked += 1;
                }
                Err(fail) => {
                    assert_eq!(
                        *dir,
                        Dir::ToServer,
                        "{ctx}: the reference emitted something we cannot parse"
                    );
                    let want = expected_failure(&sc.name)
                        .unwrap_or_else(|| panic!("{ctx}: unexpected {fail:?}"));
                    assert_eq!(fail.error, want, "{ctx}");
                    assert_eq!(fail.error.reply_code(), ReplyErrorCode::ErrorDecodingMsg);
                }
            }
        }
    }
    assert!(checked > 150, "only {checked} messages checked");
    // Every message type the reference or its client sent is covered.
    for t in [0u16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 16] {
        assert!(
            types_seen.contains(&t),
            "no traced message of type {}",
            MsgType::from(t)
        );
    }
}

#[test]
fn decode_failure_keeps_seq_decoded_before_the_error() {
    // Case #12: PREINIT seq 3, then a CLUSTER_NAME claiming 50 bytes.
    let bytes = [
        0, 0, 0, 0, 0, 0x0f, 0, 0, 0, 4, 0, 0, 0, 3, 0, 1, 0, 0x32, b'a', b'b', b'c',
    ];
    let fail = Msg::parse(&bytes).unwrap_err();
    assert_eq!(fail.seq, Some(3));
    assert_eq!(fail.error, DecodeError::Inconsistent);
    // Case #13: a 3-byte sequence number: nothing decoded before the error.
    let fail = Msg::parse(&[0, 0, 0, 0, 0, 7, 0, 0, 0, 3, 0, 0, 1]).unwrap_err();
    assert_eq!(fail.seq, None);
}
