"""Face CNNs in PyTorch, with their weights read from the original files."""
from .dlib_format import DlibFormatError, read_dlib_network
from .dlib_resnet import DlibResNet, dlib_reference_descriptors, load_dlib_resnet

__all__ = ["DlibFormatError", "DlibResNet", "dlib_reference_descriptors", "load_dlib_resnet",
           "read_dlib_network"]
