// The TensorRT calibration-cache reader: any file either reads or is a c10::Error; what reads
// is written back and read again to the same cache.

#include <torchquant/utils/calib_cache.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace tu = torchquant::utils;
  static const std::string path = "/tmp/torchquant_fuzz_cache_" + std::to_string(::getpid());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  torchquant::fuzz::expect_only_c10_errors([&] {
    const tu::CalibCache cache = tu::read_calib_cache(path);
    tu::write_calib_cache(path, cache);
    const tu::CalibCache again = tu::read_calib_cache(path);
    TORCHQUANT_FUZZ_ASSERT(again.version == cache.version);
    TORCHQUANT_FUZZ_ASSERT(again.algorithm == cache.algorithm);
    TORCHQUANT_FUZZ_ASSERT(again.scales == cache.scales);
  });
  std::remove(path.c_str());
  return 0;
}
