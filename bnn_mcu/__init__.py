"""bnn-mcu: binarized neural networks on microcontrollers, bit-exact from PyTorch to the chip."""

__version__ = "0.1.0"
