// Autocast (automatic mixed precision) switches of libtorch, which tch does not expose for the
// CPU: its `autocast` only turns on CUDA's. The state is thread-local, like PyTorch's
// `torch.autocast` context. Built by build.rs with torch-sys's flags.
#include <ATen/autocast_mode.h>

namespace {
c10::DeviceType device_type(int cuda) { return cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU; }
}  // namespace

extern "C" {

bool evnas_autocast_is_enabled(int cuda) { return at::autocast::is_autocast_enabled(device_type(cuda)); }

int evnas_autocast_dtype(int cuda) { return static_cast<int>(at::autocast::get_autocast_dtype(device_type(cuda))); }

// Turns autocast on or off for the calling thread's ops on the device, casting to `dtype` (a
// c10::ScalarType code), and counts one nesting level in (`enter`) or out; leaving the outermost
// level drops the cache of weights cast for the region, as torch.autocast's exit does.
void evnas_autocast_set(int cuda, bool enabled, int dtype, bool enter) {
    at::autocast::set_autocast_dtype(device_type(cuda), static_cast<c10::ScalarType>(dtype));
    at::autocast::set_autocast_enabled(device_type(cuda), enabled);
    if (enter) {
        at::autocast::increment_nesting();
    } else if (at::autocast::decrement_nesting() == 0) {
        at::autocast::clear_cache();
    }
}

}  // extern "C"
