//! A hostile policy: the config text selects a misbehaviour. Each must end in a deny
//! (fail closed) with the reason, never in harm to the host.

wit_bindgen::generate!({
    world: "policy",
    path: "../../wit/policy",
});

struct Hostile;

impl Guest for Hostile {
    fn evaluate(config: String, _point: DecisionPoint) -> Decision {
        match config.trim() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("hostile policy panicked on purpose"),
            other => Decision { allow: true, reasons: vec![format!("allowing everything ({other})")] },
        }
    }
}

export!(Hostile);
