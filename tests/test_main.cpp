// Shared GoogleTest main: tests named *_CUDA run only when a CUDA device is visible.

#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!torch::cuda::is_available()) {
    std::string filter = ::testing::GTEST_FLAG(filter);
    // Test names, suite names or parameterised suites ending in _CUDA.
    filter += filter.find('-') == std::string::npos ? "-" : ":";
    filter += "*_CUDA:*_CUDA.*:*_CUDA/*";
    ::testing::GTEST_FLAG(filter) = filter;
    std::cout << "No CUDA device: skipping tests named *_CUDA\n";
  }
  return RUN_ALL_TESTS();
}
