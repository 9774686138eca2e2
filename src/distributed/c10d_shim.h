// What the two c10d shims share (c10d_shim.cpp: stores and Gloo; nccl_shim.cpp: NCCL, built
// only against a libtorch with CUDA): the handles they give Rust and the way they report errors.

#pragma once

#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace evnas_c10d {

struct Store {
  c10::intrusive_ptr<c10d::Store> inner;
};

// A process group of either backend: the collectives are the same virtual calls.
struct Group {
  c10::intrusive_ptr<c10d::Backend> inner;
  // NCCL's communicators are ended with abort() when the group is freed, as ProcessGroupNCCL's
  // destructor would, but without its warning that the group was not destroyed first.
  bool abort_on_free = false;
};

inline void set_error(char** error, const char* message) {
  if (error != nullptr) {
    *error = strdup(message);
  }
}

// Runs `body`, turning any C++ exception into a malloc'd message in `*error`: 0, or -1 on error.
template <typename F>
int guarded(char** error, F&& body) {
  try {
    body();
    return 0;
  } catch (const c10::Error& e) {
    set_error(error, e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_error(error, e.what());
  } catch (...) {
    set_error(error, "unknown C++ exception");
  }
  return -1;
}

}  // namespace evnas_c10d
