//! The fuzz targets' entry points over mutated fixture bytes (seeded, so
//! runs repeat): truncations, flipped bytes and overwritten lengths must
//! give errors, never panics.

mod common;
use common::*;
use flink_state::fuzzing;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    match rng.next() % 4 {
        0 => b.truncate((rng.next() as usize) % (b.len() + 1)),
        1 => {
            for _ in 0..1 + rng.next() % 4 {
                let i = rng.next() as usize % b.len().max(1);
                if let Some(x) = b.get_mut(i) {
                    *x ^= rng.next() as u8;
                }
            }
        }
        2 => {
            let i = rng.next() as usize % b.len().max(1);
            for (j, v) in [0x7f, 0xff, 0xff, 0xff].into_iter().enumerate() {
                if let Some(x) = b.get_mut(i + j) {
                    *x = v;
                }
            }
        }
        _ => {
            let i = rng.next() as usize % b.len().max(1);
            b = b.split_off(i.min(b.len()));
        }
    }
    b
}

#[test]
fn decoders_survive_mutated_fixture_bytes() {
    let sp = savepoint_dir("A-p1-noinline", "savepoint-canonical");
    let keyed = std::fs::read(sp.join("4198412c-6569-4bea-bc70-7bda4e08a4f1")).unwrap();
    let metadata = std::fs::read(sp.join("_metadata")).unwrap();
    let sql = std::fs::read(
        savepoint_dir("C-sql-interval-join", "savepoint-canonical")
            .join("3a97ea6d-a3ef-4f30-8abc-6dab43deb453"),
    )
    .unwrap();
    let block = keyed[2834..5234].to_vec();
    let native = savepoint_dir("A-p1-noinline", "savepoint-native");
    let ssts: Vec<Vec<u8>> = std::fs::read_dir(&native)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .filter(|b| b.len() > 1000 && b.len() < 20_000)
        .collect();
    assert!(
        ssts.iter().any(|b| fuzzing::sst(b) > 0),
        "no SST among the native files"
    );
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let _ = fuzzing::metadata(&mutate(&mut rng, &metadata));
        let _ = fuzzing::headers(&mutate(&mut rng, &keyed[..2834]));
        let _ = fuzzing::headers(&mutate(&mut rng, &sql[..4000]));
        let _ = fuzzing::key_group(&mutate(&mut rng, &block));
        let sst = &ssts[rng.next() as usize % ssts.len()];
        let _ = fuzzing::sst(&mutate(&mut rng, sst));
    }
}
