// A downstream program built against the installed torchquant package.
#include <ATen/Functions.h>
#include <torchquant/tensor_quant.h>

#include <iostream>

int main() {
  const at::Tensor x = at::linspace(-1, 1, 5);
  const at::Tensor y = torchquant::fake_tensor_quant(x, at::scalar_tensor(1.0), 2);
  const bool ok = at::equal(y, at::tensor({-1.0f, 0.0f, 0.0f, 0.0f, 1.0f}) /* ties to even */);
  std::cout << "consumer: " << (ok ? "ok" : "WRONG") << ' ' << y << '\n';
  return ok ? 0 : 1;
}
