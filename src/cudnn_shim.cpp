// cuDNN's process-wide algorithm choice (PyTorch's torch.backends.cudnn.deterministic and
// .benchmark), which tch exposes only in part. Built by build.rs with torch-sys's flags.
#include <ATen/Context.h>

extern "C" {

void evnas_cudnn_set(bool deterministic, bool benchmark) {
    at::globalContext().setDeterministicCuDNN(deterministic);
    at::globalContext().setBenchmarkCuDNN(benchmark);
}

bool evnas_cudnn_deterministic() { return at::globalContext().deterministicCuDNN(); }

bool evnas_cudnn_benchmark() { return at::globalContext().benchmarkCuDNN(); }

}  // extern "C"
