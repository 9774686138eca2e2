// NCCL through c10d's ProcessGroupNCCL (in libtorch_cuda, NCCL from the wheel's nvidia-nccl),
// for src/distributed/ffi.rs. build.rs compiles this file only against a libtorch with CUDA and
// the headers NCCL's needs; the group it returns is used by c10d_shim.cpp's collectives.

#include <chrono>
#include <string>

#include <torch/csrc/distributed/c10d/NCCLUtils.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "c10d_shim.h"

using evnas_c10d::Group;
using evnas_c10d::guarded;
using evnas_c10d::Store;

extern "C" {

// An NCCL group of `size` ranks meeting through `store`. Each rank's device is that of the
// tensors it passes; NCCL's communicator is made at the first collective, which waits for every
// rank (as long as the store's timeout allows). `timeout_ms` bounds each collective: c10d's
// watchdog ends the process when one takes longer (TORCH_NCCL_ASYNC_ERROR_HANDLING), as in a
// PyTorch job.
void* evnas_c10d_nccl_group(void* store, int rank, int size, int64_t timeout_ms, char** error) {
  Group* out = nullptr;
  guarded(error, [&] {
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = std::chrono::milliseconds(timeout_ms);
    auto base = static_cast<Store*>(store)->inner;
    out = new Group{c10::make_intrusive<c10d::ProcessGroupNCCL>(base, rank, size, options), true};
  });
  return out;
}

// The version of the NCCL library loaded ("2.28.9"), into a malloc'd string.
int evnas_c10d_nccl_version(char** version, char** error) {
  return guarded(error, [&] { *version = strdup(c10d::getNcclVersion().c_str()); });
}

}  // extern "C"
