//! Runs the avatar pipeline on a file, several times, and prints what it took:
//! `cargo run --release -p orgbase-avatar --example process_file -- photo.jpg [runs]`.
//! For profiling the pipeline apart from the service (and with `/usr/bin/time -v`, its peak
//! memory).
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: process_file FILE [RUNS]");
    let runs: u32 = args
        .next()
        .map_or(10, |r| r.parse().expect("RUNS is a number"));
    let bytes = std::fs::read(&path).expect("reading the file");
    let limits = orgbase_avatar::Limits::default();
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let p = orgbase_avatar::process(&bytes, &limits);
        times.push(t.elapsed());
        if let Err(e) = p {
            println!("refused: {e}");
            return;
        }
    }
    times.sort();
    let p = orgbase_avatar::process(&bytes, &limits).expect("processed");
    println!(
        "{path}: {} bytes, {:?} {}x{}; median {:.1} ms over {runs} runs; stored {:?}",
        bytes.len(),
        p.source_format,
        p.source_width,
        p.source_height,
        times[times.len() / 2].as_secs_f64() * 1000.0,
        p.files
            .iter()
            .map(|(s, b)| (*s, b.len()))
            .collect::<Vec<_>>()
    );
}
