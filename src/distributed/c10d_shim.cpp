// A C interface to PyPI libtorch's c10d (stores, the Gloo process group, and the collectives of
// any group, NCCL's from nccl_shim.cpp included), for src/distributed/ffi.rs. Every entry point
// catches C++ exceptions and returns them as a malloc'd message through `error` (freed by the
// caller with evnas_c10d_free_error), so that no exception crosses into Rust.
//
// Tensors are passed as tch's `C_tensor` handles, which are `at::Tensor*`.

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <c10/util/Logging.h>
#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "c10d_shim.h"

using evnas_c10d::Group;
using evnas_c10d::guarded;
using evnas_c10d::Store;

namespace {

// c10d's flight recorder keeps each group's recent collectives for PyTorch's Python debugging
// tools, which evnas does not have. It is on by default in PyTorch 2.11, and its first record of
// a group files the group in a map without taking its lock (recordWithResetEnabled in
// FlightRecorderDetail.hpp). Replicas that are threads take their groups' first collectives side
// by side: the map broke, and the process crashed or spun forever (test
// groups_take_their_first_collectives_side_by_side). It stays off unless the user turned it on.
// Set before main, while one thread runs, and before any group reads it.
const bool flight_recorder_off = [] {
  if (std::getenv("TORCH_FR_BUFFER_SIZE") == nullptr &&
      std::getenv("TORCH_NCCL_TRACE_BUFFER_SIZE") == nullptr) {
    setenv("TORCH_FR_BUFFER_SIZE", "0", 0);
  }
  return true;
}();

// libtorch's C++ log shows warnings by default, and c10d warns, with the C++ stack of the
// exception in full (twenty lines), for what evnas then reports in a sentence of its own: a
// store whose host ended, a peer that closed its connection. Errors only, unless the user asks
// for more with TORCH_CPP_LOG_LEVEL, as in PyTorch (INFO, WARNING, ERROR, FATAL or 0-3), which
// libtorch reads only where PyTorch's Python module initialises it. Before main, as above: the
// flag is a plain global that every thread reads.
const bool cpp_log_errors_only = [] {
  const char* level = std::getenv("TORCH_CPP_LOG_LEVEL");
  if (level == nullptr || *level == '\0') {
    FLAGS_caffe2_log_level = 2;
  } else {
    c10::initLogging();
  }
  return true;
}();

// `bytes` in a malloc'd buffer (of one byte at least) for Rust, which frees it with
// evnas_c10d_free.
void copy_out(const std::vector<uint8_t>& bytes, uint8_t** value, size_t* length) {
  *value = static_cast<uint8_t*>(std::malloc(bytes.empty() ? 1 : bytes.size()));
  if (*value == nullptr) {
    throw std::runtime_error("out of memory for a store value");
  }
  if (!bytes.empty()) {
    std::memcpy(*value, bytes.data(), bytes.size());
  }
  *length = bytes.size();
}

}  // namespace

extern "C" {

void evnas_c10d_free_error(char* error) { std::free(error); }

void evnas_c10d_free(void* buffer) { std::free(buffer); }

// A TCPStore at host:port: the server (it listens; port 0 picks a free one) or a client.
// `world_size` > 0: the server waits until that many clients (itself included) connected.
void* evnas_c10d_tcp_store(const char* host, uint16_t port, int is_server, int64_t world_size,
                           int64_t timeout_ms, char** error) {
  Store* out = nullptr;
  guarded(error, [&] {
    c10d::TCPStoreOptions options;
    options.port = port;
    options.isServer = is_server != 0;
    if (world_size > 0) {
      options.numWorkers = static_cast<size_t>(world_size);
    }
    options.waitWorkers = false;
    options.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), options);
    out = new Store{store};
  });
  return out;
}

// An in-process store, for replicas that are threads of one process.
void* evnas_c10d_hash_store(char** error) {
  Store* out = nullptr;
  guarded(error, [&] { out = new Store{c10::make_intrusive<c10d::HashStore>()}; });
  return out;
}

// The port a TCPStore listens on (the chosen one when it was created with port 0).
int evnas_c10d_tcp_store_port(void* store, uint16_t* port, char** error) {
  return guarded(error, [&] {
    auto* tcp = dynamic_cast<c10d::TCPStore*>(static_cast<Store*>(store)->inner.get());
    if (tcp == nullptr) {
      throw std::runtime_error("not a TCPStore");
    }
    *port = tcp->getPort();
  });
}

// Keys of `store` under `prefix/`: one store serves several groups (a fresh prefix each).
void* evnas_c10d_prefix_store(void* store, const char* prefix, char** error) {
  Store* out = nullptr;
  guarded(error, [&] {
    auto base = static_cast<Store*>(store)->inner;
    out = new Store{c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), base)};
  });
  return out;
}

void evnas_c10d_store_free(void* store) { delete static_cast<Store*>(store); }

// Sets `key` to the `length` bytes at `value`.
int evnas_c10d_store_set(void* store, const char* key, const uint8_t* value, size_t length,
                         char** error) {
  return guarded(error, [&] {
    std::vector<uint8_t> bytes(value, value + length);
    static_cast<Store*>(store)->inner->set(std::string(key), bytes);
  });
}

// Adds `amount` to the number at `key` (0 where unset), atomically for all the store's
// clients; `*total` gets the sum.
int evnas_c10d_store_add(void* store, const char* key, int64_t amount, int64_t* total, char** error) {
  return guarded(error, [&] { *total = static_cast<Store*>(store)->inner->add(std::string(key), amount); });
}

// Whether `key` is set, without waiting for it.
int evnas_c10d_store_check(void* store, const char* key, int* present, char** error) {
  return guarded(error, [&] {
    *present = static_cast<Store*>(store)->inner->check({std::string(key)}) ? 1 : 0;
  });
}

// The value of `key` (waiting for it up to the store's timeout) in a malloc'd buffer the caller
// frees with evnas_c10d_free.
int evnas_c10d_store_get(void* store, const char* key, uint8_t** value, size_t* length,
                         char** error) {
  return guarded(error, [&] {
    copy_out(static_cast<Store*>(store)->inner->get(std::string(key)), value, length);
  });
}

// Sets `key` to `desired` where it holds `expected` (where it is unset, for an empty
// `expected`), atomically for all the store's clients. `*value` gets what it holds then, in a
// malloc'd buffer the caller frees with evnas_c10d_free: `desired` where it was set.
int evnas_c10d_store_compare_set(void* store, const char* key, const uint8_t* expected,
                                 size_t expected_length, const uint8_t* desired,
                                 size_t desired_length, uint8_t** value, size_t* length,
                                 char** error) {
  return guarded(error, [&] {
    std::vector<uint8_t> was(expected, expected + expected_length);
    std::vector<uint8_t> now(desired, desired + desired_length);
    copy_out(static_cast<Store*>(store)->inner->compareSet(std::string(key), was, now), value,
             length);
  });
}

// A Gloo process group of `size` ranks meeting through `store`. This rank's Gloo device binds
// the network interface `interface` when given (GLOO_SOCKET_IFNAME, as PyTorch), else the address
// `hostname` when given, else the machine's default address, as PyTorch picks it.
void* evnas_c10d_gloo_group(void* store, int rank, int size, const char* interface,
                            const char* hostname, int64_t timeout_ms, char** error) {
  Group* out = nullptr;
  guarded(error, [&] {
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = std::chrono::milliseconds(timeout_ms);
    // One worker thread, not Gloo's two: evnas waits for each collective before it starts the
    // next, so a second worker only took the next one while the first, done, still wrote the
    // group's status record without a lock (ProcessGroupGloo::runLoop).
    options->threads = 1;
    std::string iface(interface), host(hostname);
    options->devices.push_back(
        !iface.empty()  ? c10d::ProcessGroupGloo::createDeviceForInterface(iface)
        : !host.empty() ? c10d::ProcessGroupGloo::createDeviceForHostname(host)
                        : c10d::ProcessGroupGloo::createDefaultDevice());
    auto base = static_cast<Store*>(store)->inner;
    out = new Group{c10::make_intrusive<c10d::ProcessGroupGloo>(base, rank, size, options)};
  });
  return out;
}

// Bounds every later collective of `group` by `timeout_ms` (its rendezvous used the first).
int evnas_c10d_group_set_timeout(void* group, int64_t timeout_ms, char** error) {
  return guarded(error, [&] {
    static_cast<Group*>(group)->inner->setTimeout(std::chrono::milliseconds(timeout_ms));
  });
}

void evnas_c10d_group_free(void* group) {
  auto* g = static_cast<Group*>(group);
  if (g->abort_on_free) {
    char* ignored = nullptr;
    guarded(&ignored, [&] { g->inner->abort(); });
    std::free(ignored);
  }
  delete g;
}

// Sums `tensor` over all ranks, in place; returns when done.
int evnas_c10d_all_reduce_sum(void* group, void* tensor, char** error) {
  return guarded(error, [&] {
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    static_cast<Group*>(group)->inner->allreduce(tensors, options)->wait();
  });
}

// As evnas_c10d_all_reduce_sum, but gives up waiting once `*stop` is set (read every
// `slice_ms` while it waits): returns 1 then, the collective left in flight (its group is
// unusable after, and its destructor would wait for it). Gloo groups only: an NCCL work's wait
// only orders GPU streams.
int evnas_c10d_all_reduce_sum_unless(void* group, void* tensor, const unsigned char* stop,
                                     int64_t slice_ms, char** error) {
  int stopped = 0;
  int rc = guarded(error, [&] {
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    auto work = static_cast<Group*>(group)->inner->allreduce(tensors, options);
    while (true) {
      try {
        work->wait(std::chrono::milliseconds(slice_ms));
        return;
      } catch (...) {
        // Not done: only this slice's wait timed out. Done (perhaps just after that timeout):
        // its own outcome, which a wait on a completed work returns or throws.
        if (work->isCompleted()) {
          work->wait();
          return;
        }
      }
      if (__atomic_load_n(stop, __ATOMIC_ACQUIRE) != 0) {
        stopped = 1;
        return;
      }
    }
  });
  return rc != 0 ? rc : stopped;
}

// Copies rank `root`'s `tensor` into every rank's, in place; returns when done.
int evnas_c10d_broadcast(void* group, void* tensor, int root, char** error) {
  return guarded(error, [&] {
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    static_cast<Group*>(group)->inner->broadcast(tensors, options)->wait();
  });
}

int evnas_c10d_barrier(void* group, char** error) {
  return guarded(error, [&] { static_cast<Group*>(group)->inner->barrier()->wait(); });
}

}  // extern "C"
