// QuantDescriptor parsing: any text given to from_json / from_yaml either parses or is a
// c10::Error; what parses survives a round trip through both formats unchanged.

#include <torchquant/quant_descriptor.h>

#include <string>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using torchquant::QuantDescriptor;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (const bool json : {true, false}) {
    torchquant::fuzz::expect_only_c10_errors([&] {
      const QuantDescriptor d =
          json ? QuantDescriptor::from_json(text) : QuantDescriptor::from_yaml(text);
      TORCHQUANT_FUZZ_ASSERT(QuantDescriptor::from_json(d.to_json()) == d);
      TORCHQUANT_FUZZ_ASSERT(QuantDescriptor::from_yaml(d.to_yaml()) == d);
    });
  }
  return 0;
}
