//! Images/s of the DARTS supernet on the CPU: a train step (forward + backward) and an eval
//! forward, NCHW and channels-last. Compare with scripts/bench/reference_supernet_throughput.py.
//!
//! `cargo run --release --example supernet_throughput -- [batch] [iters] [threads]`

use std::time::Instant;

use evnas::model::{ArchWeights, OneShotModel, Supernet, SupernetConfig};
use tch::{nn, Device, Kind, Tensor};

fn decoded_alpha() -> Tensor {
    // Node i keeps its first two inputs with op sep_conv_3x3 (column 4): a valid decoded α.
    let alpha = Tensor::zeros([14, 8], (Kind::Float, Device::Cpu));
    let mut start = 0;
    for node in 0..4 {
        for input in 0..2 {
            let _ = alpha.get(start + input).get(4).fill_(1.0);
        }
        start += 2 + node;
    }
    alpha
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let batch = *args.first().unwrap_or(&32) as i64;
    let iters = *args.get(1).unwrap_or(&3);
    let threads = *args.get(2).unwrap_or(&2);
    tch::set_num_threads(threads as i32);
    for channels_last in [false, true] {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut net = Supernet::new(&vs.root(), SupernetConfig::new(16, 8, 3, 10));
        if channels_last {
            net.use_channels_last();
        }
        let alphas = ArchWeights::from_alphas(&[decoded_alpha(), decoded_alpha()])?;
        let x = Tensor::randn([batch, 3, 32, 32], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(10, [batch], (Kind::Int64, Device::Cpu));
        let train_step = || -> anyhow::Result<()> {
            let loss = net.forward_arch(&x, &alphas, true)?.cross_entropy_for_logits(&y);
            loss.backward();
            Ok(())
        };
        train_step()?;
        let t = Instant::now();
        for _ in 0..iters {
            train_step()?;
        }
        let train_ips = (batch as usize * iters) as f64 / t.elapsed().as_secs_f64();
        let _ = tch::no_grad(|| net.forward_arch(&x, &alphas, false))?;
        let t = Instant::now();
        for _ in 0..iters {
            let _ = tch::no_grad(|| net.forward_arch(&x, &alphas, false))?;
        }
        let eval_ips = (batch as usize * iters) as f64 / t.elapsed().as_secs_f64();
        println!(
            "evnas supernet C=16 L=8 batch {batch} threads {threads} channels_last={channels_last}: \
             train {train_ips:.1} img/s, eval {eval_ips:.1} img/s"
        );
    }
    Ok(())
}
