"""Export steps (ONNX, quantisation, pruning, distillation) and the pipeline that chains them."""
