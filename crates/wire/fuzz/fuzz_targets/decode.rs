//! Every decoder of curfew-wire over arbitrary bytes: no panic, no frame longer than the
//! input, and every parsed view stays inside it.
#![no_main]

use curfew_wire::{
    AuthResponse, BackendMessage, Direction, FrontendMessage, Initial, Split, frames,
    parse_initial, split_frame,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Initial::Packet { packet, len }) = parse_initial(data) {
        assert!(len <= data.len());
        let _ = format!("{packet:?}");
    }
    for direction in [Direction::Frontend, Direction::Backend] {
        if let Ok(Split::Frame(frame)) = split_frame(direction, data) {
            assert!(frame.len() <= data.len());
        }
        let mut split = frames(direction, data);
        for frame in split.by_ref().flatten() {
            match direction {
                Direction::Backend => {
                    if let Ok(message) = BackendMessage::parse(frame) {
                        let _ = format!("{message:?}");
                    }
                }
                Direction::Frontend => {
                    let _ = FrontendMessage::parse(frame);
                    if let Ok(response) = AuthResponse::from_frame(frame) {
                        let _ = response.password();
                        let _ = response.sasl_initial();
                    }
                }
            }
        }
        assert!(split.consumed() <= data.len());
    }
});
