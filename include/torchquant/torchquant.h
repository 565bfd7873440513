#pragma once
/// \file
/// Umbrella header of torchquant: quantization functions, QuantDescriptor, calibrators and
/// TensorQuantizer.
///
/// \code
///   #include <torchquant/torchquant.h>
///   torchquant::nn::TensorQuantizer q(torchquant::QuantDescriptor().axis(0));
///   at::Tensor y = q(torch::randn({8, 16}));
/// \endcode

#include "torchquant/calib/calibrate_weights.h"
#include "torchquant/calib/calibrator.h"
#include "torchquant/calib/histogram_calibrator.h"
#include "torchquant/calib/max_calibrator.h"
#include "torchquant/nn/modules/clip.h"
#include "torchquant/nn/modules/quant_add.h"
#include "torchquant/nn/modules/quant_conv.h"
#include "torchquant/nn/modules/quant_layer.h"
#include "torchquant/nn/modules/quant_linear.h"
#include "torchquant/nn/modules/quant_pooling.h"
#include "torchquant/nn/modules/quant_rnn.h"
#include "torchquant/nn/modules/tensor_quantizer.h"
#include "torchquant/quant_descriptor.h"
#include "torchquant/quant_modules.h"
#include "torchquant/tensor_quant.h"
